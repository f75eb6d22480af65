"""Builders of realistic events for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

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


def agreed(
    case_id: str,
    *,
    terms: list[dict[str, object]] | None = None,
    customer_id: str = "cust-1",
) -> Envelope[SettlementAgreed]:
    """A ``settlement.agreed`` event as negotiation would publish it."""
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
                    "kind": "instalment_plan", "amount": "900.00", "months": 3, "first_due_date": "2026-12-29",
                    "schedule": [
                        {"number": 1, "due_date": "2026-12-29", "principal": "300.00", "interest": "0.00",
                         "payment": "300.00", "balance_after": "600.00"},
                        {"number": 2, "due_date": "2027-01-29", "principal": "300.00", "interest": "0.00",
                         "payment": "300.00", "balance_after": "300.00"},
                        {"number": 3, "due_date": "2027-02-28", "principal": "300.00", "interest": "0.00",
                         "payment": "300.00", "balance_after": "0.00"},
                    ],
                    "total_interest": "0.00", "total_payable": "900.00",
                },
            ],
        ),
        case_id=case_id,
        producer="negotiation",
    )
