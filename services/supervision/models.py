"""What supervision keeps: a watch per case, its timeline, dead letters and alerts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class TimelineEntry(BaseModel):
    """One event in a case's life, as supervision saw it."""

    event_id: str
    event_type: str
    occurred_at: datetime
    producer: str


class CaseWatch(BaseModel):
    """Where a case stands and when it is due."""

    case_id: str
    case_number: str | None = None
    status: str
    deadline_at: datetime | None = None
    paused: bool = Field(False, description="The clock is stopped for external appraisal.")
    last_event_type: str
    last_event_at: datetime
    alerts: list[str] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)


class DeadLetterView(BaseModel):
    """A dead-lettered message, by position and reason (its bytes stay in Kafka)."""

    source_topic: str
    source_partition: int = Field(description="Partition of the original message.")
    source_offset: int = Field(description="Offset of the original message.")
    partition: int = Field(description="Partition of the dead-letter record.")
    offset: int = Field(description="Offset of the dead-letter record.")
    consumer: str
    reason: str
    error_type: str
    failed_at: str
    seen_at: datetime
    stored_in: str | None = Field(None, description="Where the original bytes are kept when too large for Kafka.")
    stored_id: str | None = Field(None, description="Their id there.")


class AlertAction(BaseModel):
    """Who acknowledged or resolved an alert, when, and their note."""

    by: str = Field(description="The token subject of the person.")
    at: datetime
    note: str | None = None


class AlertView(BaseModel):
    """An alert raised by supervision or by another service (``producer``)."""

    alert_id: str
    kind: str
    severity: str
    message: str
    case_id: str | None = None
    due_at: datetime | None = None
    raised_at: datetime
    producer: str = "supervision"
    status: Literal["open", "acknowledged", "resolved"] = "open"
    acknowledged: AlertAction | None = None
    resolved: AlertAction | None = None


class AlertNote(BaseModel):
    """What a person says when acknowledging or resolving an alert (who: from their token)."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000)


class PartitionLagView(BaseModel):
    """One partition a consumer group reads."""

    topic: str
    partition: int
    committed: int | None = Field(description="The group's committed offset; null: none yet.")
    end: int = Field(description="The partition's end offset (the next record's offset).")
    lag: int


class GroupLagView(BaseModel):
    """A consumer group's lag over every partition of the topics it reads."""

    group: str
    lag: int
    above_threshold: bool
    partitions: list[PartitionLagView]


class LagView(BaseModel):
    """Every service's consumer group, as Kafka has them now."""

    threshold: int
    groups: list[GroupLagView]


RemediationStatus = Literal["open", "in_progress", "done", "dropped"]
RootCause = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                             pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]


class RemediationIn(BaseModel):
    """A new remediation item (溯源整改) for a root cause: who does what by when."""

    model_config = ConfigDict(extra="forbid")

    root_cause: RootCause = Field(description="The root-cause code investigation gives, e.g. collection_off_hours.")
    owner: str = Field(min_length=1, max_length=100, description="Who is responsible (team or person).")
    action: str = Field(min_length=1, max_length=2000, description="What will be changed.")
    due_date: date
    status: RemediationStatus = "open"


class RemediationPatch(BaseModel):
    """Changes to a remediation item (fields left out stay as they are)."""

    model_config = ConfigDict(extra="forbid")

    root_cause: RootCause | None = None
    owner: str | None = Field(None, min_length=1, max_length=100)
    action: str | None = Field(None, min_length=1, max_length=2000)
    due_date: date | None = None
    status: RemediationStatus | None = None


class RemediationView(BaseModel):
    """A remediation item with who created and last changed it."""

    remediation_id: str
    root_cause: str
    owner: str
    action: str
    due_date: date
    status: RemediationStatus
    created: AlertAction | None = None
    updated: AlertAction | None = None


class BoardCase(BaseModel):
    """A case on the deadline board."""

    case_id: str
    case_number: str | None = None
    status: str
    deadline_at: datetime | None = None
    last_event_type: str | None = None
    last_event_at: datetime | None = None


class DeadlineBoard(BaseModel):
    """Cases on the clock due today and this week (Beijing days, Monday to Sunday), and breached."""

    today: str
    due_today: list[BoardCase]
    due_this_week: list[BoardCase]
    breached: list[BoardCase]


class HeartbeatView(BaseModel):
    """A service's consumer group as its workers' heartbeat."""

    group: str
    members: int
    lag: int
    committed: int
    checked_at: datetime
    seen_members: bool = Field(False, description="Ever seen with workers (false: not started yet).")
    last_member_at: datetime | None = None
    committed_at: datetime | None = None
    down_alert: str | None = None
    stall_alert: str | None = None
