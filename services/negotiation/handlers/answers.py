"""The customer's answers to an offer: accept (the agreement), reject, counter-offer.

Staff may record an acceptance the customer gave by phone, letter or in person. A rejected
final offer ends negotiation (see ``escalation``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from services.negotiation import fairness as fair
from services.negotiation.auth import Principal
from services.negotiation.documents import agreement_texts
from services.negotiation.errors import Conflict, Forbidden, NotFound, Unprocessable
from services.negotiation.handlers.common import (
    Events,
    Target,
    actor,
    check_version,
    event,
    load_case,
    mark,
    notify,
    public_terms,
    require_staff_action,
)
from services.negotiation.handlers.escalation import end_negotiation
from services.negotiation.handlers.offers import assess_fairness, offer_metrics, prepare_terms
from services.negotiation.handlers.ports import Store
from services.negotiation.models import (
    Acceptance,
    Actor,
    Agreement,
    Message,
    Offer,
    OfferEvent,
    Workspace,
)
from services.negotiation.settings import Settings
from services.negotiation.texts import summary
from shared.clock import beijing_day
from shared.contracts import negotiation
from shared.contracts.terms import FeeWaiver


def answerable_offer(ws: Workspace, offer_id: str) -> Offer:
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
    repo: Store, now: datetime,
) -> Workspace:
    """Record the customer's acceptance; make the agreement; publish ``settlement.agreed``."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role != "customer":
        raise Forbidden("only the customer can accept an offer; staff record one with record-acceptance")
    offer = answerable_offer(ws, offer_id)
    check_version(ws, expected_version)
    return await agree(ws, offer, Acceptance(by=actor(p), at=now, channel=channel), repo=repo, now=now)


async def record_acceptance(
    case_id: str, offer_id: str, *, channel: str, note: str, p: Principal,
    expected_version: int | None, repo: Store, now: datetime,
) -> Workspace:
    """Record an acceptance the customer gave by phone, letter or in person (who, when, channel)."""
    ws = await load_case(case_id, p, repo=repo)
    await require_staff_action(ws, p, repo=repo)
    if channel == "in_app":
        raise Unprocessable("in-app acceptances are made by the customer in the app", field="channel")
    if not ws.customer_id:
        raise Conflict(f"case {case_id} has no known customer to record an acceptance for")
    offer = answerable_offer(ws, offer_id)
    check_version(ws, expected_version)
    acceptance = Acceptance(
        by=Actor(sub=ws.customer_id, role="customer"), at=now, channel=channel,
        recorded_by=actor(p), note=note,
    )
    return await agree(ws, offer, acceptance, repo=repo, now=now)


def agreed(ws: Workspace, offer: Offer, acceptance: Acceptance, now: datetime) -> tuple[Workspace, Events]:
    """Make the agreement (pure): the offer accepted, the case agreed, ``settlement.agreed`` and
    the customer's notice owed. ``offer`` must be one of ``ws``'s offers.
    """
    ws = ws.model_copy(deep=True)
    offer = ws.offer(offer.offer_id)  # type: ignore[assignment]
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
    mark(ws, now, f"offer {offer_id} accepted; agreement {agreement_id}", by=recorder.sub,
          detail=f"via {acceptance.channel}")
    events = [event(ws, negotiation.SettlementAgreed(
        case_number=ws.case_number, offer_id=offer_id, agreement_id=agreement_id,
        summary=summary(offer), customer_id=ws.customer_id, amount=offer.concession,
        terms=public_terms(offer), accepted_at=now, accepted_via=acceptance.channel,
    ), now)]
    events += notify(
        ws, "outcome",
        (f"和解协议已生效：{ws.case_number}", zh), (f"Settlement agreed: {ws.case_number}", en), now,
    )
    return ws, events


def settlement_reference(ws: Workspace) -> dict[str, Any] | None:
    """The agreed settlement as a fairness reference (pure); None when it has no basis."""
    if ws.agreement is None or ws.offer(ws.agreement.offer_id) is None:
        return None
    fee_basis = sum((t.fee_amount for t in ws.agreement.terms if isinstance(t, FeeWaiver)), Decimal("0"))
    basis = ws.amount_disputed or (fee_basis if fee_basis > 0 else None)
    pct = fair.relief_pct(ws.agreement.concession, basis)
    if pct is None:
        return None
    return {
        "ref_id": f"case-{ws.case_id}", "source": "agreed", "case_id": ws.case_id,
        "category": ws.category or "other", "band": fair.amount_band(basis),
        "hardship": ws.hardship, "relief_bp": int(pct * 100),
    }


async def agree(ws: Workspace, offer: Offer, acceptance: Acceptance, *, repo: Store,
                now: datetime) -> Workspace:
    """Save the agreement (see ``agreed``) and add it to the fairness reference set."""
    new, events = agreed(ws, offer, acceptance, now)
    saved = await repo.save(new, ws.version, events)
    await record_settlement(saved, repo=repo)
    return saved


async def record_settlement(ws: Workspace, *, repo: Store) -> None:
    """Add an agreed settlement to the fairness reference set (idempotent per case)."""
    ref = settlement_reference(ws)
    if ref is not None:
        await repo.add_ref(ref)


async def reject_offer(
    case_id: str, offer_id: str, *, reason: str, escalate_to: Target, p: Principal,
    expected_version: int | None, repo: Store, now: datetime, settings: Settings,
) -> Workspace:
    """Record the customer's rejection; a rejected final offer ends negotiation (escalation)."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role != "customer":
        raise Forbidden("only the customer can reject an offer")
    offer = answerable_offer(ws, offer_id)
    check_version(ws, expected_version)
    offer.status = "rejected"
    offer.history.append(OfferEvent(status="rejected", by=actor(p), at=now, note=reason))
    mark(ws, now, f"offer {offer_id} rejected", by=p.sub, detail=reason)
    events = [event(ws, negotiation.SettlementRejected(
        case_number=ws.case_number, offer_id=offer_id, final=offer.final, reason=reason[:500],
    ), now)]
    if offer.final:
        return await end_negotiation(ws, target=escalate_to, by=actor(p), requested_by="customer",
                               reason=f"customer rejected the final offer {offer_id}: {reason}",
                               events=events, repo=repo, settings=settings, now=now)
    return await repo.save(ws, ws.version, events)


async def counter_offer(
    case_id: str, offer_id: str, *, message: str, terms: list[Any], p: Principal,
    expected_version: int | None, repo: Store, settings: Settings, now: datetime,
) -> tuple[Workspace, Offer]:
    """Record the customer's counter-offer (what they would accept instead)."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role != "customer":
        raise Forbidden("only the customer can counter an offer")
    offer = answerable_offer(ws, offer_id)
    check_version(ws, expected_version)
    by = actor(p)
    terms = prepare_terms(terms, today=beijing_day(now)) if terms else []
    m = offer_metrics(terms, ws.amount_disputed)
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
    mark(ws, now, f"offer {offer_id} countered by {counter.offer_id}", by=p.sub, detail=summary(counter))
    saved = await repo.save(ws, ws.version, [])
    return saved, saved.offer(counter.offer_id)  # type: ignore[return-value]
