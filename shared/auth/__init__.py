"""One security model for every API: bearer tokens, roles, and scopes by team and customer.

- ``tokens``: ``Principal`` (sub, role, team, customer_id), the roles, ``mint`` and
  ``Verifier`` / ``verify`` (HS256 with ``PARLEY_AUTH_SECRET`` by default; RS256 with
  ``PARLEY_AUTH_JWKS_URL`` or ``PARLEY_AUTH_PUBLIC_KEY``; settings in
  ``shared.settings.AuthSettings``, on every service's settings as ``settings.auth``);
- ``api``: the FastAPI dependencies — ``authenticate`` (401), ``require(*roles)`` (403),
  ``check_scope`` (404 outside the caller's scope) — and ``install_auth``, which refuses a
  default or short secret in production;
- ``python -m shared.auth token --role ROLE --sub SUB [--team T] [--customer-id C]
  [--hours H]`` mints a development token.

Who may call which route of which API: ``docs/security.md``.
"""

from shared.auth.api import (
    RoleGate,
    UnsafeSettings,
    authenticate,
    check_scope,
    install_auth,
    may_see,
    refuse_unsafe,
    require,
    verifier_of,
)
from shared.auth.tokens import (
    CUSTOMER_SCOPED,
    READ_ONLY,
    ROLES,
    STAFF,
    TEAM_SCOPED,
    Principal,
    Role,
    Verifier,
    identity_problem,
    mint,
    principal_of,
    verify,
)
from shared.settings import AuthSettings

__all__ = [
    "CUSTOMER_SCOPED", "READ_ONLY", "ROLES", "STAFF", "TEAM_SCOPED", "AuthSettings", "Principal",
    "Role", "RoleGate", "UnsafeSettings", "Verifier", "authenticate", "check_scope",
    "identity_problem", "install_auth", "may_see", "mint", "principal_of", "refuse_unsafe",
    "require", "verifier_of", "verify",
]
