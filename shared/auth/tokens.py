"""Bearer tokens: who is calling, in which role, for which team or customer.

A token is a JWT with the claims ``sub`` (the caller's id), ``role`` (one of ``ROLES``),
``team`` (required of agents and team leads), ``customer_id`` (required of customers),
``exp``, ``iss`` and ``aud`` (``AuthSettings.issuer`` / ``.audience``). It is signed with
HS256 and ``AuthSettings.secret`` by default, or verified with RS256 against a real
identity provider's key (``public_key``, or ``jwks_url`` with the token's ``kid``).

Only the configured algorithm is accepted, so ``alg=none`` and HS/RS confusion fail like a
forged signature: ``Unauthenticated`` (401), saying why without echoing the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast, get_args

import jwt

from shared.errors import Unauthenticated
from shared.settings import AuthSettings

Role = Literal[
    "customer", "channel", "investigator", "agent", "team_lead", "manager", "committee", "ops",
    "auditor",
]
ROLES: tuple[Role, ...] = get_args(Role)

#: the institution's people (everyone but customers and the channels that submit complaints)
STAFF: frozenset[Role] = frozenset(
    {"investigator", "agent", "team_lead", "manager", "committee", "ops", "auditor"}
)
#: staff who read but never change anything
READ_ONLY: frozenset[Role] = frozenset({"auditor"})
#: staff who see only their own team's cases (where a case has a team); their tokens carry ``team``
TEAM_SCOPED: frozenset[Role] = frozenset({"agent", "team_lead"})
#: whose tokens carry ``customer_id`` and who see only that customer's cases
CUSTOMER_SCOPED: frozenset[Role] = frozenset({"customer"})

#: the largest value of a string claim we accept (ids, not documents)
MAX_CLAIM_CHARS = 128


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as its verified token says."""

    sub: str
    role: Role
    team: str | None = None
    customer_id: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")

    @property
    def is_staff(self) -> bool:
        """Whether the caller works for the institution (not a customer, not a channel)."""
        return self.role in STAFF

    @property
    def is_customer(self) -> bool:
        """Whether the caller is a customer (who sees only their own cases)."""
        return self.role in CUSTOMER_SCOPED

    @property
    def team_scoped(self) -> bool:
        """Whether the caller sees only their own team's cases."""
        return self.role in TEAM_SCOPED


def identity_problem(role: str, team: str | None, customer_id: str | None) -> str | None:
    """Why an identity is incomplete for its role (None when it is complete)."""
    if role not in ROLES:
        return "an unknown role"
    if role in CUSTOMER_SCOPED and not customer_id:
        return "a customer token must carry customer_id"
    if role in TEAM_SCOPED and not team:
        return f"{role} tokens must carry team"
    return None


def mint(
    settings: AuthSettings,
    *,
    sub: str,
    role: str,
    team: str | None = None,
    customer_id: str | None = None,
    ttl: timedelta = timedelta(hours=8),
    now: datetime | None = None,
    signing_key: str | None = None,
    kid: str | None = None,
) -> str:
    """Return a signed token for an identity (development tokens, tests, the demo).

    HS256 signs with ``settings.secret``; RS256 needs the private key in ``signing_key``
    (in production an identity provider issues RS256 tokens, not this function).
    """
    if role not in ROLES:  # an incomplete identity may be minted: verify refuses it (tests)
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not sub:
        raise ValueError("sub must not be empty")
    now = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub, "role": role, "iat": now, "exp": now + ttl,
        "iss": settings.issuer, "aud": settings.audience,
    }
    if team:
        claims["team"] = team
    if customer_id:
        claims["customer_id"] = customer_id
    if settings.algorithm == "HS256":
        key = signing_key or settings.secret.get_secret_value()
    elif signing_key is None:
        raise ValueError("RS256 tokens need the private key (signing_key); an identity provider issues them")
    else:
        key = signing_key
    return jwt.encode(claims, key, algorithm=settings.algorithm,
                      headers={"kid": kid} if kid else None)


class Verifier:
    """Check tokens against one ``AuthSettings`` (keeps the JWKS client and its key cache)."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._key: str | None = None
        self._jwks: jwt.PyJWKClient | None = None
        if settings.algorithm == "HS256":
            self._key = settings.secret.get_secret_value()
        elif settings.jwks_url:
            self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300, timeout=5)
        else:
            self._key = settings.public_key_pem()

    @property
    def fetches_keys(self) -> bool:
        """Whether verifying may fetch keys over the network (the JWKS URL)."""
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        """Return the principal of a valid token, or raise ``Unauthenticated`` saying why."""
        s = self.settings
        try:
            key: Any = self._key
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token, key, algorithms=[s.algorithm], audience=s.audience, issuer=s.issuer,
                leeway=s.leeway_s, options={"require": ["sub", "role", "exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("bearer token has expired") from None
        except jwt.PyJWKClientConnectionError:
            raise Unauthenticated("bearer token cannot be checked: the identity provider's keys "
                                  "are unreachable") from None
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
            raise Unauthenticated(f"bearer token is invalid: {exc}") from None
        return principal_of(claims)


def principal_of(claims: dict[str, Any]) -> Principal:
    """The principal of verified claims, or ``Unauthenticated`` when they do not make one."""
    strings = {}
    for name in ("sub", "role", "team", "customer_id"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_CLAIM_CHARS):
            raise Unauthenticated(f"bearer token has a malformed {name} claim")
        strings[name] = value or None
    sub, role = strings["sub"], strings["role"]
    if not sub:
        raise Unauthenticated("bearer token has an empty sub")
    problem = identity_problem(role or "", strings["team"], strings["customer_id"])
    if problem is not None:
        raise Unauthenticated(f"bearer token has {problem}" if problem == "an unknown role" else problem)
    return Principal(sub=sub, role=cast(Role, role), team=strings["team"],
                     customer_id=strings["customer_id"])


def verify(settings: AuthSettings, token: str) -> Principal:
    """Return the principal of a valid token (a one-off ``Verifier``)."""
    return Verifier(settings).verify(token)
