"""What every route shares: its dependencies, the caller's identity, versions, languages,
relaying the events a write owes, and the documented error answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.negotiation.api.schemas import Versioned
from services.negotiation.auth import Principal, verify
from services.negotiation.errors import Forbidden, Unauthenticated, Unprocessable
from services.negotiation.repository import Repository
from services.negotiation.settings import Settings
from shared.http import ErrorBody

log = logging.getLogger(__name__)

SendFn = Callable[[str, bytes, bytes], Awaitable[object]]


class Deps:
    """What routes need: settings, the repository, a sender for owed events, a clock."""

    def __init__(self, settings: Settings, repo: Repository | None = None, send: SendFn | None = None) -> None:
        self.settings = settings
        self.repo: Repository | None = repo
        self.send: SendFn | None = send
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def get_deps(request: Request) -> Deps:
    """The app's dependencies (``app.state.deps``)."""
    return request.app.state.deps  # type: ignore[no-any-return]


def repo_of(d: Deps) -> Repository:
    """The repository, once the lifespan has set it up."""
    assert d.repo is not None, "the API's lifespan sets up the repository"
    return d.repo


_bearer = HTTPBearer(auto_error=False, description="JWT issued for Parley (HS256).")


async def principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate the caller."""
    if creds is None:
        raise Unauthenticated("Authorization: Bearer <token> is required")
    p = verify(get_deps(request).settings, creds.credentials)
    request.state.principal = p
    return p


def expected_version(if_match: str | None, body: Versioned | None) -> int | None:
    """The version a change was made against: ``If-Match`` first, then ``expected_version``."""
    if if_match:
        text = if_match.strip().removeprefix("W/").strip('"')
        try:
            return int(text)
        except ValueError:
            raise Unprocessable("If-Match must be the case version, e.g. \"3\"", field="If-Match") from None
    return body.expected_version if body is not None else None


def language(accept_language: str | None) -> str:
    """zh-CN unless the caller asks for English."""
    return "en" if (accept_language or "").strip().lower().startswith("en") else "zh-CN"


def staff_only(p: Principal) -> None:
    """Refuse customers on the staff API."""
    if p.role == "customer":
        raise Forbidden("this endpoint is for staff; customers use /customer/...")


def customer_only(p: Principal) -> None:
    """Refuse staff on the customer API."""
    if p.role != "customer":
        raise Forbidden("the customer API needs a customer token")


async def publish_owed(d: Deps, case_id: str) -> None:
    """Relay the events a write owes; a failure leaves them for the worker's sweep."""
    if d.send is None:
        return
    try:
        await repo_of(d).relay(case_id, d.send)
    except Exception:  # noqa: BLE001 - the outbox keeps them; the sweep publishes later
        log.warning("could not publish events now; the worker's sweep will", exc_info=True)


Caller = Annotated[Principal, Depends(principal)]
IfMatch = Annotated[str | None, Header(description="Version the change was made against.")]
AcceptLanguage = Annotated[str | None, Header(description="zh-CN (default) or en.")]
D = Annotated[Deps, Depends(get_deps)]


_TEXT = {
    401: "No valid bearer token.", 403: "Beyond the caller's role, authority or recusal.",
    404: "Unknown, or outside the caller's scope.", 409: "Changed since read, or not allowed in this state.",
    422: "The request is invalid; the message names the field.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for these error statuses (the shared error body)."""
    return {c: {"model": ErrorBody, "description": _TEXT[c]} for c in codes}


READ_ERRORS = errors(401, 404, 422)
WRITE_ERRORS = errors(401, 403, 404, 409, 422)
