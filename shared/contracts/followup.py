"""Contracts of stages 5–6, execution and follow-up (施行与监督, 后续跟踪与评估).

At their v1 core: the stage's own issue adds optional fields (never renames or removes
one) as it builds the stage; ``extra="ignore"`` lets consumers read newer producers.
"""

from __future__ import annotations

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


class CaseClosed(Payload):
    """The case is closed. Emitted by follow-up (or intake on withdrawal)."""

    event_type = "case.closed"

    case_number: str
    outcome: str
