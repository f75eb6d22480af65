"""Contracts of stages 3–4, negotiation and the resolution plan (协商沟通, 解决方案制定).

At their v1 core: the stage's own issue adds optional fields (never renames or removes
one) as it builds the stage; ``extra="ignore"`` lets consumers read newer producers.
"""

from __future__ import annotations

from typing import Literal

from shared.contracts.common import Money
from shared.contracts.envelope import Payload


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


class CaseEscalated(Payload):
    """The case leaves negotiation for mediation or litigation, with its dossier."""

    event_type = "case.escalated"

    case_number: str
    target: Literal["mediation", "litigation"]
    reason: str
    dossier_ref: str | None = None
