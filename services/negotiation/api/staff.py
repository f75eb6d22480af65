"""The staff API: workspaces, assignment and recusal, the communication log, offers and their
approval, recorded acceptances, hardship, escalation with a dossier, the agent directory, the
instalment calculator and the audit trail.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import HTMLResponse

from services.negotiation import handlers
from services.negotiation.api.audit import AuditPage, audit_page
from services.negotiation.api.deps import (
    READ_ERRORS,
    WRITE_ERRORS,
    AuditReader,
    D,
    Deps,
    IfMatch,
    Lead,
    PlanUser,
    ReadCase,
    StaffActor,
    StaffReader,
    act_case,
    errors,
    expected_version,
    lead_case,
    publish_owed,
    repo_of,
)
from services.negotiation.api.schemas import (
    AffordabilityRequest,
    AffordabilityResponse,
    ApprovalRequest,
    AssignRequest,
    CaseResult,
    CaseSummary,
    CaseView,
    EscalateRequest,
    HardshipRequest,
    MessageRequest,
    OfferRequest,
    OfferResult,
    PlanRequest,
    PlanResponse,
    PreviewRequest,
    PreviewResponse,
    RecordAcceptanceRequest,
    RecusalRequest,
    WithdrawRequest,
)
from services.negotiation.auth import Principal
from services.negotiation.authority import rank
from services.negotiation.errors import Forbidden, NotFound, Unprocessable
from services.negotiation.models import AgentProfile, Agreement, Dossier, Workspace
from services.negotiation.plan import (
    PlanError,
    add_months,
    affordability,
    check_first_due_date,
    compute_plan,
)
from services.negotiation.repository import Repository
from shared.clock import beijing_day
from shared.contracts.terms import ScheduleRow


def summary_of(ws: Workspace) -> CaseSummary:
    """The one-line view of a case in lists."""
    return CaseSummary(**ws.model_dump(include=set(CaseSummary.model_fields)))


router = APIRouter(tags=["agents"])
#: the directory, tools and audit trail (their own OpenAPI tags)
directory = APIRouter()


@router.get("/cases", response_model=list[CaseSummary], responses=READ_ERRORS)
async def list_cases(
    p: StaffReader, d: D,
    status: Annotated[Literal["open", "agreed", "escalated"] | None, Query()] = None,
    mine: Annotated[bool, Query(description="Only cases assigned to me.")] = False,
) -> list[CaseSummary]:
    """List the cases in the caller's scope (agents and team leads: their team), without the
    cases the caller is recused from."""
    team = p.team if p.role in ("agent", "team_lead") else None
    repo = repo_of(d)
    found = await repo.list_cases(status=status, team=team, assigned_agent=p.sub if mine else None)
    return [summary_of(w) for w in await _not_recused_from(found, p, repo)]


async def _not_recused_from(cases: list[Workspace], p: Principal, repo: Repository) -> list[Workspace]:
    """The cases the caller is neither recused from nor conflicted with (one profile read)."""
    profile = await repo.get_agent(p.sub)
    conflicts = set(profile.conflicted_customer_ids) if profile else set()
    return [w for w in cases if not w.recused(p.sub) and not (w.customer_id and w.customer_id in conflicts)]


@router.get("/cases/{case_id}", response_model=CaseView, responses=READ_ERRORS)
async def get_case(case_id: str, ws: ReadCase, p: StaffReader, d: D, response: Response) -> CaseView:
    """The workspace: complaint, findings, evidence, communications, offers, timeline, history."""
    repo = repo_of(d)
    others = await repo.customer_cases(ws.customer_id, exclude=case_id) if ws.customer_id else []
    history = [summary_of(o) for o in await _not_recused_from(others, p, repo) if handlers.in_scope(o, p)]
    response.headers["ETag"] = f'"{ws.version}"'
    return CaseView(**ws.model_dump(), customer_history=history)


@router.post("/cases/{case_id}/assign", response_model=CaseResult, responses=WRITE_ERRORS,
             dependencies=[Depends(lead_case)])
async def assign(case_id: str, body: AssignRequest, p: Lead, d: D, if_match: IfMatch = None) -> CaseResult:
    """Assign the case (team leads and up); without agent_id, by skill and load."""
    ws = await handlers.assign(case_id, body.agent_id, p=p, expected_version=expected_version(if_match, body),
                               repo=repo_of(d), now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/recusals", response_model=CaseResult, responses=WRITE_ERRORS,
             dependencies=[Depends(act_case)])
async def recuse(case_id: str, body: RecusalRequest, p: StaffActor, d: D, if_match: IfMatch = None) -> CaseResult:
    """Record a recusal (回避): the agent can no longer be assigned or act on the case."""
    ws = await handlers.recuse(case_id, body.agent_id, body.reason, p=p,
                               expected_version=expected_version(if_match, body), repo=repo_of(d), now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/messages", response_model=CaseResult, status_code=201,
             responses=WRITE_ERRORS,
             dependencies=[Depends(act_case)])
async def add_message(case_id: str, body: MessageRequest, p: StaffActor, d: D, if_match: IfMatch = None) -> CaseResult:
    """Log a message to or from the customer, a call note or a meeting note."""
    ws = await handlers.log_message(case_id, body=body.body, direction=body.direction, channel=body.channel,
                                    p=p, expected_version=expected_version(if_match, body), repo=repo_of(d), now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/offers/preview", response_model=PreviewResponse,
             responses=WRITE_ERRORS,
             dependencies=[Depends(act_case)])
async def preview(case_id: str, body: PreviewRequest, p: StaffActor, d: D) -> PreviewResponse:
    """Compute an offer's schedule, fairness comparison and authority without saving it."""
    terms, concession, fairness, check = await handlers.preview_offer(
        case_id, list(body.terms), p=p, repo=repo_of(d), settings=d.settings, now=d.clock())
    return PreviewResponse(terms=terms, concession=concession, fairness=fairness, authority=check)


@router.post("/cases/{case_id}/offers", response_model=OfferResult, status_code=201,
             responses=WRITE_ERRORS,
             dependencies=[Depends(act_case)])
async def make_offer(case_id: str, body: OfferRequest, p: StaffActor, d: D, if_match: IfMatch = None) -> OfferResult:
    """Propose an offer; above the proposer's authority it waits for approval."""
    ws, offer = await handlers.make_offer(
        case_id, terms=list(body.terms), reason=body.reason, justification=body.justification,
        final=body.final, responds_to=body.responds_to, p=p, expected_version=expected_version(if_match, body),
        repo=repo_of(d), settings=d.settings, now=d.clock())
    await publish_owed(d, case_id)
    return OfferResult(version=ws.version, offer=offer)


@router.post("/cases/{case_id}/offers/{offer_id}/approval", response_model=OfferResult,
             responses=WRITE_ERRORS, dependencies=[Depends(lead_case)])
async def decide(case_id: str, offer_id: str, body: ApprovalRequest, p: Lead, d: D,
                 if_match: IfMatch = None) -> OfferResult:
    """Approve, or reject with a reason, an offer waiting for approval."""
    ws, offer = await handlers.decide_approval(
        case_id, offer_id, approve=body.decision == "approve", note=body.reason, p=p,
        expected_version=expected_version(if_match, body), repo=repo_of(d), now=d.clock())
    await publish_owed(d, case_id)
    return OfferResult(version=ws.version, offer=offer)


@router.post("/cases/{case_id}/offers/{offer_id}/withdraw", response_model=CaseResult,
             responses=WRITE_ERRORS,
             dependencies=[Depends(act_case)])
async def withdraw(case_id: str, offer_id: str, body: WithdrawRequest, p: StaffActor, d: D,
                   if_match: IfMatch = None) -> CaseResult:
    """Withdraw an offer the customer has not answered."""
    ws = await handlers.withdraw_offer(case_id, offer_id, reason=body.reason, p=p,
                                       expected_version=expected_version(if_match, body), repo=repo_of(d), now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/offers/{offer_id}/record-acceptance", response_model=CaseResult,
             responses=WRITE_ERRORS,
             dependencies=[Depends(act_case)])
async def record_acceptance(case_id: str, offer_id: str, body: RecordAcceptanceRequest, p: StaffActor, d: D,
                            if_match: IfMatch = None) -> CaseResult:
    """Record an acceptance the customer gave by phone, letter or in person."""
    ws = await handlers.record_acceptance(case_id, offer_id, channel=body.channel, note=body.note, p=p,
                                          expected_version=expected_version(if_match, body), repo=repo_of(d), now=d.clock())
    await publish_owed(d, case_id)
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/hardship", response_model=CaseResult, responses=WRITE_ERRORS,
             dependencies=[Depends(act_case)])
async def hardship(case_id: str, body: HardshipRequest, p: StaffActor, d: D, if_match: IfMatch = None) -> CaseResult:
    """Record the customer's hardship; offers are then compared with hardship cases."""
    ws = await handlers.set_hardship(case_id, hardship=body.hardship, reason=body.reason, p=p,
                                     expected_version=expected_version(if_match, body), repo=repo_of(d), now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@router.post("/cases/{case_id}/escalate", response_model=CaseResult, responses=WRITE_ERRORS,
             dependencies=[Depends(act_case)])
async def escalate(case_id: str, body: EscalateRequest, p: StaffActor, d: D, if_match: IfMatch = None) -> CaseResult:
    """End negotiation: mediation or litigation, with a dossier."""
    ws = await handlers.escalate(case_id, target=body.target, reason=body.reason, p=p,
                                 expected_version=expected_version(if_match, body), repo=repo_of(d),
                                 settings=d.settings, now=d.clock())
    await publish_owed(d, case_id)
    return CaseResult(version=ws.version, status=ws.status)


@router.get("/cases/{case_id}/agreement", response_model=Agreement, responses=READ_ERRORS)
async def agreement(case_id: str, ws: ReadCase) -> Agreement:
    """The settlement agreement (zh-CN and English) with the recorded acceptance."""
    if ws.agreement is None:
        raise NotFound(f"case {case_id} has no agreement")
    return ws.agreement


async def _dossier(case_id: str, ws: Workspace, d: Deps) -> dict[str, Any]:
    stored = await repo_of(d).get_dossier(ws.escalation.dossier_id) if ws.escalation else None
    if stored is None:
        raise NotFound(f"case {case_id} has no dossier (it was not escalated)")
    return stored


@router.get("/cases/{case_id}/dossier", response_model=Dossier, responses=READ_ERRORS)
async def dossier(case_id: str, ws: ReadCase, d: D) -> Dossier:
    """The escalation dossier as JSON."""
    return Dossier.model_validate((await _dossier(case_id, ws, d))["json"])


_JSON_ERRORS_FOR_HTML: dict[int | str, dict[str, Any]] = {
    code: {
        "description": spec["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for code, spec in READ_ERRORS.items()
}


@router.get("/cases/{case_id}/dossier.html", response_class=HTMLResponse,
            responses=_JSON_ERRORS_FOR_HTML)
async def dossier_page(case_id: str, ws: ReadCase, d: D) -> HTMLResponse:
    """The escalation dossier as a readable page (zh-CN first, English second)."""
    return HTMLResponse((await _dossier(case_id, ws, d))["html"])


@directory.get("/agents", response_model=list[AgentProfile], responses=READ_ERRORS, tags=["directory"])
async def list_agents(p: StaffReader, d: D) -> list[AgentProfile]:
    """The agent directory (team leads: their team)."""
    return await repo_of(d).list_agents(p.team if p.role in ("agent", "team_lead") else None)


@directory.put("/agents/{agent_id}", response_model=AgentProfile, responses=WRITE_ERRORS, tags=["directory"])
async def put_agent(agent_id: str, body: AgentProfile, p: Lead, d: D) -> AgentProfile:
    """Create or update an agent's skills, capacity and conflicts (team leads: own team)."""
    if rank(p.role) < rank("team_lead"):
        raise Forbidden("only a team lead, manager or the committee may edit the directory")
    if body.agent_id != agent_id:
        raise Unprocessable("agent_id in the body must match the path", field="agent_id")
    if p.role == "team_lead" and body.team != p.team:
        raise Forbidden("a team lead may edit only their own team")
    if rank(body.role) > rank(p.role):
        raise Forbidden("you cannot give a role above your own")
    await repo_of(d).put_agent(body)
    return body


@directory.post("/plans/instalment", response_model=PlanResponse, responses=errors(401, 403, 422), tags=["tools"])
async def plan(body: PlanRequest, p: PlanUser, d: D) -> PlanResponse:
    """Compute an instalment schedule (exact decimals, due dates clamped to month ends; the first
    due date after today and within a year; no instalment of 0.00: the term is shortened, with a note)."""
    try:
        check_first_due_date(body.first_due_date, beijing_day(d.clock()))
        computed = compute_plan(body.amount, body.months, body.first_due_date,
                                annual_rate_pct=body.annual_rate_pct, method=body.method)
    except PlanError as exc:
        raise Unprocessable(str(exc), field=exc.field) from None
    rows = [ScheduleRow(number=r.number, due_date=r.due_date, principal=r.principal, interest=r.interest,
                        payment=r.payment, balance_after=r.balance_after) for r in computed.instalments]
    note = f"{computed.note_zh} / {computed.note_en}" if computed.note_en else None
    return PlanResponse(schedule=rows, months=computed.months, note=note, total_principal=computed.amount,
                        total_interest=computed.total_interest, total_payable=computed.total_payable)


@directory.post("/plans/affordability", response_model=AffordabilityResponse, responses=errors(401, 403, 422),
                tags=["tools"])
async def plan_affordability(body: AffordabilityRequest, p: PlanUser, d: D) -> AffordabilityResponse:
    """From the customer's monthly income and expenses: the shortest plan whose instalments fit,
    and the longest allowed (at most 60 months) with its lowest instalment."""
    today = beijing_day(d.clock())
    first = body.first_due_date or add_months(today, 1)
    try:
        check_first_due_date(first, today)
        found = affordability(body.amount, body.monthly_income, body.monthly_expenses, first_due_date=first,
                              annual_rate_pct=body.annual_rate_pct, method=body.method)
    except PlanError as exc:
        raise Unprocessable(str(exc), field=exc.field) from None
    return AffordabilityResponse(first_due_date=first, **vars(found))


@directory.get("/audit", response_model=AuditPage, responses=errors(401, 403, 422), tags=["audit"])
async def audit(
    p: AuditReader, d: D, case_id: Annotated[str | None, Query()] = None,
    outcome: Annotated[Literal["allowed", "refused", "rejected"] | None, Query()] = None,
    after: Annotated[int, Query(ge=0, description="Records after this seq (0: from the start).")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Records per page.")] = 100,
) -> AuditPage:
    """Read the audit trail (auditors, managers, the committee): the service's tamper-evident
    chain by seq, a page at a time (``next`` is the ``after`` of the next page)."""
    if p.role not in ("auditor", "manager", "committee"):
        raise Forbidden("only auditors, managers and the committee may read the audit trail")
    return await audit_page(repo_of(d), after=after, limit=limit, case_id=case_id, outcome=outcome)
