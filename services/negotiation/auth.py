"""Bearer tokens (JWT, HS256): who is calling, in which role, for which team or customer.

Claims: ``sub`` (the caller's id), ``role`` (customer | agent | team_lead | manager |
committee | auditor), ``team`` for staff of a team, ``customer_id`` for customers, ``exp``,
``iss`` and ``aud``. Scope: customers see their own cases; agents and team leads their
team's; managers, the committee and auditors every case (auditors read only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from services.negotiation.errors import Unauthenticated
from services.negotiation.settings import Settings

ROLES = ("customer", "agent", "team_lead", "manager", "committee", "auditor")
TEAM_SCOPED = frozenset({"agent", "team_lead"})
ALL_CASES = frozenset({"manager", "committee", "auditor"})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    sub: str
    role: str
    team: str | None = None
    customer_id: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role != "customer"


def mint(
    settings: Settings,
    *,
    sub: str,
    role: str,
    team: str | None = None,
    customer_id: str | None = None,
    ttl: timedelta = timedelta(hours=8),
    now: datetime | None = None,
) -> str:
    """Return a signed token for the given identity."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    now = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub, "role": role, "iat": now, "exp": now + ttl,
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
    }
    if team:
        claims["team"] = team
    if customer_id:
        claims["customer_id"] = customer_id
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def verify(settings: Settings, token: str) -> Principal:
    """Return the principal of a valid token, or raise ``Unauthenticated`` saying why."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "exp", "role"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("bearer token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"bearer token is invalid: {exc}") from None
    role = claims.get("role")
    if role not in ROLES:
        raise Unauthenticated("bearer token has an unknown role")
    if role == "customer" and not claims.get("customer_id"):
        raise Unauthenticated("a customer token must carry customer_id")
    if role in TEAM_SCOPED and not claims.get("team"):
        raise Unauthenticated(f"a {role} token must carry team")
    return Principal(
        sub=str(claims["sub"]), role=role, team=claims.get("team"),
        customer_id=claims.get("customer_id"),
    )
