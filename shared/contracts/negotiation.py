"""Contracts of stages 3–4, negotiation and the resolution plan (协商沟通, 解决方案制定).

At their v1 core: the stage's own issue adds optional fields (never renames or removes
one) as it builds the stage; ``extra="ignore"`` lets consumers read newer producers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shared.contracts.common import Money
from shared.contracts.envelope import Payload
from shared.contracts.terms import EventTerms


class NegotiationStarted(Payload):
    """A negotiation workspace opened for a case. Emitted by negotiation."""

    event_type = "negotiation.started"

    case_number: str
    agent_id: str | None = None
    team: str | None = None
    deadline_at: AwareDatetime | None = None


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
    customer_id: str | None = None
    final: bool = False
    terms: EventTerms = Field(
        default_factory=list, description="The offer's typed terms (shared.contracts.terms.Term)."
    )


class SettlementApproved(Payload):
    """An offer above the proposer's authority was approved. Emitted by negotiation."""

    event_type = "settlement.approved"

    case_number: str
    offer_id: str
    approver_role: str
    required_role: str | None = None


class SettlementAgreed(Payload):
    """The customer accepted an offer; the agreement is binding. Emitted by negotiation."""

    event_type = "settlement.agreed"

    case_number: str
    offer_id: str
    agreement_id: str
    summary: str
    customer_id: str | None = None
    amount: Money | None = Field(None, description="Total concession (waived, refunded, paid).")
    terms: EventTerms = Field(
        default_factory=list,
        description=(
            "Typed terms (shared.contracts.terms.Term); an instalment_plan term carries its "
            "schedule (due dates, amounts)."
        ),
    )
    accepted_at: AwareDatetime | None = None
    accepted_via: str | None = None


class CaseEscalated(Payload):
    """The case leaves negotiation for mediation or litigation, with its dossier."""

    event_type = "case.escalated"

    case_number: str
    target: Literal["mediation", "litigation"]
    reason: str
    dossier_ref: str | None = None
    dossier_url: str | None = Field(None, description="Where the dossier (JSON; .html) is served.")
    requested_by: str | None = Field(None, description="customer, staff or deadline.")


class SettlementRejected(Payload):
    """The customer rejected an offer (``final`` says whether it was the final one).

    Emitted by negotiation; a rejected final offer is followed by ``negotiation.failed`` and
    ``case.escalated``.
    """

    event_type = "settlement.rejected"

    case_number: str
    offer_id: str
    final: bool = False
    reason: str = ""
