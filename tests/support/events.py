"""Builders of realistic events for tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.clock import beijing_day, now
from shared.contracts.common import Channel, Language, Priority, Product
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ComplaintRegistered
from shared.contracts.negotiation import SettlementAgreed


def registered(
    case_id: str,
    *,
    received_at: datetime | None = None,
    deadline_days: float = 15,
    text: str = "催收人员一天打了二十多次电话，还打给我的同事和家人",
    number: int = 1,
) -> Envelope[ComplaintRegistered]:
    """A ``complaint.registered`` event as intake would publish it."""
    received_at = received_at or datetime.now(UTC)
    return Envelope.wrap(
        ComplaintRegistered(
            case_number=f"TS-{received_at:%Y%m%d}-{number:06d}",
            complaint_id=f"cmp-{case_id}",
            channel=Channel.APP,
            channel_complaint_id=f"app-{case_id}",
            received_at=received_at,
            deadline_at=received_at + timedelta(days=deadline_days),
            priority=Priority.NORMAL,
            product=Product.CONSUMER_LOAN,
            language=Language.ZH_CN,
            customer_id=f"cust-{case_id}",
            customer_phone_masked="138****5678",
            text=text,
        ),
        case_id=case_id,
        producer="intake",
        occurred_at=received_at,
    )


def plan_schedule(first_due: date, months: int, payment: str = "300.00") -> list[dict[str, object]]:
    """The schedule rows of an interest-free plan of ``months`` equal payments from ``first_due``."""
    from services.negotiation.plan import add_months

    total = Decimal(payment) * months
    return [{"number": n, "due_date": add_months(first_due, n - 1).isoformat(), "principal": payment,
             "interest": "0.00", "payment": payment, "balance_after": str(total - Decimal(payment) * n)}
            for n in range(1, months + 1)]


def agreed(
    case_id: str,
    *,
    terms: list[dict[str, object]] | None = None,
    customer_id: str = "cust-1",
    first_due: date | None = None,
) -> Envelope[SettlementAgreed]:
    """A ``settlement.agreed`` event as negotiation would publish it.

    The default plan's first instalment is due 30 days after today (Beijing, the process
    clock), or on ``first_due``: a fixed date would one day lie in the past, and follow-up
    would count the instalment missed.
    """
    first_due = first_due or beijing_day(now()) + timedelta(days=30)
    return Envelope.wrap(
        SettlementAgreed(
            case_number=f"TS-20261129-{abs(hash(case_id)) % 1_000_000:06d}",
            offer_id=f"offer-{case_id}",
            agreement_id=f"agr-{case_id}",
            summary="减免滞纳金 80 元，余款分 3 期",
            customer_id=customer_id,
            amount=Decimal("80.00"),
            terms=terms if terms is not None else [
                {"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "80.00", "waiver_amount": "80.00"},
                {
                    "kind": "instalment_plan", "amount": "900.00", "months": 3,
                    "first_due_date": first_due.isoformat(), "schedule": plan_schedule(first_due, 3),
                    "total_interest": "0.00", "total_payable": "900.00",
                },
            ],
        ),
        case_id=case_id,
        producer="negotiation",
    )


def settled_story(case_id: str, start: datetime, amount: str, *, score: int, agent: str = "a1",
                  category: str = "collection_conduct", cause: str = "collection_off_hours",
                  number: int = 1) -> list[Envelope[Any]]:
    """A case's whole life as its services publish it: registered at ``start``, investigated
    10 h later, negotiated by ``agent`` from 12 h, agreed at 30 h for ``amount``, executed at
    40 h, called back at 50 h with ``score`` (satisfied from 3), closed at 51 h."""
    from shared.contracts.followup import CaseClosed, FollowupCompleted, SettlementExecuted
    from shared.contracts.investigation import InvestigationCompleted
    from shared.contracts.negotiation import NegotiationStarted

    reg = registered(case_id, received_at=start, number=number)
    n = reg.payload.case_number

    def at(hours: float) -> datetime:
        return start + timedelta(hours=hours)

    agr = agreed(case_id)
    agr = agr.model_copy(update={"occurred_at": at(30), "payload": agr.payload.model_copy(
        update={"amount": Decimal(amount), "case_number": n})})
    return [
        reg,
        Envelope.wrap(InvestigationCompleted(
            case_number=n, category=category, finding="substantiated", root_cause=cause,
            root_cause_zh="非工作时间催收" if cause == "collection_off_hours" else cause,
            root_cause_en="Collection off hours" if cause == "collection_off_hours" else cause),
            case_id=case_id, producer="investigation", occurred_at=at(10)),
        Envelope.wrap(NegotiationStarted(case_number=n, agent_id=agent, team="t1"), case_id=case_id,
                      producer="negotiation", occurred_at=at(12)),
        agr,
        Envelope.wrap(SettlementExecuted(case_number=n, agreement_id=f"agr-{case_id}"), case_id=case_id,
                      producer="followup", occurred_at=at(40)),
        Envelope.wrap(FollowupCompleted(case_number=n, satisfied=score >= 3, score=score), case_id=case_id,
                      producer="followup", occurred_at=at(50)),
        Envelope.wrap(CaseClosed(case_number=n, outcome="resolved"), case_id=case_id, producer="followup",
                      occurred_at=at(51)),
    ]
