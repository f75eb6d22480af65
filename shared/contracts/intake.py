"""Contracts of stage 1, intake (投诉受理).

``complaint.registered`` and ``customer.notified`` are emitted by the intake service. The
ingress contract of ``complaint.received`` (what channels publish) is
``ComplaintSubmission`` in ``services.intake.models`` — owned by intake, since channels
publish it without an envelope.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field

from shared.contracts.common import Channel, Language, Money, Priority, Product
from shared.contracts.envelope import Payload


class ComplaintRegistered(Payload):
    """A complaint became a case (or joined one). Emitted by intake on registration.

    Carries no personal data in clear: the customer is named by id and masked contacts.
    """

    event_type = "complaint.registered"

    case_number: str = Field(description="Human case number, e.g. TS-20261129-000123.")
    complaint_id: str = Field(description="Intake's id of this complaint.")
    channel: Channel
    channel_complaint_id: str
    received_at: AwareDatetime
    deadline_at: AwareDatetime = Field(description="Regulatory decision deadline.")
    priority: Priority
    product: Product
    language: Language
    customer_id: str
    customer_name_masked: str = ""
    customer_phone_masked: str = ""
    text: str = Field(description="Complaint text with personal numbers masked.")
    demand: str = ""
    amount_disputed: Money | None = None
    linked_case_ids: list[str] = Field(default_factory=list)
    is_repeat: bool = False
    # optional additions (v1, intake issue 3)
    role: str = Field(
        "new_case", description="new_case, linked (joined an open case) or repeat (of a closed case)."
    )
    clock_restarted: bool = Field(False, description="A linked complaint with new facts restarted the clock.")
    new_facts: bool | None = Field(None, description="Whether a linked complaint brought new facts.")
    new_facts_reasons: list[str] = Field(default_factory=list)
    priority_reasons: list[str] = Field(default_factory=list)
    customer_id_number_masked: str = ""
    amount_demanded: Money | None = None
    attachment_count: int = 0
    matter_ref: str | None = None
    registered_at: AwareDatetime | None = None


class CustomerNotified(Payload):
    """A message to the customer was issued (acknowledgement, extension, outcome...)."""

    event_type = "customer.notified"

    kind: str = Field(description="acknowledgement, extension, offer, outcome, followup ...")
    language: Language
    channel: Channel
    customer_id: str
    contact_masked: str = ""
    subject: str
    body: str
    case_number: str
    deadline_at: datetime | None = None
    # optional additions (v1, intake issue 3)
    contact_point: str = Field("", description="Where the customer can reach the institution.")
