"""HTTP face of negotiation: the agents' API and the customer API (``/customer/...``).

Every endpoint but ``/health`` needs a bearer token. Errors are JSON ``{"detail", "field"}``
(or ``"errors"`` for request validation) with a 4xx status: 401 no/invalid token, 403 a
known case but the action is beyond the caller's role, authority or recusal, 404 unknown or
outside the caller's scope, 409 a stale version or a state that does not allow it, 422 bad
input. Every request to a case, and every refusal, is written to the append-only audit log.
Changing requests take the version they were made against in ``If-Match`` (or
``expected_version`` in the body).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, Field

from services.negotiation import handlers
from services.negotiation.auth import Principal, verify
from services.negotiation.authority import rank
from services.negotiation.errors import Forbidden, NegotiationError, NotFound, Unprocessable
from services.negotiation.models import (
    AgentProfile,
    Agreement,
    AuthorityCheck,
    Dossier,
    FairnessComparison,
    Lang,
    Model,
    Offer,
    ScheduleRow,
    Term,
    Workspace,
)
from services.negotiation.plan import PlanError, compute_plan
from services.negotiation.repository import Repository
from services.negotiation.settings import Settings
from services.negotiation.texts import customer_status, customer_timeline, describe_offer
from shared.contracts.common import Money
from shared.logging import log_context

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ error and request models


class FieldProblem(BaseModel):
    """One problem with one field of the request."""

    field: str
    problem: str


class ErrorBody(BaseModel):
    """Every error answer."""

    detail: str = Field(description="What is wrong, in words.")
    field: str | None = Field(None, description="The field at fault, when there is one.")
    errors: list[FieldProblem] = Field(default_factory=list)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "No valid bearer token.", 403: "Beyond the caller's role, authority or recusal.",
        404: "Unknown, or outside the caller's scope.", 409: "Changed since read, or not allowed in this state.",
        422: "The request is invalid; the message names the field.",
    }
    return {c: {"model": ErrorBody, "description": text[c]} for c in codes}


READ_ERRORS = _errors(401, 404, 422)
WRITE_ERRORS = _errors(401, 403, 404, 409, 422)


class Versioned(Model):
    """A change made against a known version of the case."""

    expected_version: int | None = Field(None, ge=0, description="Or send If-Match.")


class OfferRequest(Versioned):
    """An offer an agent proposes."""

    terms: list[Term] = Field(min_length=1, max_length=12)
    reason: str = Field(min_length=1, max_length=2000, description="Why this offer (kept in the dossier).")
    justification: str | None = Field(
        None, max_length=4000, description="Required when the fairness check flags the offer."
    )
    final: bool = Field(False, description="The institution's final offer: rejecting it ends negotiation.")
    responds_to: str | None = Field(None, description="The customer counter-offer this answers.")


class PreviewRequest(Model):
    """An offer to check (schedule, fairness, authority) without saving."""

    terms: list[Term] = Field(min_length=1, max_length=12)


class PreviewResponse(BaseModel):
    """What an offer would be."""

    terms: list[Term]
    concession: Money
    fairness: FairnessComparison
    authority: AuthorityCheck


class ApprovalRequest(Versioned):
    """An approver's decision."""

    decision: Literal["approve", "reject"]
    reason: str = Field("", max_length=2000, description="Required when rejecting.")


class WithdrawRequest(Versioned):
    reason: str = Field(min_length=1, max_length=2000)


class MessageRequest(Versioned):
    """A message, call note or meeting note."""

    body: str = Field(min_length=1, max_length=8000)
    direction: Literal["inbound", "outbound", "note"] = "outbound"
    channel: Literal["in_app", "sms", "call", "meeting", "letter", "email"] = "in_app"


class CustomerMessageRequest(Versioned):
    body: str = Field(min_length=1, max_length=8000)


class AssignRequest(Versioned):
    agent_id: str | None = Field(None, description="Omit to pick by skill and load.")


class RecusalRequest(Versioned):
    agent_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=1000)


class EscalateRequest(Versioned):
    target: Literal["mediation", "litigation"]
    reason: str = Field(min_length=1, max_length=2000)


class AcceptRequest(Versioned):
    channel: Literal["in_app", "sms", "call", "meeting", "letter", "email"] = "in_app"


class RecordAcceptanceRequest(Versioned):
    """An acceptance the customer gave outside the app."""

    channel: Literal["sms", "call", "meeting", "letter", "email"]
    note: str = Field("", max_length=2000, description="E.g. where the signed letter is filed.")


class HardshipRequest(Versioned):
    hardship: bool
    reason: str = Field(min_length=1, max_length=1000, description="What changed (illness, income loss...).")


class RejectRequest(Versioned):
    reason: str = Field("", max_length=2000)
    escalate_to: Literal["mediation", "litigation"] = Field(
        "mediation", description="Where the case goes if this was the final offer."
    )


class CounterRequest(Versioned):
    message: str = Field(min_length=1, max_length=4000, description="What the customer asks for, in words.")
    terms: list[Term] = Field(default_factory=list, max_length=12, description="Optional typed terms.")


class PlanRequest(Model):
    """Instalment plan parameters."""

    amount: Money = Field(gt=Decimal("0"))
    months: int = Field(ge=1, le=60)
    first_due_date: date
    annual_rate_pct: Decimal = Field(Decimal("0"), ge=0, le=36, decimal_places=2)
    method: Literal["annuity", "equal_principal"] = "annuity"


class PlanResponse(BaseModel):
    schedule: list[ScheduleRow]
    total_principal: Money
    total_interest: Money
    total_payable: Money


class CaseSummary(BaseModel):
    case_id: str
    case_number: str
    status: str
    category: str | None
    team: str | None
    assigned_agent: str | None
    deadline_at: AwareDatetime | None
    version: int


class OfferResult(BaseModel):
    version: int
    offer: Offer


class CaseResult(BaseModel):
    version: int
    status: str


class CustomerOffer(BaseModel):
    offer_id: str
    final: bool
    description: str = Field(description="The terms in plain words.")
    concession: Money
    comparison: str | None = Field(None, description="How it compares with similar cases.")
    terms: list[Term]


class CustomerMessage(BaseModel):
    at: AwareDatetime
    sender: Literal["you", "us"]
    body: str


class CustomerStep(BaseModel):
    at: AwareDatetime
    text: str


class CustomerCaseView(BaseModel):
    """What the customer sees: status, next step, deadline and open offers in plain words."""

    case_id: str
    case_number: str
    language: Lang
    status: str
    status_text: str
    next_step: str
    deadline_at: AwareDatetime | None
    deadline_text: str
    open_offers: list[CustomerOffer]
    timeline: list[CustomerStep] = Field(default_factory=list, description="What has happened, in plain words.")
    messages: list[CustomerMessage]
    agreement_id: str | None = None
    version: int


class AuditEntry(BaseModel):
    at: AwareDatetime
    actor: str | None
    role: str | None
    method: str
    path: str
    case_id: str | None
    status: int
    outcome: Literal["allowed", "refused", "rejected"]
    reason: str | None = None


class Health(BaseModel):
    status: Literal["ok"]


# ------------------------------------------------------------------ wiring


class Deps:
    """What routes need, set up in the lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.repo: Repository | None = None
        self.send: Callable[[str, bytes, bytes], Awaitable[object]] | None = None
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def _deps(request: Request) -> Deps:
    return request.app.state.deps  # type: ignore[no-any-return]


_bearer = HTTPBearer(auto_error=False, description="JWT issued for Parley (HS256).")


async def principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate the caller."""
    if creds is None:
        from services.negotiation.errors import Unauthenticated

        raise Unauthenticated("Authorization: Bearer <token> is required")
    p = verify(_deps(request).settings, creds.credentials)
    request.state.principal = p
    return p


def _version(if_match: str | None, body: Versioned | None) -> int | None:
    if if_match:
        text = if_match.strip().removeprefix("W/").strip('"')
        try:
            return int(text)
        except ValueError:
            raise Unprocessable("If-Match must be the case version, e.g. \"3\"", field="If-Match") from None
    return body.expected_version if body is not None else None


def _lang(accept_language: str | None) -> str:
    return "en" if (accept_language or "").strip().lower().startswith("en") else "zh-CN"


Caller = Annotated[Principal, Depends(principal)]
IfMatch = Annotated[str | None, Header(description="Version the change was made against.")]
AcceptLanguage = Annotated[str | None, Header(description="zh-CN (default) or en.")]
D = Annotated[Deps, Depends(_deps)]


async def _published(d: Deps, case_id: str) -> None:
    """Relay the events a write owes; a failure leaves them for the worker's sweep."""
    assert d.repo is not None and d.send is not None
    try:
        await d.repo.relay(case_id, d.send)
    except Exception:  # noqa: BLE001 - the outbox keeps them; the sweep publishes later
        log.warning("could not publish events now; the worker's sweep will", exc_info=True)


def _staff_only(p: Principal) -> None:
    if p.role == "customer":
        raise Forbidden("this endpoint is for staff; customers use /customer/...")


router = APIRouter()


@router.get("/health", response_model=Health, tags=["ops"])
async def health() -> Health:
    """Liveness."""
    return Health(status="ok")


@router.get("/cases", response_model=list[CaseSummary], responses=READ_ERRORS, tags=["agents"])
async def list_cases(
    p: Caller, d: D,
    status: Annotated[Literal["open", "agreed", "escalated"] | None, Query()] = None,
    mine: Annotated[bool, Query(description="Only cases assigned to me.")] = False,
) -> list[CaseSummary]:
    """List the cases in the caller's scope (agents and team leads: their team)."""
    _staff_only(p)
    assert d.repo is not None
    query: dict[str, Any] = {"status": status or {"$ne": "awaiting_investigation"}}
    if p.role in ("agent", "team_lead"):
        query["team"] = p.team
    if mine:
        query["assigned_agent"] = p.sub
    return [CaseSummary(**w.model_dump(include=set(CaseSummary.model_fields))) for w in await d.repo.find(query)]


class CaseView(Workspace):
    """The workspace and the customer's other cases (in the caller's scope)."""

    customer_history: list[CaseSummary] = Field(default_factory=list)


@router.get("/cases/{case_id}", response_model=CaseView, responses=READ_ERRORS, tags=["agents"])
async def get_case(case_id: str, p: Caller, d: D, response: Response) -> CaseView:
    """The workspace: complaint, findings, evidence, communications, offers, timeline, history."""
    _staff_only(p)
    assert d.repo is not None
    ws = await handlers.load_case(case_id, p, repo=d.repo)
    others = await d.repo.find({"customer_id": ws.customer_id, "_id": {"$ne": case_id}}) if ws.customer_id else []
    history = [
        CaseSummary(**o.model_dump(include=set(CaseSummary.model_fields)))
        for o in others if handlers.in_scope(o, p)
    ]
    response.headers["ETag"] = f'"{ws.version}"'
    return CaseView(**ws.model_dump(), customer_history=history)


@router.post("/cases/{case_id}/assign", response_model=CaseResult, responses=WRITE_ERRORS, tags=["agents"])
async def assign(case_id: str, body: AssignRequest, p: Caller, d: D, if_match: IfMatch = None) -> CaseResult:
    """Assign the case (team leads and up); without agent_id, by skill and load."""
    assert d.repo is not None
    ws = await handlers.assign(case_id, body.agent_id, p=p, expected_version=_version(if_match, body),
                               repo=d.repo, now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/recusals", response_model=CaseResult, responses=WRITE_ERRORS, tags=["agents"])
async def recuse(case_id: str, body: RecusalRequest, p: Caller, d: D, if_match: IfMatch = None) -> CaseResult:
    """Record a recusal (回避): the agent can no longer be assigned or act on the case."""
    assert d.repo is not None
    ws = await handlers.recuse(case_id, body.agent_id, body.reason, p=p,
                               expected_version=_version(if_match, body), repo=d.repo, now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/messages", response_model=CaseResult, status_code=201,
             responses=WRITE_ERRORS, tags=["agents"])
async def add_message(case_id: str, body: MessageRequest, p: Caller, d: D, if_match: IfMatch = None) -> CaseResult:
    """Log a message to or from the customer, a call note or a meeting note."""
    _staff_only(p)
    assert d.repo is not None
    ws = await handlers.log_message(case_id, body=body.body, direction=body.direction, channel=body.channel,
                                    p=p, expected_version=_version(if_match, body), repo=d.repo, now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/offers/preview", response_model=PreviewResponse,
             responses=WRITE_ERRORS, tags=["agents"])
async def preview(case_id: str, body: PreviewRequest, p: Caller, d: D) -> PreviewResponse:
    """Compute an offer's schedule, fairness comparison and authority without saving it."""
    _staff_only(p)
    assert d.repo is not None
    terms, concession, fairness, check = await handlers.preview_offer(
        case_id, list(body.terms), p=p, repo=d.repo, settings=d.settings)
    return PreviewResponse(terms=terms, concession=concession, fairness=fairness, authority=check)


@router.post("/cases/{case_id}/offers", response_model=OfferResult, status_code=201,
             responses=WRITE_ERRORS, tags=["agents"])
async def make_offer(case_id: str, body: OfferRequest, p: Caller, d: D, if_match: IfMatch = None) -> OfferResult:
    """Propose an offer; above the proposer's authority it waits for approval."""
    assert d.repo is not None
    ws, offer = await handlers.make_offer(
        case_id, terms=list(body.terms), reason=body.reason, justification=body.justification,
        final=body.final, responds_to=body.responds_to, p=p, expected_version=_version(if_match, body),
        repo=d.repo, settings=d.settings, now=d.clock())
    await _published(d, case_id)
    return OfferResult(version=ws.version, offer=offer)


@router.post("/cases/{case_id}/offers/{offer_id}/approval", response_model=OfferResult,
             responses=WRITE_ERRORS, tags=["agents"])
async def decide(case_id: str, offer_id: str, body: ApprovalRequest, p: Caller, d: D,
                 if_match: IfMatch = None) -> OfferResult:
    """Approve, or reject with a reason, an offer waiting for approval."""
    assert d.repo is not None
    ws, offer = await handlers.decide_approval(
        case_id, offer_id, approve=body.decision == "approve", note=body.reason, p=p,
        expected_version=_version(if_match, body), repo=d.repo, now=d.clock())
    await _published(d, case_id)
    return OfferResult(version=ws.version, offer=offer)


@router.post("/cases/{case_id}/offers/{offer_id}/withdraw", response_model=CaseResult,
             responses=WRITE_ERRORS, tags=["agents"])
async def withdraw(case_id: str, offer_id: str, body: WithdrawRequest, p: Caller, d: D,
                   if_match: IfMatch = None) -> CaseResult:
    """Withdraw an offer the customer has not answered."""
    assert d.repo is not None
    ws = await handlers.withdraw_offer(case_id, offer_id, reason=body.reason, p=p,
                                       expected_version=_version(if_match, body), repo=d.repo, now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/offers/{offer_id}/record-acceptance", response_model=CaseResult,
             responses=WRITE_ERRORS, tags=["agents"])
async def record_acceptance(case_id: str, offer_id: str, body: RecordAcceptanceRequest, p: Caller, d: D,
                            if_match: IfMatch = None) -> CaseResult:
    """Record an acceptance the customer gave by phone, letter or in person."""
    assert d.repo is not None
    ws = await handlers.record_acceptance(case_id, offer_id, channel=body.channel, note=body.note, p=p,
                                          expected_version=_version(if_match, body), repo=d.repo, now=d.clock())
    await _published(d, case_id)
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/hardship", response_model=CaseResult, responses=WRITE_ERRORS, tags=["agents"])
async def hardship(case_id: str, body: HardshipRequest, p: Caller, d: D, if_match: IfMatch = None) -> CaseResult:
    """Record the customer's hardship; offers are then compared with hardship cases."""
    _staff_only(p)
    assert d.repo is not None
    ws = await handlers.set_hardship(case_id, hardship=body.hardship, reason=body.reason, p=p,
                                     expected_version=_version(if_match, body), repo=d.repo, now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/escalate", response_model=CaseResult, responses=WRITE_ERRORS, tags=["agents"])
async def escalate(case_id: str, body: EscalateRequest, p: Caller, d: D, if_match: IfMatch = None) -> CaseResult:
    """End negotiation: mediation or litigation, with a dossier."""
    _staff_only(p)
    assert d.repo is not None
    ws = await handlers.escalate(case_id, target=body.target, reason=body.reason, p=p,
                                 expected_version=_version(if_match, body), repo=d.repo,
                                 settings=d.settings, now=d.clock())
    await _published(d, case_id)
    return CaseResult(version=ws.version, status=ws.status)


@router.get("/cases/{case_id}/agreement", response_model=Agreement, responses=READ_ERRORS, tags=["agents"])
async def agreement(case_id: str, p: Caller, d: D) -> Agreement:
    """The settlement agreement (zh-CN and English) with the recorded acceptance."""
    _staff_only(p)
    assert d.repo is not None
    ws = await handlers.load_case(case_id, p, repo=d.repo)
    if ws.agreement is None:
        raise NotFound(f"case {case_id} has no agreement")
    return ws.agreement


async def _dossier(case_id: str, p: Principal, d: Deps) -> dict[str, Any]:
    _staff_only(p)
    assert d.repo is not None
    ws = await handlers.load_case(case_id, p, repo=d.repo)
    stored = await d.repo.get_dossier(ws.escalation.dossier_id) if ws.escalation else None
    if stored is None:
        raise NotFound(f"case {case_id} has no dossier (it was not escalated)")
    return stored


@router.get("/cases/{case_id}/dossier", response_model=Dossier, responses=READ_ERRORS, tags=["agents"])
async def dossier(case_id: str, p: Caller, d: D) -> Dossier:
    """The escalation dossier as JSON."""
    return Dossier.model_validate((await _dossier(case_id, p, d))["json"])


_JSON_ERRORS_FOR_HTML: dict[int | str, dict[str, Any]] = {
    code: {
        "description": spec["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for code, spec in READ_ERRORS.items()
}


@router.get("/cases/{case_id}/dossier.html", response_class=HTMLResponse,
            responses=_JSON_ERRORS_FOR_HTML, tags=["agents"])
async def dossier_page(case_id: str, p: Caller, d: D) -> HTMLResponse:
    """The escalation dossier as a readable page (zh-CN first, English second)."""
    return HTMLResponse((await _dossier(case_id, p, d))["html"])


@router.get("/agents", response_model=list[AgentProfile], responses=READ_ERRORS, tags=["directory"])
async def list_agents(p: Caller, d: D) -> list[AgentProfile]:
    """The agent directory (team leads: their team)."""
    _staff_only(p)
    assert d.repo is not None
    return await d.repo.list_agents(p.team if p.role in ("agent", "team_lead") else None)


@router.put("/agents/{agent_id}", response_model=AgentProfile, responses=WRITE_ERRORS, tags=["directory"])
async def put_agent(agent_id: str, body: AgentProfile, p: Caller, d: D) -> AgentProfile:
    """Create or update an agent's skills, capacity and conflicts (team leads: own team)."""
    assert d.repo is not None
    if rank(p.role) < rank("team_lead"):
        raise Forbidden("only a team lead, manager or the committee may edit the directory")
    if body.agent_id != agent_id:
        raise Unprocessable("agent_id in the body must match the path", field="agent_id")
    if p.role == "team_lead" and body.team != p.team:
        raise Forbidden("a team lead may edit only their own team")
    if rank(body.role) > rank(p.role):
        raise Forbidden("you cannot give a role above your own")
    await d.repo.put_agent(body)
    return body


@router.post("/plans/instalment", response_model=PlanResponse, responses=_errors(401, 422), tags=["tools"])
async def plan(body: PlanRequest, p: Caller) -> PlanResponse:
    """Compute an instalment schedule (exact decimals, due dates clamped to month ends)."""
    try:
        computed = compute_plan(body.amount, body.months, body.first_due_date,
                                annual_rate_pct=body.annual_rate_pct, method=body.method)
    except PlanError as exc:
        raise Unprocessable(str(exc), field=exc.field) from None
    rows = [ScheduleRow(number=r.number, due_date=r.due_date, principal=r.principal, interest=r.interest,
                        payment=r.payment, balance_after=r.balance_after) for r in computed.instalments]
    return PlanResponse(schedule=rows, total_principal=computed.amount,
                        total_interest=computed.total_interest, total_payable=computed.total_payable)


@router.get("/audit", response_model=list[AuditEntry], responses=_errors(401, 403, 422), tags=["audit"])
async def audit(
    p: Caller, d: D, case_id: Annotated[str | None, Query()] = None,
    outcome: Annotated[Literal["allowed", "refused", "rejected"] | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Read the audit trail (auditors, managers, the committee)."""
    assert d.repo is not None
    if p.role not in ("auditor", "manager", "committee"):
        raise Forbidden("only auditors, managers and the committee may read the audit trail")
    query: dict[str, Any] = {}
    if case_id:
        query["case_id"] = case_id
    if outcome:
        query["outcome"] = outcome
    return await d.repo.audit_entries(query)


# ------------------------------------------------------------------ customer API

customer = APIRouter(prefix="/customer", tags=["customer"])


def _customer_only(p: Principal) -> None:
    if p.role != "customer":
        raise Forbidden("the customer API needs a customer token")


def _customer_view(ws: Workspace, lang: str) -> CustomerCaseView:
    status_text, next_step = customer_status(ws, lang)
    zh = lang != "en"
    if ws.deadline_at is None:
        deadline_text = ""
    elif zh:
        deadline_text = f"我们最迟将于 {ws.deadline_at:%Y年%m月%d日} 给您答复。"
    else:
        deadline_text = f"We will give you our answer by {ws.deadline_at:%d %B %Y}."
    offers = [
        CustomerOffer(
            offer_id=o.offer_id, final=o.final, description=describe_offer(o, lang),
            concession=o.concession, terms=o.terms,
            comparison=(o.fairness.explanation_zh if zh else o.fairness.explanation_en)
            if o.fairness and o.fairness.comparable else None,
        )
        for o in ws.offers if o.party == "institution" and o.status == "open"
    ]
    messages = [
        CustomerMessage(at=m.at, sender="you" if m.author.role == "customer" else "us", body=m.body)
        for m in ws.messages if m.direction != "note"
    ]
    return CustomerCaseView(
        case_id=ws.case_id, case_number=ws.case_number, language="en" if not zh else "zh-CN",
        status=ws.status, status_text=status_text, next_step=next_step, deadline_at=ws.deadline_at,
        deadline_text=deadline_text, open_offers=offers, messages=messages,
        timeline=[CustomerStep(at=at, text=text) for at, text in customer_timeline(ws, lang)],  # type: ignore[arg-type]
        agreement_id=ws.agreement.agreement_id if ws.agreement else None, version=ws.version,
    )


@customer.get("/cases", response_model=list[CustomerCaseView], responses=READ_ERRORS)
async def my_cases(p: Caller, d: D, accept_language: AcceptLanguage = None) -> list[CustomerCaseView]:
    """Your cases."""
    _customer_only(p)
    assert d.repo is not None
    found = await d.repo.find({"customer_id": p.customer_id, "status": {"$ne": "awaiting_investigation"}})
    return [_customer_view(ws, _lang(accept_language)) for ws in found]


@customer.get("/cases/{case_id}", response_model=CustomerCaseView, responses=READ_ERRORS)
async def my_case(case_id: str, p: Caller, d: D, response: Response,
                  accept_language: AcceptLanguage = None) -> CustomerCaseView:
    """Status, next step, deadline and open offers, in plain words."""
    _customer_only(p)
    assert d.repo is not None
    ws = await handlers.load_case(case_id, p, repo=d.repo)
    response.headers["ETag"] = f'"{ws.version}"'
    return _customer_view(ws, _lang(accept_language))


@customer.post("/cases/{case_id}/messages", response_model=CaseResult, status_code=201, responses=WRITE_ERRORS)
async def my_message(case_id: str, body: CustomerMessageRequest, p: Caller, d: D,
                     if_match: IfMatch = None) -> CaseResult:
    """Write to the agent."""
    _customer_only(p)
    assert d.repo is not None
    ws = await handlers.log_message(case_id, body=body.body, direction="inbound", channel="in_app", p=p,
                                    expected_version=_version(if_match, body), repo=d.repo, now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@customer.post("/cases/{case_id}/offers/{offer_id}/accept", response_model=CaseResult, responses=WRITE_ERRORS)
async def my_accept(case_id: str, offer_id: str, body: AcceptRequest, p: Caller, d: D,
                    if_match: IfMatch = None) -> CaseResult:
    """Accept an offer: the settlement agreement is made and binding."""
    assert d.repo is not None
    ws = await handlers.accept_offer(case_id, offer_id, channel=body.channel, p=p,
                                     expected_version=_version(if_match, body), repo=d.repo, now=d.clock())
    await _published(d, case_id)
    return CaseResult(version=ws.version, status=ws.status)


@customer.post("/cases/{case_id}/offers/{offer_id}/reject", response_model=CaseResult, responses=WRITE_ERRORS)
async def my_reject(case_id: str, offer_id: str, body: RejectRequest, p: Caller, d: D,
                    if_match: IfMatch = None) -> CaseResult:
    """Reject an offer; rejecting the final offer sends the case to mediation or litigation."""
    assert d.repo is not None
    ws = await handlers.reject_offer(case_id, offer_id, reason=body.reason, escalate_to=body.escalate_to,
                                     p=p, expected_version=_version(if_match, body), repo=d.repo,
                                     now=d.clock(), settings=d.settings)
    await _published(d, case_id)
    return CaseResult(version=ws.version, status=ws.status)


@customer.post("/cases/{case_id}/offers/{offer_id}/counter", response_model=OfferResult, status_code=201,
               responses=WRITE_ERRORS)
async def my_counter(case_id: str, offer_id: str, body: CounterRequest, p: Caller, d: D,
                     if_match: IfMatch = None) -> OfferResult:
    """Say what you would accept instead."""
    assert d.repo is not None
    ws, offer = await handlers.counter_offer(case_id, offer_id, message=body.message, terms=list(body.terms),
                                             p=p, expected_version=_version(if_match, body), repo=d.repo,
                                             settings=d.settings, now=d.clock())
    return OfferResult(version=ws.version, offer=offer)


@customer.post("/cases/{case_id}/escalate", response_model=CaseResult, responses=WRITE_ERRORS)
async def my_escalate(case_id: str, body: EscalateRequest, p: Caller, d: D, if_match: IfMatch = None) -> CaseResult:
    """Ask for mediation or litigation instead of negotiating further."""
    _customer_only(p)
    assert d.repo is not None
    ws = await handlers.escalate(case_id, target=body.target, reason=body.reason, p=p,
                                 expected_version=_version(if_match, body), repo=d.repo,
                                 settings=d.settings, now=d.clock())
    await _published(d, case_id)
    return CaseResult(version=ws.version, status=ws.status)


@customer.get("/cases/{case_id}/agreement", response_model=Agreement, responses=READ_ERRORS)
async def my_agreement(case_id: str, p: Caller, d: D) -> Agreement:
    """Your settlement agreement (zh-CN and English)."""
    _customer_only(p)
    assert d.repo is not None
    ws = await handlers.load_case(case_id, p, repo=d.repo)
    if ws.agreement is None:
        raise NotFound(f"case {case_id} has no agreement")
    return ws.agreement


# ------------------------------------------------------------------ app assembly

_AUDITED = ("/cases", "/customer", "/agents", "/audit", "/plans")


def install(app: FastAPI) -> None:
    """Add routers, error handlers and the audit middleware to ``app``."""
    app.include_router(router)
    app.include_router(customer)

    @app.exception_handler(NegotiationError)
    async def _negotiation_error(request: Request, exc: NegotiationError) -> JSONResponse:
        request.state.error = exc.message
        return JSONResponse(ErrorBody(detail=exc.message, field=exc.field).model_dump(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            FieldProblem(field=".".join(str(x) for x in e["loc"] if x != "body") or "(body)", problem=e["msg"])
            for e in exc.errors()
        ]
        detail = "; ".join(f"{f.field}: {f.problem}" for f in problems)[:2000]
        request.state.error = detail
        body = ErrorBody(detail=f"invalid request: {detail}", errors=problems)
        return JSONResponse(body.model_dump(), status_code=422)

    @app.middleware("http")
    async def _audit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if not path.startswith(_AUDITED):
            return await call_next(request)
        case_id = path.split("/")[3] if path.startswith("/customer/cases/") else (
            path.split("/")[2] if path.startswith("/cases/") else None)
        with log_context(case_id=case_id):
            response = await call_next(request)
            p: Principal | None = getattr(request.state, "principal", None)
            status = response.status_code
            outcome = "allowed" if status < 400 else ("refused" if status in (401, 403, 404) else "rejected")
            repo: Repository | None = request.app.state.deps.repo
            if repo is not None:
                try:
                    await repo.record({
                        "at": datetime.now(UTC), "actor": p.sub if p else None, "role": p.role if p else None,
                        "method": request.method, "path": path[:300], "case_id": case_id,
                        "status": status, "outcome": outcome,
                        "reason": getattr(request.state, "error", None),
                    })
                except Exception:  # noqa: BLE001 - a request must not fail because the log did
                    log.exception("could not write the audit entry")
            if status >= 400:
                log.info("%s %s refused with %s", request.method, path[:120], status)
        return response
