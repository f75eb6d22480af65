"""Offers (方案): terms computed, compared with like cases, checked against the proposer's
authority, opened to the customer or sent up the approval chain; withdrawal; hardship.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.negotiation import fairness as fair
from services.negotiation.auth import Principal
from services.negotiation.authority import OfferMetrics, exceeded, may_approve, required_role
from services.negotiation.errors import Conflict, Forbidden, NotFound, Unprocessable
from services.negotiation.handlers.common import (
    Events,
    actor,
    check_version,
    conflicted,
    event,
    load_case,
    mark,
    notify,
    public_terms,
    require_staff_action,
)
from services.negotiation.handlers.ports import Store
from services.negotiation.models import (
    Actor,
    AuthorityCheck,
    FairnessComparison,
    Offer,
    OfferEvent,
    Workspace,
)
from services.negotiation.plan import PlanError, check_first_due_date, compute_plan, money
from services.negotiation.settings import Settings
from services.negotiation.texts import describe_offer, summary, waived
from shared.clock import beijing_day
from shared.clock import now as clock_now
from shared.contracts import negotiation
from shared.contracts.envelope import Envelope
from shared.contracts.terms import (
    Compensation,
    Deferral,
    FeeWaiver,
    InstalmentPlanTerm,
    InterestReduction,
    Refund,
    ScheduleRow,
)


def prepare_terms(terms: list[Any], *, today: date | None = None) -> list[Any]:
    """Compute every instalment plan's schedule; raise ``Unprocessable`` naming a bad field.

    A plan's first due date must be after ``today`` (Beijing time; the clock's when not given)
    and within a year; a term shortened so that no instalment is 0.00 carries the reason in
    ``note`` (``plan.compute_plan``).
    """
    out = []
    kinds = [t.kind for t in terms]
    if not terms:
        raise Unprocessable("an offer needs at least one term", field="terms")
    if kinds.count("instalment_plan") > 1:
        raise Unprocessable("an offer may hold one instalment plan", field="terms")
    today = today or beijing_day(clock_now())
    for i, term in enumerate(terms):
        if isinstance(term, InstalmentPlanTerm):
            try:
                check_first_due_date(term.first_due_date, today)
                plan = compute_plan(
                    term.amount, term.months, term.first_due_date,
                    annual_rate_pct=term.annual_rate_pct, method=term.method,
                )
            except PlanError as exc:
                raise Unprocessable(str(exc), field=f"terms.{i}.{exc.field}") from None
            term = term.model_copy(update={
                "months": plan.months,
                "schedule": [ScheduleRow(
                    number=r.number, due_date=r.due_date, principal=r.principal,
                    interest=r.interest, payment=r.payment, balance_after=r.balance_after,
                ) for r in plan.instalments],
                "total_interest": plan.total_interest, "total_payable": plan.total_payable,
                "note": f"{plan.note_zh} / {plan.note_en}" if plan.note_en else None,
            })
        out.append(term)
    return out


def offer_metrics(terms: list[Any], disputed: Decimal | None = None) -> OfferMetrics:
    """Measure an offer for the authority check (``disputed``: the case's disputed balance;
    unknown, a plan is not measured against it)."""
    concession = Decimal("0.00")
    max_pct = Decimal("0")
    plan_months = deferral_months = 0
    over = Decimal("0")
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
            if disputed is not None:
                over = max(over, t.amount - disputed - t.stated_costs)
        elif isinstance(t, Deferral):
            deferral_months = max(deferral_months, t.months)
    return OfferMetrics(money(concession), max_pct, plan_months, deferral_months, money(over))


async def assess_fairness(ws: Workspace, terms: list[Any], concession: Decimal, *, repo: Store,
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
    low, high = (ws.remedy_range.min, ws.remedy_range.max) if ws.remedy_range else (None, None)
    if (low is not None and concession < low) or (high is not None and concession > high):
        bounds = f"{low if low is not None else '—'}–{high if high is not None else '—'}"
        result["outside_suggested_range"] = result["flagged"] = True
        result["explanation_zh"] += f"调查建议的补救范围为 {bounds} 元，本方案合计 {concession} 元，超出该范围。"
        result["explanation_en"] += (
            f" Investigation suggested a remedy of CNY {bounds}; this offer totals CNY {concession}, "
            "outside that range."
        )
    return FairnessComparison(**result)


async def preview_offer(case_id: str, terms: list[Any], *, p: Principal, repo: Store,
                        settings: Settings, now: datetime | None = None,
                        ) -> tuple[list[Any], Decimal, FairnessComparison, AuthorityCheck]:
    """Compute schedule, fairness and authority of an offer without saving it."""
    ws = await load_case(case_id, p, repo=repo)
    terms = prepare_terms(terms, today=beijing_day(now) if now else None)
    m = offer_metrics(terms, ws.amount_disputed)
    fairness = await assess_fairness(ws, terms, m.concession, repo=repo, settings=settings)
    return terms, m.concession, fairness, authority_check(p.role, m, settings)


def authority_check(role: str, m: OfferMetrics, settings: Settings) -> AuthorityCheck:
    needed = required_role(settings.authority, m)
    limit = settings.authority.get(role)
    over = exceeded(limit, m) if limit is not None else ["no authority"]
    return AuthorityCheck(
        proposer_role=role, required_role=needed,
        within_authority=not over, exceeded=over,
    )


def proposed_events(ws: Workspace, offer: Offer, now: datetime) -> list[Envelope[Any]]:
    events = [event(ws, negotiation.SettlementProposed(
        case_number=ws.case_number, offer_id=offer.offer_id, summary=summary(offer),
        amount=offer.concession, customer_id=ws.customer_id, final=offer.final,
        terms=public_terms(offer),
    ), now)]
    final_zh = "（最终方案）" if offer.final else ""
    final_en = " (final offer)" if offer.final else ""
    events += notify(
        ws, "offer",
        (f"您的投诉 {ws.case_number} 有新的解决方案{final_zh}",
         f"我们为您的投诉提出了解决方案：\n{describe_offer(offer, 'zh-CN')}\n请在应用内查看并答复。"),
        (f"A new offer for your complaint {ws.case_number}{final_en}",
         f"We have made an offer for your complaint:\n{describe_offer(offer, 'en')}\nPlease look at it in the app and reply."),
        now,
    )
    return events


def open_offer(ws: Workspace, offer: Offer, by: Actor, now: datetime, note: str = "") -> None:
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
    repo: Store, settings: Settings, now: datetime,
) -> tuple[Workspace, Offer]:
    """Propose an offer: compute it, check fairness and authority, open it or ask approval."""
    ws = await load_case(case_id, p, repo=repo)
    await require_staff_action(ws, p, repo=repo)
    check_version(ws, expected_version)
    if responds_to is not None and ws.offer(responds_to) is None:
        raise Unprocessable(f"offer {responds_to} does not exist on this case", field="responds_to")
    terms = prepare_terms(terms, today=beijing_day(now))
    m = offer_metrics(terms, ws.amount_disputed)
    fairness = await assess_fairness(ws, terms, m.concession, repo=repo, settings=settings)
    justification = (justification or "").strip() or None
    if fairness.flagged and (justification is None or len(justification) < 10):
        raise Unprocessable(
            "this offer is outside the usual range of similar settlements; give a written "
            f"justification (10+ characters). {fairness.explanation_en}",
            field="justification",
        )
    check = authority_check(p.role, m, settings)
    ws, events, offer = offer_made(ws, terms=terms, concession=m.concession, fairness=fairness, check=check,
                                   reason=reason, justification=justification, final=final,
                                   responds_to=responds_to, by=actor(p), now=now)
    saved = await repo.save(ws, ws.version, events)
    return saved, saved.offer(offer.offer_id)  # type: ignore[return-value]


def offer_made(
    ws: Workspace, *, terms: list[Any], concession: Decimal, fairness: FairnessComparison,
    check: AuthorityCheck, reason: str, justification: str | None, final: bool, responds_to: str | None,
    by: Actor, now: datetime,
) -> tuple[Workspace, Events, Offer]:
    """Add an institution offer (pure): open within authority (``settlement.proposed`` and the
    customer's notice owed), otherwise waiting for approval (nothing owed yet).
    """
    ws = ws.model_copy(deep=True)
    offer = Offer(
        offer_id=f"OF-{len(ws.offers) + 1:03d}", party="institution", status="pending_approval",
        terms=terms, final=final, reason=reason, justification=justification,
        concession=concession, fairness=fairness, authority=check, responds_to=responds_to,
        proposed_by=by, created_at=now,
        history=[OfferEvent(status="pending_approval", by=by, at=now, note=reason)],
    )
    ws.offers.append(offer)
    events: Events = []
    if check.within_authority:
        open_offer(ws, offer, by, now, note="within the proposer's authority")
        events = proposed_events(ws, offer, now)
        mark(ws, now, f"offer {offer.offer_id} made", by=by.sub, detail=summary(offer))
    else:
        mark(ws, now, f"offer {offer.offer_id} awaits approval", by=by.sub,
             detail=f"needs {check.required_role}: {'; '.join(check.exceeded)}")
    return ws, events, offer


async def decide_approval(
    case_id: str, offer_id: str, *, approve: bool, note: str, p: Principal,
    expected_version: int | None, repo: Store, now: datetime,
) -> tuple[Workspace, Offer]:
    """Approve or reject (with a reason) an offer above its proposer's authority."""
    ws = await load_case(case_id, p, repo=repo)
    offer = ws.offer(offer_id)
    if offer is None or offer.party != "institution":
        raise NotFound(f"offer {offer_id} not found on case {case_id}")
    if p.role in ("auditor", "customer"):
        raise Forbidden(f"a {p.role} may not approve offers")
    if await conflicted(ws, p.sub, repo):
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
    ws, events = approval_decided(ws, offer_id, approve=approve, note=note, by=actor(p), required=required, now=now)
    saved = await repo.save(ws, ws.version, events)
    return saved, saved.offer(offer_id)  # type: ignore[return-value]


def approval_decided(ws: Workspace, offer_id: str, *, approve: bool, note: str, by: Actor, required: str,
                     now: datetime) -> tuple[Workspace, Events]:
    """Approve (the offer opens: ``settlement.approved``, ``settlement.proposed`` and the notice
    owed) or reject an offer waiting for approval (pure; permissions checked by the caller).
    """
    ws = ws.model_copy(deep=True)
    offer = ws.offer(offer_id)
    assert offer is not None
    events: Events = []
    if approve:
        offer.history.append(OfferEvent(status="pending_approval", by=by, at=now, note=f"approved: {note}".strip()))
        open_offer(ws, offer, by, now, note=f"approved by {by.role}")
        events.append(event(ws, negotiation.SettlementApproved(
            case_number=ws.case_number, offer_id=offer_id, approver_role=by.role, required_role=required,
        ), now))
        events += proposed_events(ws, offer, now)
        mark(ws, now, f"offer {offer_id} approved", by=by.sub, detail=note)
    else:
        offer.status = "approval_rejected"
        offer.history.append(OfferEvent(status="approval_rejected", by=by, at=now, note=note))
        mark(ws, now, f"offer {offer_id} not approved", by=by.sub, detail=note)
    return ws, events


async def withdraw_offer(
    case_id: str, offer_id: str, *, reason: str, p: Principal, expected_version: int | None,
    repo: Store, now: datetime,
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
    offer.history.append(OfferEvent(status="withdrawn", by=actor(p), at=now, note=reason))
    mark(ws, now, f"offer {offer_id} withdrawn", by=p.sub, detail=reason)
    return await repo.save(ws, ws.version, [])


async def set_hardship(
    case_id: str, *, hardship: bool, reason: str, p: Principal, expected_version: int | None,
    repo: Store, now: datetime,
) -> Workspace:
    """Mark (or clear) the customer's hardship (illness, income loss...); fairness compares with like cases."""
    ws = await load_case(case_id, p, repo=repo)
    await require_staff_action(ws, p, repo=repo)
    check_version(ws, expected_version)
    ws.hardship, ws.hardship_reason = hardship, reason
    mark(ws, now, "hardship recorded" if hardship else "hardship cleared", by=p.sub, detail=reason)
    return await repo.save(ws, ws.version, [])
