"""The event envelope: identity, type, version, time, case, causality and a typed payload.

Rules (see docs/events.md): event types are past tense and never renamed; within a
``schema_version`` only optional fields are added; consumers ignore unknown fields; a
breaking change is a new version with an upcaster. A consumer refuses (dead-letters) an event
whose ``schema_version`` is not one of its payload's ``known_versions()`` — it never reads a
version it does not know as one it does. ``case_id`` is the Kafka key of every enveloped
event, so one case's events stay in order on one partition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.clock import now as clock_now


class Payload(BaseModel):
    """Base of every event payload; subclasses set ``event_type`` and ``schema_version``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1

    @classmethod
    def known_versions(cls) -> tuple[int, ...]:
        """The ``schema_version`` values a consumer of this payload can read.

        The current version only: an older one may join only together with its upcaster (none
        exist yet), and a newer one is unknown by definition.
        """
        return (cls.schema_version,)


P = TypeVar("P", bound=Payload)


def utcnow() -> datetime:
    """Return the current business time, timezone-aware (UTC): the process-wide clock of
    ``shared.clock`` (the system clock unless ``PARLEY_CLOCK_*`` asks for a simulated one)."""
    return clock_now()


class Envelope(BaseModel, Generic[P]):
    """One event on the wire. Frozen: an event, once made, never changes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID = Field(default_factory=uuid4, description="Unique id of this event.")
    event_type: str = Field(description="Past-tense name, equal to the topic, e.g. complaint.registered.")
    schema_version: int = Field(1, ge=1, description="Version of the payload contract.")
    occurred_at: AwareDatetime = Field(default_factory=utcnow, description="When it happened.")
    case_id: str = Field(min_length=1, max_length=64, description="The case; Kafka key.")
    correlation_id: str = Field(
        min_length=1, max_length=128, description="Shared by every event of one complaint's story."
    )
    causation_id: str | None = Field(
        None, max_length=128, description="event_id of the event that caused this one."
    )
    producer: str = Field(min_length=1, max_length=64, description="Service that emitted it.")
    payload: P

    @classmethod
    def of(cls, payload_type: type[Any]) -> type[Envelope[Any]]:
        """``Envelope[payload_type]``, made once per payload type: pydantic computes a cache key
        on every subscription (milliseconds each), which a batch of hundreds of events felt."""
        made = _PARAMETRISED.get(payload_type)
        if made is None:
            made = _PARAMETRISED[payload_type] = Envelope[payload_type]  # type: ignore[valid-type]
        return made

    @classmethod
    def wrap(
        cls,
        payload: P,
        *,
        case_id: str,
        producer: str,
        correlation_id: str | None = None,
        cause: Envelope[Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope[P]:
        """Put ``payload`` in a new envelope, continuing the story of ``cause`` if given."""
        event_id = uuid4()
        if correlation_id is None:
            correlation_id = cause.correlation_id if cause is not None else str(event_id)
        return Envelope.of(type(payload))(
            event_id=event_id,
            event_type=payload.event_type,
            schema_version=payload.schema_version,
            occurred_at=occurred_at or utcnow(),
            case_id=case_id,
            correlation_id=correlation_id,
            causation_id=str(cause.event_id) if cause is not None else None,
            producer=producer,
            payload=payload,
        )

    def to_bytes(self) -> bytes:
        """Serialise to UTF-8 JSON, as it travels on Kafka."""
        return self.model_dump_json().encode("utf-8")

    def key(self) -> bytes:
        """Return the Kafka key: the case id."""
        return self.case_id.encode("utf-8")


#: ``Envelope[P]`` per payload type (``Envelope.of``).
_PARAMETRISED: dict[type[Any], type[Envelope[Any]]] = {}
