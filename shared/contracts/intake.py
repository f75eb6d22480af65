"""Contracts of stage 1, intake (投诉受理).

``complaint.registered`` and ``customer.notified`` are emitted by the intake service.

The ingress contract of ``complaint.received`` is ``ComplaintSubmission`` (with ``Customer``
and ``Attachment``): what channels publish there (plain JSON, no envelope, key = the
channel's complaint id) and what ``POST /complaints`` takes; ``decode_submission`` reads a
Kafka value into it. It is strict on purpose: unknown fields, wrong types, ids that could be
read as query operators, amounts beyond any real complaint and received times in the future
are refused with an error naming the field, so nothing doubtful reaches the store.

Strict means no coercion (pydantic strict mode): strings only from JSON strings, booleans only
from JSON ``true``/``false`` (not ``"yes"``, ``"on"``, ``1``, ``"true"``), ``received_at`` only
from an ISO 8601 string with offset (not a number, not a numeric string). The JSON wire form
is what the models take, whether validated from bytes or from the decoded dict: enums from
their string values, amounts as decimal strings or JSON numbers (never booleans). And no
string field holds a control character (C0, DEL or C1; free text may keep tab, line feed and
carriage return): ``_Ingress`` checks every string field once, before any stripping.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from shared.clock import now as clock_now
from shared.contracts.common import Channel, Language, Money, Priority, Product, WireMoney
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

#: Control characters no string field may hold: C0, DEL and C1.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: The same, but free text may keep tab, line feed and carriage return.
_CONTROL_IN_FREE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: An ISO 8601 date-time: a date, ``T`` (or a space) and at least hours and minutes. The
#: offset is required by ``AwareDatetime``; this check refuses numbers and numeric strings
#: (pydantic would read ``"1700000000"`` as Unix time).
_ISO_DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _iso_datetime(value: Any) -> Any:
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATETIME.match(value)):
        return value
    raise PydanticCustomError(
        "iso_datetime", "must be an ISO 8601 date-time string with offset, e.g. 2026-11-29T09:12:00+08:00"
    )


#: A time as the wire carries it: an ISO 8601 string with offset (or a ``datetime`` from Python).
IsoDatetime = Annotated[AwareDatetime, Strict(False), BeforeValidator(_iso_datetime)]
#: Enums as the wire carries them: their string values (``Strict(False)`` lets Python callers
#: pass the value too; anything that is not one of the values is still refused).
WireChannel = Annotated[Channel, Strict(False)]
WireProduct = Annotated[Product, Strict(False)]
WireLanguage = Annotated[Language, Strict(False)]


class _Ingress(BaseModel):
    """Base of the ingress models: strict types, no unknown fields, no control characters."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    #: Fields that are free text and may keep tab, line feed and carriage return.
    free_text_fields: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse a control character in any string field, naming it by code point only."""
        if isinstance(value, str):
            pattern = _CONTROL_IN_FREE_TEXT if info.field_name in cls.free_text_fields else _CONTROL
            found = pattern.search(value)
            if found:
                raise PydanticCustomError(
                    "control_character", "contains a control character ({char})",
                    {"char": f"U+{ord(found.group()):04X}"},
                )
        return value


class Customer(_Ingress):
    """The complainant. Name, phone and ID number are personal data: stored only in intake."""

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


class Attachment(_Ingress):
    """A reference to a file the channel keeps (intake stores the reference, not the file)."""

    ref: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
    filename: ShortText | None = None
    content_type: Annotated[str, StringConstraints(max_length=100)] | None = None


class ComplaintSubmission(_Ingress):
    """One complaint as a channel submits it (Kafka ``complaint.received`` or ``POST /complaints``)."""

    free_text_fields: ClassVar[frozenset[str]] = frozenset({"text", "demand"})

    channel_complaint_id: Identifier = Field(description="The channel's id of this complaint; Kafka key.")
    channel: WireChannel
    received_at: IsoDatetime = Field(description="When the channel received it: ISO 8601 with offset.")
    customer: Customer
    product: WireProduct
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)]
    language: WireLanguage | None = Field(None, description="zh-CN or en; detected from the text if absent.")
    amount_disputed: WireMoney | None = Field(None, description="Amount in dispute, CNY (decimal).")
    amount_demanded: WireMoney | None = Field(None, description="Amount the customer asks for, CNY.")
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
        now = clock_now()  # the process-wide clock: a simulated month's complaints are not "future"
        if value > now + MAX_CLOCK_SKEW:
            raise ValueError("must not be in the future")
        if value < EARLIEST_RECEIVED:
            raise ValueError("must not be before 2000-01-01")
        # MongoDB keeps milliseconds: truncate here so stored and published times agree
        value = value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

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
    # optional additions (v1, clock issue 12): how ``deadline_at`` was computed (shared.clock)
    deadline_tier: int | None = Field(
        None, description="Days of the deadline's tier (15, 30 or 60), counted from receipt (Beijing days)."
    )
    deadline_provisional: bool = Field(
        False, description="A day counted lies in a year the holiday package does not cover "
        "(weekends only were rest days): recompute once it does; supervision raises an ops alert.",
    )


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
