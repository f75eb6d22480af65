"""HTTP face of negotiation: the staff API and the customer API (``/customer/...``).

Every endpoint but ``/health`` needs a bearer token (``shared.auth``; each route's roles
are in ``docs/security.md``). Errors are the shared error body
``{"detail", "field", "errors"}`` (``shared.http``) with a 4xx status: 401 no/invalid token,
403 a known case but the action is beyond the caller's role, authority or recusal, 404
unknown or outside the caller's scope, 409 a stale version or a state that does not allow
it, 422 bad input. Every request to a case, and every refusal, is written to the
append-only audit log. Changing requests take the version they were made against in
``If-Match`` (or ``expected_version`` in the body).

Rooms: ``schemas`` (request and response bodies), ``deps`` (dependencies, identity,
versions), ``staff`` and ``customer`` (the two routers), ``customer_view`` (plain words for
the customer), ``audit`` (the audit middleware).

For the shared service spec: ``routers(settings)`` are the API's routers and
``install_api(app, settings)`` adds the audit middleware. ``install(app)`` does all of it
(routers, ``/health``, error handlers, audit) for an app built by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from services.negotiation.api.audit import install_audit
from services.negotiation.api.customer import customer
from services.negotiation.api.deps import Deps
from services.negotiation.api.staff import directory, router
from services.negotiation.settings import Settings
from shared.auth import install_auth
from shared.http import install_error_handlers

__all__ = ["Deps", "customer", "directory", "install", "install_api", "router", "routers"]


class Health(BaseModel):
    status: Literal["ok"]


health_router = APIRouter()


@health_router.get("/health", response_model=Health, tags=["ops"])
async def health() -> Health:
    """Liveness."""
    return Health(status="ok")


def routers(settings: Settings | None = None) -> Sequence[APIRouter]:
    """The API's routers (staff, directory and tools, customer); ``/health`` is the runtime's."""
    return [router, directory, customer]


def install_api(app: FastAPI, settings: Settings | None = None) -> None:
    """Add what the routers need beyond the shared runtime: the token check (refusing
    unsafe settings in production) and the audit middleware."""
    if settings is not None:
        install_auth(app, settings)
    install_audit(app)


def install(app: FastAPI) -> None:
    """Add ``/health``, the routers, the shared error handlers and the audit middleware."""
    app.include_router(health_router)
    for r in routers():
        app.include_router(r)
    install_error_handlers(app)
    install_api(app)
