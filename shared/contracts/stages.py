"""Contracts of stages 2–6 and supervision, at their v1 core.

Each stage's own issue adds optional fields (never renames or removes one) as it builds
the stage; ``extra="ignore"`` on every payload lets consumers read newer producers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shared.contracts.common import Category, Money
from shared.contracts.envelope import Payload


class InvestigationCompleted(Payload):
    """Investigation finished with a finding. Emitted by investigation."""

    event_type = "investigation.completed"

    case_number: str
    category: Category
    finding: Literal["substantiated", "partly_substantiated", "unsubstantiated"]
    reasons: list[str] = Field(default_factory=list)
    complex_case: bool = False


class NegotiationStarted(Payload):
    """A negotiation workspace opened for a case. Emitted by negotiation."""

    event_type = "negotiation.started"

    case_number: str
    agent_id: str | None = None


class NegotiationFailed(Payload):
    """Negotiation ended without agreement. Emitted by negotiation."""

    event_type = "negotiation.failed"

    case_number: str
    reason: str


class SettlementProposed(Payload):
    """An offer was put to the customer (after any approval). Emitted by negotiation."""

    event_type = "settlement.proposed"

    case_number: str
    offer_id: str
    summary: str
    amount: Money | None = None


class SettlementApproved(Payload):
    """An offer above the proposer's authority was approved. Emitted by negotiation."""

    event_type = "settlement.approved"

    case_number: str
    offer_id: str
    approver_role: str


class SettlementAgreed(Payload):
    """The customer accepted an offer; the agreement is binding. Emitted by negotiation."""

    event_type = "settlement.agreed"

    case_number: str
    offer_id: str
    agreement_id: str
    summary: str


class SettlementExecuted(Payload):
    """The agreed remedy was carried out. Emitted by follow-up (execution)."""

    event_type = "settlement.executed"

    case_number: str
    agreement_id: str


class CaseEscalated(Payload):
    """The case leaves negotiation for mediation or litigation, with its dossier."""

    event_type = "case.escalated"

    case_number: str
    target: Literal["mediation", "litigation"]
    reason: str
    dossier_ref: str | None = None


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


class SupervisionAlert(Payload):
    """Something needs a person's attention: a deadline, a dead letter, a breach."""

    event_type = "supervision.alert"

    kind: str = Field(description="deadline_warning, deadline_breached, dead_letter, ...")
    severity: Literal["info", "warning", "critical"]
    message: str
    due_at: AwareDatetime | None = None
