"""Builders of realistic events for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.contracts.common import Channel, Language, Priority, Product
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ComplaintRegistered


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
