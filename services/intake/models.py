"""Intake's own models: the API views, and the channel ingress contract re-exported.

``ComplaintSubmission`` (what channels publish to ``complaint.received`` and what
``POST /complaints`` takes), its parts and ``decode_submission`` are a contract, so they live
in ``shared.contracts.intake``; they are re-exported here for intake's modules.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from shared.contracts.common import Channel, Language, Priority, Product
from shared.contracts.intake import (  # noqa: F401  (re-exported: the ingress contract)
    EARLIEST_RECEIVED,
    MAX_CLOCK_SKEW,
    MAX_TEXT_CHARS,
    Attachment,
    ComplaintSubmission,
    Customer,
    Identifier,
    ShortText,
    decode_submission,
)


class Registration(BaseModel):
    """What happened to one complaint (the handler's result, and the API's status view)."""

    complaint_id: str
    channel: Channel
    channel_complaint_id: str
    case_id: str
    case_number: str
    outcome: str = Field(description="new_case, linked or repeat")
    duplicate: bool = Field(False, description="This complaint had been registered before.")
    deadline_at: datetime
    priority: Priority
    clock_restarted: bool = False


class Accepted(BaseModel):
    """Answer of ``POST /complaints``."""

    status: str = Field(description="registered, or accepted when the worker has not finished yet")
    channel: Channel
    channel_complaint_id: str
    status_url: str
    case_id: str | None = None
    case_number: str | None = None
    deadline_at: datetime | None = None


class CaseComplaint(BaseModel):
    """One complaint within a case view."""

    complaint_id: str
    channel: Channel
    channel_complaint_id: str
    received_at: datetime
    role: str
    new_facts: bool | None = None
    clock_restarted: bool = False


class CaseView(BaseModel):
    """A case as the read side shows it: personal data masked."""

    case_id: str
    case_number: str
    status: str
    customer_id: str
    customer_name_masked: str
    customer_phone_masked: str
    customer_id_number_masked: str
    channel: Channel
    channels: list[Channel]
    product: Product
    language: Language
    matter_ref: str | None = None
    received_at: datetime
    registered_at: datetime
    deadline_at: datetime
    priority: Priority
    priority_reasons: list[str]
    amount_disputed: Decimal | None = None
    is_repeat: bool
    linked_case_ids: list[str]
    complaints: list[CaseComplaint]
    timeline: list[dict[str, Any]]
    closed_at: datetime | None = None
    outcome: str | None = None


class CasePage(BaseModel):
    """A page of ``GET /cases``."""

    items: list[CaseView]
    total: int
    page: int
    page_size: int
