"""Negotiation's view of the shared bearer tokens (``shared.auth``): the same ``Principal``,
roles and checks as every API, with the settings negotiation reads.

Scope in negotiation: customers see their own cases; agents and team leads their team's;
managers, the committee and auditors every case (auditors read only); the other roles
(channels, investigators, operations) have no business here and are refused at each
route's role gate (``docs/security.md``).

``mint(settings, ...)`` and ``verify(settings, token)`` take negotiation's ``Settings``,
whose ``auth`` is the shared ``PARLEY_AUTH_*`` settings with the older
``PARLEY_NEGOTIATION_JWT_*`` variables overriding them when set.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.auth import ROLES, TEAM_SCOPED, Principal
from shared.auth import mint as _mint
from shared.auth import verify as _verify
from shared.settings import CommonSettings

__all__ = ["ALL_CASES", "ROLES", "TEAM_SCOPED", "Principal", "mint", "verify"]

#: staff who see every negotiation case (agents and team leads see their team's)
ALL_CASES = frozenset({"manager", "committee", "auditor"})


def mint(
    settings: CommonSettings,
    *,
    sub: str,
    role: str,
    team: str | None = None,
    customer_id: str | None = None,
    ttl: timedelta = timedelta(hours=8),
    now: datetime | None = None,
) -> str:
    """Return a signed token for the given identity (``shared.auth.mint`` on ``settings.auth``)."""
    return _mint(settings.auth, sub=sub, role=role, team=team, customer_id=customer_id, ttl=ttl, now=now)


def verify(settings: CommonSettings, token: str) -> Principal:
    """Return the principal of a valid token, or raise ``Unauthenticated`` saying why."""
    return _verify(settings.auth, token)
