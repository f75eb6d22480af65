"""Negotiation's business rules as plain functions: open, assign, talk, offer, approve, agree, escalate.

Each function takes its input and keyword-only dependencies (``repo``, ``settings``,
``now``), checks scope, role, authority and recusal, changes the workspace and saves it
together with the events it owes in one document write (``Repository.save``, which refuses
a stale version with ``Conflict``). Publishing the owed events (the outbox relay) is the
caller's job. No faust, FastAPI or Kafka here.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from services.negotiation import fairness as fair
from services.negotiation.auth import ALL_CASES, TEAM_SCOPED, Principal
from services.negotiation.authority import (
    OfferMetrics,
    exceeded,
    may_approve,
    rank,
    required_role,
)
from services.negotiation.documents import (
    agreement_texts,
    build_dossier,
    dossier_html,
    dossier_json,
)
from services.negotiation.errors import Conflict, Forbidden, NotFound, Unprocessable
from services.negotiation.models import (
    Acceptance,
    Actor,
    AgentProfile,
    Agreement,
    AuthorityCheck,
    Compensation,
    Deferral,
    Escalation,
    FairnessComparison,
    FeeWaiver,
    InstalmentPlanTerm,
    InterestReduction,
    Message,
    Offer,
    OfferEvent,
    Recusal,
    Refund,
    ScheduleRow,
    TimelineEntry,
    Workspace,
)
from services.negotiation.plan import PlanError, compute_plan, money
from services.negotiation.repository import Repository
from services.negotiation.settings import Settings
from services.negotiation.texts import TARGET_ZH, describe_offer, summary, waived
from shared.contracts import intake, investigation, negotiation
from shared.contracts.common import Channel, Language
from shared.contracts.envelope import Envelope, Payload
from shared.logging import redact

log = logging.getLogger(__name__)

PRODUCER = "negotiation"
SYSTEM = Actor(sub="system", role="system")
Target = Literal["mediation", "litigation"]


def _event(ws: Workspace, payload: Payload, now: datetime, cause: Envelope[Any] | None = None) -> Envelope[Any]:
    return Envelope.wrap(
        payload, case_id=ws.case_id, producer=PRODUCER,
        correlation_id=ws.correlation_id or None, cause=cause, occurred_at=now,
    )


def _actor(p: Principal) -> Actor:
    return Actor(sub=p.sub, role=p.role)  # type: ignore[arg-type]


def _notify(ws: Workspace, kind: str, zh: tuple[str, str], en: tuple[str, str], now: datetime) -> list[Envelope[Any]]:
    """A ``customer.notified`` event in the customer's language, when the customer is known."""
    if not ws.customer_id:
        return []
    subject, body = en if ws.language == "en" else zh
    subject, body = redact(subject), redact(body)
    return [_event(ws, intake.CustomerNotified(
        kind=kind, language=Language(ws.language), channel=Channel.APP,
        customer_id=ws.customer_id, subject=subject, body=body,
        case_number=ws.case_number, deadline_at=ws.deadline_at,
    ), now)]


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _public_terms(offer: Offer) -> list[dict[str, Any]]:
    """The offer's terms for an outbound event, with personal numbers in free text masked.

    A waiver given as a percentage also carries the computed ``waiver_amount``, so readers
    (follow-up books the waiver) need not redo the arithmetic.
    """
    out = []
    for t in offer.terms:
        data = _redacted(t.model_dump(mode="json"))
        if isinstance(t, FeeWaiver) and t.waiver_amount is None:
            data["waiver_amount"] = format(waived(t), "f")
        out.append(data)
    return out


def _mark(ws: Workspace, now: datetime, what: str, by: str = "system", detail: str = "") -> None:
    ws.timeline.append(TimelineEntry(at=now, what=what, by=by, detail=detail[:500]))


# ------------------------------------------------------------------ scope and permission


def in_scope(ws: Workspace, p: Principal) -> bool:
    """Whether the caller may see the case at all."""
    if ws.status == "awaiting_investigation":
        return False
    if p.role == "customer":
        return ws.customer_id is not None and ws.customer_id == p.customer_id
    if p.role in TEAM_SCOPED:
        return ws.team == p.team
    return p.role in ALL_CASES


async def load_case(case_id: str, p: Principal, *, repo: Repository) -> Workspace:
    """Return a case the caller may see, or raise ``NotFound`` (existence is not revealed)."""
    ws = await repo.get(case_id)
    if ws is None or not in_scope(ws, p):
        raise NotFound(f"case {case_id} not found")
    return ws


async def _conflicted(ws: Workspace, agent_id: str, repo: Repository) -> bool:
    if ws.recused(agent_id):
        return True
    profile = await repo.get_agent(agent_id)
    return bool(profile and ws.customer_id and ws.customer_id in profile.conflicted_customer_ids)


async def require_staff_action(ws: Workspace, p: Principal, *, repo: Repository, needs_open: bool = True) -> None:
    """Refuse a staff action beyond the caller's role or recusal, or on a closed case."""
    if p.role == "auditor":
        raise Forbidden("auditors may read cases but not act on them")
    if p.role == "customer":
        raise Forbidden("this action is for staff; customers use /customer/...")
    if await _conflicted(ws, p.sub, repo):
        raise Forbidden(f"you are recused from case {ws.case_id} (回避) and may not act on it")
    if p.role == "agent" and ws.assigned_agent != p.sub:
        raise Forbidden(f"case {ws.case_id} is assigned to another agent")
    if needs_open and ws.status != "open":
        raise Conflict(f"case {ws.case_id} is {ws.status}; it can no longer be changed")


def check_version(ws: Workspace, expected: int | None) -> None:
    """Refuse a change made against a stale read (If-Match / expected_version)."""
    if expected is not None and expected != ws.version:
        raise Conflict(
            f"case {ws.case_id} is at version {ws.version}, not {expected}: "
            "it changed since you read it; reload and try again"
        )


# ------------------------------------------------------------------ opening workspaces


async def record_registration(env: Envelope[intake.ComplaintRegistered], *, repo: Repository, now: datetime) -> bool:
    """Keep what intake registered (customer, text, deadline, amount); return whether it changed."""
    for _ in range(3):
        ws = await repo.get(env.case_id) or Workspace(case_id=env.case_id)
        if ws.registered_event_id == str(env.event_id):
            return False
        c = env.payload
        ws = ws.model_copy(update={
            "case_number": ws.case_number or c.case_number,
            "correlation_id": ws.correlation_id or env.correlation_id,
            "registered_event_id": str(env.event_id),
            "customer_id": c.customer_id,
            "customer_name_masked": c.customer_name_masked,
            "language": c.language.value,
            "product": c.product.value,
            "complaint_text": c.text,
            "demand": c.demand,
            "amount_disputed": ws.amount_disputed if c.amount_disputed is None else c.amount_disputed,
            "deadline_at": c.deadline_at,
        })
        try:
            await repo.save(ws, ws.version, [])
            return True
        except Conflict:
            continue
    raise Conflict(f"case {env.case_id} kept changing while recording its registration")


def _extra(raw: dict[str, Any], *names: str) -> Any:
    for name in names:
        if raw.get(name) not in (None, "", [], {}):
            return raw[name]
    return None


def _money_or_none(value: Any) -> Decimal | None:
    try:
        return money(Decimal(str(value))) if value is not None else None
    except (ArithmeticError, ValueError):
        return None


async def open_workspace(
    env: Envelope[investigation.InvestigationCompleted],
    raw_payload: dict[str, Any],
    *,
    repo: Repository,
    settings: Settings,
    now: datetime,
) -> bool:
    """Open a case's workspace from ``investigation.completed``; idempotent per case.

    ``raw_payload`` is the event's payload as received: optional fields investigation may
    add (customer, evidence, facts, remedy range, product, amounts, hardship, deadline) are
    read from it when present and tolerated when absent.
    """
    for _ in range(3):
        existing = await repo.get(env.case_id)
        ws = existing or Workspace(case_id=env.case_id)
        revision = _revision(raw_payload)
        if ws.investigation_event_id is not None:
            if ws.investigation_event_id == str(env.event_id) or revision <= ws.investigation_revision:
                return False  # a redelivery, or nothing newer than what we hold
            if ws.status != "open":
                log.info("revised investigation for a case already %s; kept for the record", ws.status)
                return False
            try:
                return await _revise(ws, env, raw_payload, revision, repo=repo, now=now)
            except Conflict:
                continue
        p = env.payload
        ws = ws.model_copy(update={
            **_findings(env, raw_payload, ws, revision),
            "case_number": p.case_number,
            "correlation_id": ws.correlation_id or env.correlation_id,
            "status": "open",
            "customer_id": ws.customer_id or _as_text(_extra(raw_payload, "customer_id")),
            "product": ws.product or _as_text(_extra(raw_payload, "product")),
            "language": ws.language if ws.registered_event_id else (
                "en" if str(_extra(raw_payload, "language") or "").lower().startswith("en") else "zh-CN"),
            "opened_at": now,
        })
        if ws.deadline_at is None:
            ws.deadline_at = now + timedelta(days=settings.default_negotiation_days)
        _mark(ws, now, "workspace opened", detail=f"finding {p.finding}, category {p.category.value}")
        agent = await pick_agent(ws, repo=repo)
        if agent is not None:
            ws.assigned_agent, ws.team = agent.agent_id, agent.team
            _mark(ws, now, "assigned", detail=f"agent {agent.agent_id} (team {agent.team}) by skill and load")
        else:
            ws.team = settings.default_team
            _mark(ws, now, "unassigned", detail="no agent with the skills and capacity; waiting for a team lead")
        events = [_event(ws, negotiation.NegotiationStarted(
            case_number=ws.case_number, agent_id=ws.assigned_agent, team=ws.team,
            deadline_at=ws.deadline_at,
        ), now, cause=env)]
        try:
            await repo.save(ws, ws.version if existing else 0, events)
            return True
        except Conflict:
            continue
    raise Conflict(f"case {env.case_id} kept changing while opening its workspace")


def _revision(raw: dict[str, Any]) -> int:
    try:
        return max(1, int(raw.get("revision") or 1))
    except (TypeError, ValueError):
        return 1


def _findings(env: Envelope[Any], raw: dict[str, Any], ws: Workspace, revision: int) -> dict[str, Any]:
    """The workspace fields an investigation.completed event sets (core and optional)."""
    p = env.payload
    amount = _money_or_none(_extra(raw, "amount_disputed", "disputed_amount"))
    claims = [str(c) for c in _as_list(raw.get("claims"))]
    return {
        "investigation_event_id": str(env.event_id),
        "investigation_revision": revision,
        "category": p.category.value,
        "finding": p.finding,
        "reasons": p.reasons,
        "complex_case": p.complex_case,
        "evidence": [e if isinstance(e, dict) else {"summary": str(e)}
                     for e in _as_list(_extra(raw, "evidence"))],
        "facts": _as_list(_extra(raw, "facts", "verified_facts")),
        "remedy_range": _as_range(_extra(raw, "remedy_range", "suggested_remedy", "remedy")),
        "investigation_details": {k: v for k, v in raw.items() if k not in _KNOWN_FIELDS},
        "hardship": ws.hardship or bool(_extra(raw, "hardship", "financial_hardship"))
        or any("hardship" in c for c in claims),
        "amount_disputed": amount or ws.amount_disputed,
        # investigation's deadline counts excluded pauses (external appraisal): it wins
        "deadline_at": _parse_dt(_extra(raw, "deadline_at")) or ws.deadline_at,
    }


async def _revise(ws: Workspace, env: Envelope[Any], raw: dict[str, Any], revision: int, *,
                  repo: Repository, now: datetime) -> bool:
    """Take a newer investigation (new facts) into an open workspace."""
    ws = ws.model_copy(update=_findings(env, raw, ws, revision))
    _mark(ws, now, f"investigation revised (revision {revision})",
          detail=f"finding {env.payload.finding}; open offers were made on the earlier findings")
    await repo.save(ws, ws.version, [])
    return True


_KNOWN_FIELDS = frozenset({
    "case_number", "category", "finding", "reasons", "complex_case", "evidence", "facts",
    "verified_facts", "remedy_range", "suggested_remedy", "remedy", "hardship", "financial_hardship",
    "customer_id", "product", "language", "amount_disputed", "disputed_amount", "deadline_at",
    "revision",
})


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)[:128]


def _as_range(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return value if isinstance(value, dict) else {"text": str(value)}


def _range_bounds(remedy: dict[str, Any] | None) -> tuple[Decimal | None, Decimal | None]:
    """Read a suggested remedy range's bounds (min/max, low/high, *_amount), if numeric."""
    if not remedy:
        return None, None

    def first(*names: str) -> Decimal | None:
        for name in names:
            value = remedy.get(name)
            if isinstance(value, dict):  # {"amount": "..."} shapes
                value = value.get("amount")
            if value is not None and not isinstance(value, bool):
                parsed = _money_or_none(value)
                if parsed is not None:
                    return parsed
        return None

    return (first("min", "low", "min_amount", "lower", "minimum"),
            first("max", "high", "max_amount", "upper", "maximum"))


def _parse_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else None
    return None


# ------------------------------------------------------------------ assignment and recusal


async def pick_agent(ws: Workspace, *, repo: Repository, team: str | None = None) -> AgentProfile | None:
    """Pick the least-loaded active agent with the case's skills and no conflict."""
    best: tuple[float, int, str] | None = None
    chosen = None
    for agent in await repo.list_agents(team):
        if not agent.active or agent.role != "agent":
            continue
        if agent.categories and ws.category not in agent.categories:
            continue
        if ws.language not in agent.languages:
            continue
        if ws.recused(agent.agent_id) or (ws.customer_id and ws.customer_id in agent.conflicted_customer_ids):
            continue
        load = await repo.load(agent.agent_id)
        if load >= agent.max_load:
            continue
        key = (load / max(agent.max_load, 1), load, agent.agent_id)
        if best is None or key < best:
            best, chosen = key, agent
    return chosen


async def assign(
    case_id: str, agent_id: str | None, *, p: Principal, expected_version: int | None,
    repo: Repository, now: datetime,
) -> Workspace:
    """Assign a case to an agent (or the best one by skill and load). Team leads and up."""
    ws = await load_case(case_id, p, repo=repo)
    await require_staff_action(ws, p, repo=repo)
    if rank(p.role) < rank("team_lead"):
        raise Forbidden("only a team lead, manager or the committee may assign cases")
    check_version(ws, expected_version)
    if agent_id is None:
        agent = await pick_agent(ws, repo=repo, team=p.team if p.role == "team_lead" else None)
        if agent is None:
            raise Unprocessable("no available agent has the skills and capacity for this case", field="agent_id")
    else:
        agent = await repo.get_agent(agent_id)
        if agent is None or (p.role == "team_lead" and agent.team != p.team):
            raise Unprocessable(f"agent {agent_id} is not in the directory of your team", field="agent_id")
        if await _conflicted(ws, agent_id, repo):
            raise Forbidden(f"agent {agent_id} is recused from case {case_id} and cannot be assigned")
    ws.assigned_agent, ws.team = agent.agent_id, agent.team
    _mark(ws, now, "assigned", by=p.sub, detail=f"agent {agent.agent_id} (team {agent.team})")
    return await repo.save(ws, ws.version, [])


async def recuse(
    case_id: str, agent_id: str, reason: str, *, p: Principal, expected_version: int | None,
    repo: Repository, now: datetime,
) -> Workspace:
    """Record that an agent must not handle a case (回避); reassign if they held it."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role in ("auditor", "customer"):
        raise Forbidden(f"a {p.role} may not record recusals")
    if agent_id != p.sub and rank(p.role) < rank("team_lead"):
        raise Forbidden("an agent may recuse only themselves; ask your team lead")
    check_version(ws, expected_version)
    if ws.recused(agent_id):
        return ws
    ws.recusals.append(Recusal(agent_id=agent_id, reason=reason, by=_actor(p), at=now))
    _mark(ws, now, "recusal", by=p.sub, detail=f"agent {agent_id}: {reason}")
    if ws.assigned_agent == agent_id:
        ws.assigned_agent = None
        agent = await pick_agent(ws, repo=repo, team=ws.team)
        if agent is not None:
            ws.assigned_agent = agent.agent_id
            _mark(ws, now, "reassigned", detail=f"agent {agent.agent_id} after recusal")
    return await repo.save(ws, ws.version, [])


# ------------------------------------------------------------------ communication


async def log_message(
    case_id: str, *, body: str, direction: str, channel: str, p: Principal,
    expected_version: int | None, repo: Repository, now: datetime,
) -> Workspace:
    """Add a message, call note or meeting note to the communication log."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role == "customer":
        direction, channel = "inbound", "in_app"
    else:
        await require_staff_action(ws, p, repo=repo, needs_open=False)
    check_version(ws, expected_version)
    ws.messages.append(Message(
        message_id=f"M{len(ws.messages) + 1:04d}", direction=direction, channel=channel,  # type: ignore[arg-type]
        body=body, author=_actor(p), at=now,
    ))
    _mark(ws, now, f"message ({channel}, {direction})", by=p.sub)
    return await repo.save(ws, ws.version, [])


# ------------------------------------------------------------------ offers


def prepare_terms(terms: list[Any]) -> list[Any]:
    """Compute every instalment plan's schedule; raise ``Unprocessable`` naming a bad field."""
    out = []
    kinds = [t.kind for t in terms]
    if not terms:
        raise Unprocessable("an offer needs at least one term", field="terms")
    if kinds.count("instalment_plan") > 1:
        raise Unprocessable("an offer may hold one instalment plan", field="terms")
    for i, term in enumerate(terms):
        if isinstance(term, InstalmentPlanTerm):
            try:
                plan = compute_plan(
                    term.amount, term.months, term.first_due_date,
                    annual_rate_pct=term.annual_rate_pct, method=term.method,
                )
            except PlanError as exc:
                raise Unprocessable(str(exc), field=f"terms.{i}.{exc.field}") from None
            term = term.model_copy(update={
                "schedule": [ScheduleRow(
                    number=r.number, due_date=r.due_date, principal=r.principal,
                    interest=r.interest, payment=r.payment, balance_after=r.balance_after,
                ) for r in plan.instalments],
                "total_interest": plan.total_interest, "total_payable": plan.total_payable,
            })
        out.append(term)
    return out


def offer_metrics(terms: list[Any]) -> OfferMetrics:
    """Measure an offer for the authority check."""
    concession = Decimal("0.00")
    max_pct = Decimal("0")
    plan_months = deferral_months = 0
    for t in terms:
        if isinstance(t, FeeWaiver):
            amount = waived(t)
            concession += amount  # type: ignore[operator]
            pct = t.waiver_pct if t.waiver_pct is not None else (
                amount / t.fee_amount * 100 if t.fee_amount else Decimal("0"))  # type: ignore[operator]
            max_pct = max(max_pct, pct)
        elif isinstance(t, InterestReduction):
            concession += t.reduction_amount
        elif isinstance(t, Refund | Compensation):
            concession += t.amount
        elif isinstance(t, InstalmentPlanTerm):
            plan_months = max(plan_months, t.months)
        elif isinstance(t, Deferral):
            deferral_months = max(deferral_months, t.months)
    return OfferMetrics(money(concession), max_pct, plan_months, deferral_months)


async def assess_fairness(ws: Workspace, terms: list[Any], concession: Decimal, *, repo: Repository,
                          settings: Settings) -> FairnessComparison:
    """Compare an offer's relief ratio with similar past settlements."""
    fee_basis = sum((t.fee_amount for t in terms if isinstance(t, FeeWaiver)), Decimal("0"))
    basis = ws.amount_disputed or (fee_basis if fee_basis > 0 else None)
    pct = fair.relief_pct(concession, basis)
    cell = fair.Cell(ws.category or "other", fair.amount_band(basis), ws.hardship)
    scope: dict[str, Any] = {}
    peers: list[Decimal] = []
    for scope in cell.widening():
        peers = await repo.peer_pcts(scope)
        if len(peers) >= settings.fairness_min_peers:
            break
    result = fair.compare(pct, peers, scope)
    low, high = _range_bounds(ws.remedy_range)
    if (low is not None and concession < low) or (high is not None and concession > high):
        bounds = f"{low if low is not None else '—'}–{high if high is not None else '—'}"
        result["outside_suggested_range"] = result["flagged"] = True
        result["explanation_zh"] += f"调查建议的补救范围为 {bounds} 元，本方案合计 {concession} 元，超出该范围。"
        result["explanation_en"] += (
            f" Investigation suggested a remedy of CNY {bounds}; this offer totals CNY {concession}, "
            "outside that range."
        )
    return FairnessComparison(**result)


async def preview_offer(case_id: str, terms: list[Any], *, p: Principal, repo: Repository,
                        settings: Settings) -> tuple[list[Any], Decimal, FairnessComparison, AuthorityCheck]:
    """Compute schedule, fairness and authority of an offer without saving it."""
    ws = await load_case(case_id, p, repo=repo)
    terms = prepare_terms(terms)
    m = offer_metrics(terms)
    fairness = await assess_fairness(ws, terms, m.concession, repo=repo, settings=settings)
    return terms, m.concession, fairness, _authority(p.role, m, settings)


def _authority(role: str, m: OfferMetrics, settings: Settings) -> AuthorityCheck:
    needed = required_role(settings.authority, m)
    limit = settings.authority.get(role)
    over = exceeded(limit, m) if limit is not None else ["no authority"]
    return AuthorityCheck(
        proposer_role=role, required_role=needed,  # type: ignore[arg-type]
        within_authority=not over, exceeded=over,
    )


def _proposed_events(ws: Workspace, offer: Offer, now: datetime) -> list[Envelope[Any]]:
    events = [_event(ws, negotiation.SettlementProposed(
        case_number=ws.case_number, offer_id=offer.offer_id, summary=summary(offer),
        amount=offer.concession, customer_id=ws.customer_id, final=offer.final,
        terms=_public_terms(offer),
    ), now)]
    final_zh = "（最终方案）" if offer.final else ""
    final_en = " (final offer)" if offer.final else ""
    events += _notify(
        ws, "offer",
        (f"您的投诉 {ws.case_number} 有新的解决方案{final_zh}",
         f"我们为您的投诉提出了解决方案：\n{describe_offer(offer, 'zh-CN')}\n请在应用内查看并答复。"),
        (f"A new offer for your complaint {ws.case_number}{final_en}",
         f"We have made an offer for your complaint:\n{describe_offer(offer, 'en')}\nPlease look at it in the app and reply."),
        now,
    )
    return events


def _open_offer(ws: Workspace, offer: Offer, by: Actor, now: datetime, note: str = "") -> None:
    """Make an institution offer the customer's open offer; older ones are superseded."""
    for other in ws.offers:
        if other.offer_id == offer.offer_id:
            continue
        if other.party == "institution" and other.status in ("open", "pending_approval"):
            other.status = "superseded"
            other.history.append(OfferEvent(status="superseded", by=by, at=now, note=f"by {offer.offer_id}"))
        elif other.party == "customer" and other.status == "open":
            other.status = "answered"
            other.history.append(OfferEvent(status="answered", by=by, at=now, note=f"by {offer.offer_id}"))
    offer.status = "open"
    offer.history.append(OfferEvent(status="open", by=by, at=now, note=note))


async def make_offer(
    case_id: str, *, terms: list[Any], reason: str, justification: str | None, final: bool,
    responds_to: str | None, p: Principal, expected_version: int | None,
    repo: Repository, settings: Settings, now: datetime,
) -> tuple[Workspace, Offer]:
    """Propose an offer: compute it, check fairness and authority, open it or ask approval."""
    ws = await load_case(case_id, p, repo=repo)
    await require_staff_action(ws, p, repo=repo)
    check_version(ws, expected_version)
    if responds_to is not None and ws.offer(responds_to) is None:
        raise Unprocessable(f"offer {responds_to} does not exist on this case", field="responds_to")
    terms = prepare_terms(terms)
    m = offer_metrics(terms)
    fairness = await assess_fairness(ws, terms, m.concession, repo=repo, settings=settings)
    justification = (justification or "").strip() or None
    if fairness.flagged and (justification is None or len(justification) < 10):
        raise Unprocessable(
            "this offer is outside the usual range of similar settlements; give a written "
            f"justification (10+ characters). {fairness.explanation_en}",
            field="justification",
        )
    check = _authority(p.role, m, settings)
    by = _actor(p)
    offer = Offer(
        offer_id=f"OF-{len(ws.offers) + 1:03d}", party="institution", status="pending_approval",
        terms=terms, final=final, reason=reason, justification=justification,
        concession=m.concession, fairness=fairness, authority=check, responds_to=responds_to,
        proposed_by=by, created_at=now,
        history=[OfferEvent(status="pending_approval", by=by, at=now, note=reason)],
    )
    ws.offers.append(offer)
    events: list[Envelope[Any]] = []
    if check.within_authority:
        _open_offer(ws, offer, by, now, note="within the proposer's authority")
        events = _proposed_events(ws, offer, now)
        _mark(ws, now, f"offer {offer.offer_id} made", by=p.sub, detail=summary(offer))
    else:
        _mark(ws, now, f"offer {offer.offer_id} awaits approval", by=p.sub,
              detail=f"needs {check.required_role}: {'; '.join(check.exceeded)}")
    saved = await repo.save(ws, ws.version, events)
    return saved, saved.offer(offer.offer_id)  # type: ignore[return-value]


async def decide_approval(
    case_id: str, offer_id: str, *, approve: bool, note: str, p: Principal,
    expected_version: int | None, repo: Repository, now: datetime,
) -> tuple[Workspace, Offer]:
    """Approve or reject (with a reason) an offer above its proposer's authority."""
    ws = await load_case(case_id, p, repo=repo)
    offer = ws.offer(offer_id)
    if offer is None or offer.party != "institution":
        raise NotFound(f"offer {offer_id} not found on case {case_id}")
    if p.role in ("auditor", "customer"):
        raise Forbidden(f"a {p.role} may not approve offers")
    if await _conflicted(ws, p.sub, repo):
        raise Forbidden(f"you are recused from case {case_id} (回避) and may not approve its offers")
    if ws.status != "open":
        raise Conflict(f"case {case_id} is {ws.status}; it can no longer be changed")
    if offer.status != "pending_approval":
        raise Conflict(f"offer {offer_id} is {offer.status}, not pending approval")
    required = offer.authority.required_role if offer.authority else "committee"
    if not may_approve(p.role, required):
        raise Forbidden(f"offer {offer_id} needs approval by a {required} or above; you are a {p.role}")
    if offer.proposed_by.sub == p.sub:
        raise Forbidden("nobody may approve their own offer")
    if not approve and not note.strip():
        raise Unprocessable("a rejection needs a reason", field="reason")
    check_version(ws, expected_version)
    by = _actor(p)
    events: list[Envelope[Any]] = []
    if approve:
        offer.history.append(OfferEvent(status="pending_approval", by=by, at=now, note=f"approved: {note}".strip()))
        _open_offer(ws, offer, by, now, note=f"approved by {p.role}")
        events.append(_event(ws, negotiation.SettlementApproved(
            case_number=ws.case_number, offer_id=offer_id, approver_role=p.role, required_role=required,
        ), now))
        events += _proposed_events(ws, offer, now)
        _mark(ws, now, f"offer {offer_id} approved", by=p.sub, detail=note)
    else:
        offer.status = "approval_rejected"
        offer.history.append(OfferEvent(status="approval_rejected", by=by, at=now, note=note))
        _mark(ws, now, f"offer {offer_id} not approved", by=p.sub, detail=note)
    saved = await repo.save(ws, ws.version, events)
    return saved, saved.offer(offer_id)  # type: ignore[return-value]


async def withdraw_offer(
    case_id: str, offer_id: str, *, reason: str, p: Principal, expected_version: int | None,
    repo: Repository, now: datetime,
) -> Workspace:
    """Withdraw an institution offer the customer has not answered."""
    ws = await load_case(case_id, p, repo=repo)
    await require_staff_action(ws, p, repo=repo)
    offer = ws.offer(offer_id)
    if offer is None or offer.party != "institution":
        raise NotFound(f"offer {offer_id} not found on case {case_id}")
    if offer.status not in ("open", "pending_approval"):
        raise Conflict(f"offer {offer_id} is {offer.status} and cannot be withdrawn")
    check_version(ws, expected_version)
    offer.status = "withdrawn"
    offer.history.append(OfferEvent(status="withdrawn", by=_actor(p), at=now, note=reason))
    _mark(ws, now, f"offer {offer_id} withdrawn", by=p.sub, detail=reason)
    return await repo.save(ws, ws.version, [])


# ------------------------------------------------------------------ the customer's answers


def _customer_offer(ws: Workspace, offer_id: str) -> Offer:
    offer = ws.offer(offer_id)
    if offer is None or offer.party != "institution" or offer.status in ("pending_approval", "approval_rejected"):
        raise NotFound(f"offer {offer_id} not found on case {ws.case_id}")
    if ws.status != "open":
        raise Conflict(f"case {ws.case_id} is {ws.status}; offers can no longer be answered")
    if offer.status != "open":
        raise Conflict(f"offer {offer_id} is {offer.status} and can no longer be answered")
    return offer


async def accept_offer(
    case_id: str, offer_id: str, *, channel: str, p: Principal, expected_version: int | None,
    repo: Repository, now: datetime,
) -> Workspace:
    """Record the customer's acceptance; make the agreement; publish ``settlement.agreed``."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role != "customer":
        raise Forbidden("only the customer can accept an offer; staff record one with record-acceptance")
    offer = _customer_offer(ws, offer_id)
    check_version(ws, expected_version)
    return await _agree(ws, offer, Acceptance(by=_actor(p), at=now, channel=channel), repo=repo, now=now)


async def record_acceptance(
    case_id: str, offer_id: str, *, channel: str, note: str, p: Principal,
    expected_version: int | None, repo: Repository, now: datetime,
) -> Workspace:
    """Record an acceptance the customer gave by phone, letter or in person (who, when, channel)."""
    ws = await load_case(case_id, p, repo=repo)
    await require_staff_action(ws, p, repo=repo)
    if channel == "in_app":
        raise Unprocessable("in-app acceptances are made by the customer in the app", field="channel")
    if not ws.customer_id:
        raise Conflict(f"case {case_id} has no known customer to record an acceptance for")
    offer = _customer_offer(ws, offer_id)
    check_version(ws, expected_version)
    acceptance = Acceptance(
        by=Actor(sub=ws.customer_id, role="customer"), at=now, channel=channel,
        recorded_by=_actor(p), note=note,
    )
    return await _agree(ws, offer, acceptance, repo=repo, now=now)


async def _agree(ws: Workspace, offer: Offer, acceptance: Acceptance, *, repo: Repository,
                 now: datetime) -> Workspace:
    offer_id = offer.offer_id
    agreement_id = f"AG-{ws.case_id}-{offer_id}"
    zh, en = agreement_texts(ws, offer, acceptance, agreement_id)
    offer.status = "accepted"
    recorder = acceptance.recorded_by or acceptance.by
    offer.history.append(OfferEvent(status="accepted", by=recorder, at=now, channel=acceptance.channel,
                                    note=acceptance.note))
    ws.agreement = Agreement(
        agreement_id=agreement_id, offer_id=offer_id, terms=offer.terms,
        concession=offer.concession, acceptance=acceptance, text_zh=zh, text_en=en,
    )
    ws.status = "agreed"
    _mark(ws, now, f"offer {offer_id} accepted; agreement {agreement_id}", by=recorder.sub,
          detail=f"via {acceptance.channel}")
    events = [_event(ws, negotiation.SettlementAgreed(
        case_number=ws.case_number, offer_id=offer_id, agreement_id=agreement_id,
        summary=summary(offer), customer_id=ws.customer_id, amount=offer.concession,
        terms=_public_terms(offer), accepted_at=now, accepted_via=acceptance.channel,
    ), now)]
    events += _notify(
        ws, "outcome",
        (f"和解协议已生效：{ws.case_number}", zh), (f"Settlement agreed: {ws.case_number}", en), now,
    )
    saved = await repo.save(ws, ws.version, events)
    await record_settlement(saved, repo=repo)
    return saved


async def set_hardship(
    case_id: str, *, hardship: bool, reason: str, p: Principal, expected_version: int | None,
    repo: Repository, now: datetime,
) -> Workspace:
    """Mark (or clear) the customer's hardship (illness, income loss...); fairness compares with like cases."""
    ws = await load_case(case_id, p, repo=repo)
    await require_staff_action(ws, p, repo=repo)
    check_version(ws, expected_version)
    ws.hardship, ws.hardship_reason = hardship, reason
    _mark(ws, now, "hardship recorded" if hardship else "hardship cleared", by=p.sub, detail=reason)
    return await repo.save(ws, ws.version, [])


async def record_settlement(ws: Workspace, *, repo: Repository) -> None:
    """Add an agreed settlement to the fairness reference set (idempotent per case)."""
    if ws.agreement is None:
        return
    offer = ws.offer(ws.agreement.offer_id)
    fee_basis = sum((t.fee_amount for t in ws.agreement.terms if isinstance(t, FeeWaiver)), Decimal("0"))
    basis = ws.amount_disputed or (fee_basis if fee_basis > 0 else None)
    pct = fair.relief_pct(ws.agreement.concession, basis)
    if pct is None or offer is None:
        return
    await repo.add_ref({
        "ref_id": f"case-{ws.case_id}", "source": "agreed", "case_id": ws.case_id,
        "category": ws.category or "other", "band": fair.amount_band(basis),
        "hardship": ws.hardship, "relief_bp": int(pct * 100),
    })


async def reject_offer(
    case_id: str, offer_id: str, *, reason: str, escalate_to: Target, p: Principal,
    expected_version: int | None, repo: Repository, now: datetime, settings: Settings,
) -> Workspace:
    """Record the customer's rejection; a rejected final offer ends negotiation (escalation)."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role != "customer":
        raise Forbidden("only the customer can reject an offer")
    offer = _customer_offer(ws, offer_id)
    check_version(ws, expected_version)
    offer.status = "rejected"
    offer.history.append(OfferEvent(status="rejected", by=_actor(p), at=now, note=reason))
    _mark(ws, now, f"offer {offer_id} rejected", by=p.sub, detail=reason)
    events = [_event(ws, negotiation.SettlementRejected(
        case_number=ws.case_number, offer_id=offer_id, final=offer.final, reason=reason[:500],
    ), now)]
    if offer.final:
        return await _escalate(ws, target=escalate_to, by=_actor(p), requested_by="customer",
                               reason=f"customer rejected the final offer {offer_id}: {reason}",
                               events=events, repo=repo, settings=settings, now=now)
    return await repo.save(ws, ws.version, events)


async def counter_offer(
    case_id: str, offer_id: str, *, message: str, terms: list[Any], p: Principal,
    expected_version: int | None, repo: Repository, settings: Settings, now: datetime,
) -> tuple[Workspace, Offer]:
    """Record the customer's counter-offer (what they would accept instead)."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role != "customer":
        raise Forbidden("only the customer can counter an offer")
    offer = _customer_offer(ws, offer_id)
    check_version(ws, expected_version)
    by = _actor(p)
    terms = prepare_terms(terms) if terms else []
    m = offer_metrics(terms)
    fairness = await assess_fairness(ws, terms, m.concession, repo=repo, settings=settings) if terms else None
    counter = Offer(
        offer_id=f"OF-{len(ws.offers) + 1:03d}", party="customer", status="open", terms=terms,
        reason=message, concession=m.concession, fairness=fairness, responds_to=offer_id,
        proposed_by=by, created_at=now, history=[OfferEvent(status="open", by=by, at=now, note=message)],
    )
    offer.status = "countered"
    offer.history.append(OfferEvent(status="countered", by=by, at=now, note=f"by {counter.offer_id}"))
    ws.offers.append(counter)
    ws.messages.append(Message(
        message_id=f"M{len(ws.messages) + 1:04d}", direction="inbound", channel="in_app",
        body=message, author=by, at=now,
    ))
    _mark(ws, now, f"offer {offer_id} countered by {counter.offer_id}", by=p.sub, detail=summary(counter))
    saved = await repo.save(ws, ws.version, [])
    return saved, saved.offer(counter.offer_id)  # type: ignore[return-value]


# ------------------------------------------------------------------ escalation


async def escalate(
    case_id: str, *, target: Target, reason: str, p: Principal, expected_version: int | None,
    repo: Repository, settings: Settings, now: datetime,
) -> Workspace:
    """End negotiation and send the case to mediation or litigation with its dossier."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role == "customer":
        if ws.status != "open":
            raise Conflict(f"case {case_id} is {ws.status}; it can no longer be escalated")
        requested_by = "customer"
    else:
        await require_staff_action(ws, p, repo=repo)
        requested_by = "staff"
    check_version(ws, expected_version)
    return await _escalate(ws, target=target, by=_actor(p), requested_by=requested_by, reason=reason,
                           events=[], repo=repo, settings=settings, now=now)


async def _escalate(
    ws: Workspace, *, target: Target, by: Actor, requested_by: str, reason: str,
    events: list[Envelope[Any]], repo: Repository, settings: Settings, now: datetime,
) -> Workspace:
    for offer in ws.offers:
        if offer.status in ("open", "pending_approval"):
            offer.status = "withdrawn"
            offer.history.append(OfferEvent(status="withdrawn", by=by, at=now, note="negotiation ended"))
    dossier_id = f"DS-{ws.case_id}-{ws.version + 1}"
    ws.status = "escalated"
    ws.escalation = Escalation(target=target, reason=reason, by=by, at=now, dossier_id=dossier_id)
    _mark(ws, now, f"escalated to {target}", by=by.sub, detail=reason)
    dossier = build_dossier(ws, dossier_id=dossier_id, target=target, reason=reason, created_at=now)
    await repo.put_dossier(dossier_id, ws.case_id, dossier_json(dossier), dossier_html(dossier))
    url = f"{settings.public_base_url}/cases/{ws.case_id}/dossier"
    events = [
        *events,
        _event(ws, negotiation.NegotiationFailed(case_number=ws.case_number, reason=reason[:1000]), now),
        _event(ws, negotiation.CaseEscalated(
            case_number=ws.case_number, target=target, reason=reason[:1000], dossier_ref=dossier_id,
            dossier_url=url, requested_by=requested_by,
        ), now),
    ]
    events += _notify(
        ws, "escalation",
        (f"您的投诉 {ws.case_number} 已转交{TARGET_ZH[target]}",
         f"协商未能达成一致，您的案件已转交{TARGET_ZH[target]}，卷宗编号 {dossier_id}。原因：{reason}"),
        (f"Your complaint {ws.case_number} has gone to {target}",
         f"We could not agree, so your case has gone to {target} (dossier {dossier_id}). Reason: {reason}"),
        now,
    )
    return await repo.save(ws, ws.version, events)


async def escalate_near_deadline(*, repo: Repository, settings: Settings, now: datetime) -> list[str]:
    """Escalate open cases whose deadline is near without agreement; return their ids."""
    done = []
    before = now + timedelta(hours=settings.escalate_before_hours)
    for case_id in await repo.open_near_deadline(before):
        ws = await repo.get(case_id)
        if ws is None or ws.status != "open":
            continue
        try:
            await _escalate(
                ws, target="mediation", by=SYSTEM, requested_by="deadline",
                reason=f"no agreement and the deadline {ws.deadline_at:%Y-%m-%d %H:%M} UTC is near",
                events=[], repo=repo, settings=settings, now=now,
            )
            done.append(case_id)
        except Conflict:
            log.info("case changed while escalating near its deadline; next sweep retries")
    return done
