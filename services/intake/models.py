"""Intake's own models: the channel ingress contract and the API views.

``ComplaintSubmission`` is what channels publish to ``complaint.received`` (plain JSON,
no envelope, key = the channel's complaint id) and what ``POST /complaints`` takes. It is
strict on purpose: unknown fields, wrong types, ids that could be read as query operators,
amounts beyond any real complaint and received times in the future are refused with an
error naming the field, so nothing doubtful reaches the store.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.contracts.common import Channel, Language, Money, Priority, Product

MAX_TEXT_CHARS = 20_000
#: Received times may lie at most this far ahead of our clock (channel clock skew).
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: Nothing received before this is a complaint we can still handle.
EARLIEST_RECEIVED = datetime(2000, 1, 1, tzinfo=UTC)

#: Identifiers: letters, digits and ``._:-`` only — no ``$``, dots first, braces or spaces,
#: so an id can never be read as a MongoDB operator or a field path.
Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]

_ID_NUMBER = re.compile(r"^(?:[1-9][0-9]{16}[0-9Xx]|[1-9][0-9]{14})$")
_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{4,22}$")


class Customer(BaseModel):
    """The complainant. Name, phone and ID number are personal data: stored only in intake."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: Identifier = Field(description="The institution's customer id.")
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=24)] | None = None
    id_number: Annotated[str, StringConstraints(strip_whitespace=True, max_length=18)] | None = None
    vulnerable: bool = Field(False, description="The channel knows the customer is vulnerable.")

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE.match(value):
            raise ValueError("must be a phone number (digits, optional +, spaces or dashes)")
        return value

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str | None) -> str | None:
        if value is not None and not _ID_NUMBER.match(value):
            raise ValueError("must be an 18-character (or old 15-digit) resident ID number")
        return value.upper() if value else value


class Attachment(BaseModel):
    """A reference to a file the channel keeps (intake stores the reference, not the file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
    filename: ShortText | None = None
    content_type: Annotated[str, StringConstraints(max_length=100)] | None = None


class ComplaintSubmission(BaseModel):
    """One complaint as a channel submits it (Kafka ``complaint.received`` or ``POST /complaints``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel_complaint_id: Identifier = Field(description="The channel's id of this complaint; Kafka key.")
    channel: Channel
    received_at: AwareDatetime = Field(description="When the channel received it (timezone-aware).")
    customer: Customer
    product: Product
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)]
    language: Language | None = Field(None, description="zh-CN or en; detected from the text if absent.")
    amount_disputed: Money | None = Field(None, description="Amount in dispute, CNY (decimal).")
    amount_demanded: Money | None = Field(None, description="Amount the customer asks for, CNY.")
    demand: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""
    attachments: list[Attachment] = Field(default_factory=list, max_length=50)
    matter_ref: Identifier | None = Field(
        None, description="Account, card or contract the complaint is about (for duplicate detection)."
    )
    about_case_number: Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,6}-[0-9]{8}-[0-9]{6}$")] | None = Field(
        None, description="The customer names an earlier case number."
    )
    new_facts: bool | None = Field(
        None, description="The channel's judgement whether a repeated complaint brings new facts."
    )

    @field_validator("received_at")
    @classmethod
    def _received_in_range(cls, value: datetime) -> datetime:
        now = datetime.now(UTC)
        if value > now + MAX_CLOCK_SKEW:
            raise ValueError("must not be in the future")
        if value < EARLIEST_RECEIVED:
            raise ValueError("must not be before 2000-01-01")
        # MongoDB keeps milliseconds: truncate here so stored and published times agree
        value = value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    @field_validator("text")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    def key(self) -> str:
        """The idempotency key of this complaint: ``<channel>:<channel_complaint_id>``."""
        return f"{self.channel.value}:{self.channel_complaint_id}"


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


def decode_submission(raw: bytes | None) -> ComplaintSubmission:
    """Decode a ``complaint.received`` value, or raise ``InvalidMessage`` naming each bad field.

    Reasons never include input values (they may hold personal data).
    """
    from pydantic import ValidationError

    from shared.errors import InvalidMessage
    from shared.topics import decode_json, validation_errors

    try:
        data = decode_json(raw)
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        raise InvalidMessage(f"value is not usable JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise InvalidMessage("value must be a JSON object", errors=[{"field": "(root)", "problem": "must be a JSON object"}])
    try:
        return ComplaintSubmission.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        raise InvalidMessage(
            "; ".join(f"{e['field']}: {e['problem']}" for e in errors)[:4000], errors=errors
        ) from None
