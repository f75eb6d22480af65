"""Contracts of stages 5–6, execution and follow-up (施行与监督, 后续跟踪与评估).

At their v1 core: the stage's own issue adds optional fields (never renames or removes
one) as it builds the stage; ``extra="ignore"`` lets consumers read newer producers.
"""

from __future__ import annotations

from pydantic import Field

from shared.contracts.envelope import Payload


class SettlementExecuted(Payload):
    """The agreed remedy was carried out. Emitted by follow-up (execution)."""

    event_type = "settlement.executed"

    case_number: str
    agreement_id: str


class FollowupCompleted(Payload):
    """The satisfaction callback was made. Emitted by follow-up."""

    event_type = "followup.completed"

    case_number: str
    satisfied: bool
    reopen: bool = False
    # optional addition (v1, issue 13): supervision's evaluation report averages it
    score: int | None = Field(None, ge=1, le=5, description="The callback's score, 1 (very dissatisfied) to 5.")


class CaseClosed(Payload):
    """The case is closed. Emitted by follow-up (or intake on withdrawal)."""

    event_type = "case.closed"

    case_number: str
    outcome: str


class CaseReopened(Payload):
    """The customer was not satisfied at the callback: negotiation takes the case up again.

    Emitted by follow-up with the callback; negotiation reopens the workspace, reassigns it
    (to another agent than the one who negotiated, when it can) and tells the customer.
    ``reasons`` is the customer's own words as the callback recorded them, with personal
    numbers masked.
    """

    event_type = "case.reopened"

    case_number: str
    agreement_id: str | None = None
    score: int = Field(ge=1, le=5, description="The callback's satisfaction score, 1 (very dissatisfied) to 5.")
    reasons: str = Field("", max_length=2000, description="Why the customer is not satisfied (masked).")
    open_instalments: int = Field(0, ge=0, description="Instalments of the agreed plan not yet paid.")
