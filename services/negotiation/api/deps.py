"""What every route shares: its dependencies, the caller's identity and role gate (from
``shared.auth``), the case behind a path checked for scope and recusal, versions, languages,
relaying the events a write owes, and the documented error answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from services.negotiation import handlers
from services.negotiation.api.schemas import Versioned
from services.negotiation.auth import Principal
from services.negotiation.errors import Forbidden, Unprocessable
from services.negotiation.handlers.common import conflicted
from services.negotiation.models import Workspace
from services.negotiation.repository import Repository
from services.negotiation.settings import Settings
from shared import clock as shared_clock
from shared.auth import Role, RoleGate, authenticate, require
from shared.http import ErrorBody

log = logging.getLogger(__name__)

SendFn = Callable[[str, bytes, bytes], Awaitable[object]]


class Deps:
    """What routes need: settings, the repository, a sender for owed events, a clock."""

    def __init__(self, settings: Settings, repo: Repository | None = None, send: SendFn | None = None) -> None:
        self.settings = settings
        self.repo: Repository | None = repo
        self.send: SendFn | None = send
        self.clock: Callable[[], datetime] = shared_clock.now


def get_deps(request: Request) -> Deps:
    """The app's dependencies (``app.state.deps``)."""
    return request.app.state.deps  # type: ignore[no-any-return]


def repo_of(d: Deps) -> Repository:
    """The repository, once the lifespan has set it up."""
    assert d.repo is not None, "the API's lifespan sets up the repository"
    return d.repo


# Who may call which route (docs/security.md): each route names one of these gates, and
# ``shared.auth`` answers 401 (no or bad token) and 403 (role not let through) before the
# route reads anything.
STAFF_READ: tuple[Role, ...] = ("agent", "team_lead", "manager", "committee", "auditor")
STAFF_ACT: tuple[Role, ...] = ("agent", "team_lead", "manager", "committee")
LEADS: tuple[Role, ...] = ("team_lead", "manager", "committee")
AUDIT_READERS: tuple[Role, ...] = ("auditor", "manager", "committee")

staff_reader = require(*STAFF_READ)
staff_actor = require(*STAFF_ACT)
lead = require(*LEADS)
audit_reader = require(*AUDIT_READERS)
customer_gate = require("customer")
plan_user = require("customer", *STAFF_READ)


async def principal(p: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """Authenticate the caller (any role; routes use a gate instead)."""
    return p


async def not_recused(ws: Workspace, p: Principal, repo: Repository) -> None:
    """Refuse (403) a caller recused from the case or conflicted with its customer (回避)."""
    if p.role != "customer" and await conflicted(ws, p.sub, repo):
        raise Forbidden(f"you are recused from case {ws.case_id} (回避) and may not see or act on it")


def case_behind(gate: RoleGate) -> Callable[..., Awaitable[Workspace]]:
    """A dependency giving the path's case to a caller through ``gate``: 404 outside their
    scope, 403 when they are recused from it — reads included."""

    # ``Depends(gate)`` as a default: the string annotations of this module cannot name the
    # closure's ``gate``
    async def reachable_case(case_id: str, p: Principal = Depends(gate),  # noqa: B008
                             d: Deps = Depends(get_deps)) -> Workspace:  # noqa: B008
        repo = repo_of(d)
        ws = await handlers.load_case(case_id, p, repo=repo)
        await not_recused(ws, p, repo)
        return ws

    return reachable_case


read_case = case_behind(staff_reader)
act_case = case_behind(staff_actor)
lead_case = case_behind(lead)


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
    """Refuse customers on the staff API (the route gates do this first)."""
    if p.role == "customer":
        raise Forbidden("this endpoint is for staff; customers use /customer/...")


def customer_only(p: Principal) -> None:
    """Refuse staff on the customer API (the route gates do this first)."""
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
StaffReader = Annotated[Principal, Depends(staff_reader)]
StaffActor = Annotated[Principal, Depends(staff_actor)]
Lead = Annotated[Principal, Depends(lead)]
AuditReader = Annotated[Principal, Depends(audit_reader)]
CustomerCaller = Annotated[Principal, Depends(customer_gate)]
PlanUser = Annotated[Principal, Depends(plan_user)]
ReadCase = Annotated[Workspace, Depends(read_case)]
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


READ_ERRORS = errors(401, 403, 404, 422)
WRITE_ERRORS = errors(401, 403, 404, 409, 422)
