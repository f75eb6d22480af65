"""The HTTP side of auth, the same for every API: who is calling, may their role use this
route, and may they see this case.

In the manner of Netflix Dispatch's permission dependencies, a route states its rule in its
signature and nothing else decides::

    Staff = Annotated[Principal, Depends(require(*STAFF))]

    @router.get("/cases/{case_id}")
    async def get_case(case_id: str, p: Staff) -> CaseView: ...

The checks run in a fixed order, before the body is validated or anything is read:
no or bad token → 401 (``Unauthenticated``), a role the route does not allow → 403
(``Forbidden``); then the route loads the case and ``check_scope`` answers 404 for a case
outside the caller's scope, so a customer cannot learn that someone else's case exists.
``install_auth(app, settings)`` is called when an API is built: it refuses unsafe
settings in production, so such an API never starts.
"""

# No ``from __future__ import annotations`` here: FastAPI reads ``RoleGate.__call__``'s
# annotations at runtime, and an instance has no module globals to resolve strings with.
import asyncio
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth.tokens import ROLES, Principal, Role, Verifier
from shared.errors import Forbidden, NotFound, Unauthenticated
from shared.settings import CommonSettings

_bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer",
    description="A JWT (HS256 by default, RS256 from an identity provider) with sub, role, "
    "exp, iss, aud; team for agents and team leads, customer_id for customers.",
)


class UnsafeSettings(RuntimeError):
    """The auth settings may not serve this environment (production with a weak secret)."""


def refuse_unsafe(settings: CommonSettings) -> None:
    """Raise ``UnsafeSettings`` when production would run on a default or short secret."""
    problems = settings.auth.unsafe_for(settings.environment)
    if problems:
        raise UnsafeSettings(f"refusing to serve {settings.environment}: {'; '.join(problems)} "
                             "(set a random secret of 32+ bytes, or RS256 with an identity provider)")


def install_auth(app: FastAPI, settings: CommonSettings) -> Verifier:
    """Check the settings for their environment and keep the app's verifier on ``app.state.auth``."""
    refuse_unsafe(settings)
    verifier = Verifier(settings.auth)
    app.state.auth = verifier
    return verifier


def verifier_of(app: Any) -> Verifier:
    """The app's verifier (made from ``app.state.settings`` when the API did not install one)."""
    verifier: Verifier | None = getattr(app.state, "auth", None)
    if verifier is None:
        verifier = install_auth(app, app.state.settings)
    return verifier


async def authenticate(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Return the caller of a request with a valid bearer token, or raise ``Unauthenticated``."""
    if creds is None:
        raise Unauthenticated("Authorization: Bearer <token> is required")
    verifier = verifier_of(request.app)
    if verifier.fetches_keys:  # PyJWKClient fetches over blocking HTTP (cached afterwards)
        principal = await asyncio.to_thread(verifier.verify, creds.credentials)
    else:
        principal = verifier.verify(creds.credentials)
    request.state.principal = principal  # for audit trails and logs
    return principal


class RoleGate:
    """A dependency that lets only ``roles`` through (403 for any other valid caller)."""

    def __init__(self, roles: frozenset[Role]) -> None:
        self.roles = roles

    async def __call__(self, p: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if p.role not in self.roles:
            raise Forbidden(f"role {p.role} may not use this endpoint "
                            f"(it is for: {', '.join(r for r in ROLES if r in self.roles)})")
        return p

    def __repr__(self) -> str:
        return f"require({', '.join(r for r in ROLES if r in self.roles)})"


def require(*roles: Role) -> RoleGate:
    """A dependency giving the caller when their role is one of ``roles``.

    ``Depends(require("ops", "auditor"))``; a route with no ``require`` is a mistake the
    access-matrix test finds.
    """
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"require() needs roles among {', '.join(ROLES)}; got {sorted(unknown) or 'none'}")
    return RoleGate(frozenset(roles))


def may_see(p: Principal, *, customer_id: str | None, team: str | None = None) -> bool:
    """Whether the caller's scope covers a case of ``customer_id`` (and ``team``, if it has one).

    Customers see only their own cases; agents and team leads only their team's where the
    case has a team; other roles that passed the route's gate see every case.
    """
    if p.is_customer:
        return customer_id is not None and customer_id == p.customer_id
    if p.team_scoped and team is not None:
        return team == p.team
    return True


def check_scope(p: Principal, *, customer_id: str | None, team: str | None = None,
                not_found: str = "not found") -> None:
    """Raise ``NotFound(not_found)`` when the case is outside the caller's scope.

    Give the same message as for a case that does not exist: a 404 must not tell whether
    it does.
    """
    if not may_see(p, customer_id=customer_id, team=team):
        raise NotFound(not_found)
