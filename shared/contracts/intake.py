"""Contracts of stage 1, intake (投诉受理).

``complaint.registered`` and ``customer.notified`` are emitted by the intake service.

The ingress contract of ``complaint.received`` is ``ComplaintSubmission`` (with ``Customer``
and ``Attachment``): what channels publish there (plain JSON, no envelope, key = the
channel's complaint id) and what ``POST /complaints`` takes; ``decode_submission`` reads a
Kafka value into it. It is strict on purpose: unknown fields, wrong types, ids that could be
read as query operators, amounts beyond any real complaint and received times in the future
are refused with an error naming the field, so nothing doubtful reaches the store.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.contracts.common import Channel, Language, Money, Priority, Product
from shared.contracts.envelope import Payload

# ------------------------------------------------------------------ ingress: complaint.received

#: The longest complaint text taken.
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



def decode_submission(raw: bytes | None) -> ComplaintSubmission:
    """Decode a ``complaint.received`` value, or raise ``InvalidMessage`` naming each bad field.

    Reasons never include input values (they may hold personal data).
    """
    from pydantic import ValidationError

    from shared.errors import InvalidMessage
    from shared.topics import decode_json, validation_errors  # shared.topics imports this module

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


# ------------------------------------------------------------------ events


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
