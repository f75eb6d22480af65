"""Bearer tokens for tests that call the APIs (``shared.auth``, docs/security.md)."""

from __future__ import annotations

from typing import Any

from shared.auth import mint
from shared.settings import AuthSettings

#: a default identity per role (agents and team leads need a team, customers a customer id)
DEFAULTS: dict[str, dict[str, str]] = {
    "customer": {"sub": "test-customer", "customer_id": "test-customer"},
    "channel": {"sub": "test-channel"},
    "agent": {"sub": "test-agent", "team": "t1"},
    "team_lead": {"sub": "test-lead", "team": "t1"},
}


def bearer(role: str, *, auth: AuthSettings | None = None, **identity: Any) -> dict[str, str]:
    """``Authorization`` headers with a token of ``role``, signed as the services verify it
    (``auth``, or the ``PARLEY_AUTH_*`` settings a service process reads from the same
    environment)."""
    claims = DEFAULTS.get(role, {"sub": f"test-{role}"}) | identity
    token = mint(auth or AuthSettings(), role=role, **claims)
    return {"Authorization": f"Bearer {token}"}
