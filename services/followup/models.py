"""Follow-up's domain: an execution plan of steps per agreed settlement, and the callback."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.common import Money

Owner = Literal["institution", "customer"]
StepStatus = Literal["pending", "done", "overdue", "missed"]
ExecutionStatus = Literal["executing", "monitoring", "executed", "followed_up", "closed", "reopened", "escalated"]


class Step(BaseModel):
    """One thing to be done to carry out an agreement."""

    step_id: str
    kind: str
    owner: Owner
    title_zh: str
    title_en: str
    due_at: datetime
    amount: Money | None = Field(default=None, description="The money the step moves (CNY), from the agreed term.")
    instalment_number: int | None = Field(default=None, description="Which instalment of the plan (customer steps).")
    status: StepStatus = "pending"
    done_at: datetime | None = None
    done_by: str | None = None
    evidence_ref: str | None = None


class Callback(BaseModel):
    """The satisfaction callback (回访)."""

    satisfied: bool
    score: int = Field(ge=1, le=5)
    comment: str = ""
    by: str
    at: datetime


class Execution(BaseModel):
    """Everything follow-up knows of one case."""

    case_id: str
    case_number: str
    agreement_id: str | None = None
    customer_id: str | None = None
    status: ExecutionStatus
    summary: str = ""
    steps: list[Step] = Field(default_factory=list)
    executed_at: datetime | None = None
    callback: Callback | None = None
    escalation_target: str | None = None
    reopened_at: datetime | None = Field(None, description="When a dissatisfied callback reopened the case.")
    previous_agreement_ids: list[str] = Field(
        default_factory=list, description="Agreements this plan replaced after the case was reopened.")
    correlation_id: str = Field(
        "", description="The story's correlation id (the complaint's), from the event that made this record: "
        "the events follow-up publishes carry it, so they stay in the complaint's trace (shared.tracing).")
    version: int = 1


class CompleteStep(BaseModel):
    """Request: a step was carried out."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=64, description="Who did it (staff id, or 'customer').")
    evidence_ref: str | None = Field(None, max_length=256, description="Booking, payment or letter reference.")
    expected_version: int | None = Field(None, ge=1, description="Refuse with 409 if the record changed.")


class RecordCallback(BaseModel):
    """Request: the result of the satisfaction callback."""

    model_config = ConfigDict(extra="forbid")

    satisfied: bool
    score: int = Field(ge=1, le=5, description="1 (very dissatisfied) to 5 (very satisfied).")
    comment: str = Field("", max_length=2000)
    by: str = Field(min_length=1, max_length=64)
    expected_version: int | None = Field(None, ge=1)
