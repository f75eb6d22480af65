"""The negotiation service's domain and API models: offers and their terms, the case workspace.

Money is ``Money`` (exact decimal, a string in JSON); percentages are ``Pct``. The stored
workspace is ``Workspace``; ``repository`` turns its money into integer fen for MongoDB.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.common import Category, Money, Pct  # noqa: F401  (Pct re-exported)
from shared.contracts.investigation import (
    ComputedFact,
    EvidenceItem,
    InvestigationCompleted,
    RemedyRange,
)
from shared.contracts.terms import (  # noqa: F401  (re-exported: negotiation's modules import them here)
    Apology,
    Compensation,
    CreditReportCorrection,
    Deferral,
    FeeWaiver,
    InstalmentPlanTerm,
    InterestReduction,
    Refund,
    ScheduleRow,
    Term,
)

Role = Literal["customer", "agent", "team_lead", "manager", "committee", "auditor", "system"]
Lang = Literal["zh-CN", "en"]
OfferStatus = Literal[
    "pending_approval", "approval_rejected", "open", "accepted", "rejected", "countered",
    "withdrawn", "superseded", "answered",
]
CaseStatus = Literal["awaiting_investigation", "open", "agreed", "escalated"]


class Model(BaseModel):
    """Base: unknown fields are refused in requests, so typos are reported."""

    model_config = ConfigDict(extra="forbid")


class Actor(Model):
    """Who did something."""

    sub: str
    role: Role


# ---------------------------------------------------------------- offer terms
# The term models are contracts (settlement.proposed / settlement.agreed carry them): they
# live in shared.contracts.terms and are re-exported here.


# ---------------------------------------------------------------- fairness, offers


class FairnessComparison(Model):
    """An offer compared with settlements of similar past cases."""

    comparable: bool
    offer_pct: Decimal | None = None
    peers: int = 0
    scope: list[str] = Field(default_factory=list, description="Keys the peers share.")
    p10: Decimal | None = None
    median: Decimal | None = None
    p90: Decimal | None = None
    mad: Decimal | None = None
    position: Literal["below", "within", "above", "not_comparable"] = "not_comparable"
    flagged: bool = False
    outside_suggested_range: bool = Field(
        False, description="Outside the remedy range investigation suggested (when it gave one)."
    )
    explanation_zh: str
    explanation_en: str


class AuthorityCheck(Model):
    """Whether the proposer could offer it alone, and who must approve otherwise."""

    proposer_role: Role
    required_role: str
    within_authority: bool
    exceeded: list[str] = Field(default_factory=list)


class OfferEvent(Model):
    """One step of an offer's history."""

    status: OfferStatus
    by: Actor
    at: AwareDatetime
    note: str = ""
    channel: str | None = None


class Offer(Model):
    """An offer (方案) with its terms, fairness, authority and history."""

    offer_id: str
    party: Literal["institution", "customer"]
    status: OfferStatus
    terms: list[Term]
    final: bool = False
    reason: str = ""
    justification: str | None = None
    concession: Money = Decimal("0.00")
    fairness: FairnessComparison | None = None
    authority: AuthorityCheck | None = None
    responds_to: str | None = None
    proposed_by: Actor
    created_at: AwareDatetime
    history: list[OfferEvent] = Field(default_factory=list)


class Message(Model):
    """One entry of the communication log."""

    message_id: str
    direction: Literal["inbound", "outbound", "note"]
    channel: Literal["in_app", "sms", "call", "meeting", "letter", "email"]
    body: str
    author: Actor
    at: AwareDatetime


class Recusal(Model):
    """An agent kept off a case (回避)."""

    agent_id: str
    reason: str
    by: Actor
    at: AwareDatetime


class TimelineEntry(Model):
    """What happened on the case, in order."""

    at: AwareDatetime
    what: str
    by: str = "system"
    detail: str = ""


class Acceptance(Model):
    """Who accepted, when, through which channel."""

    by: Actor
    at: AwareDatetime
    channel: str
    recorded_by: Actor | None = Field(
        None, description="The agent who recorded an acceptance given by phone, letter or in person."
    )
    note: str = ""


class Agreement(Model):
    """和解协议: the binding settlement, in zh-CN and English."""

    agreement_id: str
    offer_id: str
    terms: list[Term]
    concession: Money
    acceptance: Acceptance
    text_zh: str
    text_en: str


class Escalation(Model):
    """Why and where the case left negotiation."""

    target: Literal["mediation", "litigation"]
    reason: str
    by: Actor
    at: AwareDatetime
    dossier_id: str


class DeadlineChange(Model):
    """A change of the decision deadline the customer is told of, with its reason."""

    at: AwareDatetime
    deadline_at: AwareDatetime
    previous_at: AwareDatetime | None = None
    tier_days: int | None = None
    kind: Literal["complex", "especially_complex", "paused", "other"] = "other"
    reason_zh: str = ""
    reason_en: str = ""


class ExecutionRecord(Model):
    """Follow-up reported the agreed settlement carried out (``settlement.executed``)."""

    at: AwareDatetime
    agreement_id: str = ""
    event_id: str


class StepProgress(Model):
    """Follow-up reported a step of the agreement carried out or an instalment paid or missed
    (``execution.progressed``); kept so the customer's view shows each one."""

    at: AwareDatetime
    event_id: str
    agreement_id: str = ""
    step_id: str
    kind: str
    owner: Literal["institution", "customer"]
    outcome: Literal["done", "overdue", "paid", "missed"]
    title_zh: str = ""
    title_en: str = ""
    instalment_number: int | None = None
    amount: Money | None = None
    due_date: date | None = None
    instalments_total: int = 0
    instalments_paid: int = 0
    instalments_missed: int = 0


class Closure(Model):
    """Follow-up (or intake on withdrawal) closed the case (``case.closed``)."""

    at: AwareDatetime
    outcome: str = ""
    event_id: str


class Reopening(Model):
    """Follow-up reopened the case after a dissatisfied callback (``case.reopened``)."""

    at: AwareDatetime
    event_id: str
    score: int
    reasons: str = ""
    agreement_id: str | None = None
    previous_agent: str | None = None
    agent: str | None = Field(None, description="Who takes it up again (None: waiting for a team lead).")


class InvestigationDetails(BaseModel):
    """What else ``investigation.completed`` carried, kept for the agent and the dossier."""

    model_config = ConfigDict(extra="ignore")

    investigation_id: str | None = None
    complaint_ids: list[str] = Field(default_factory=list)
    category_confidence: float | None = None
    root_cause: str | None = None
    root_cause_zh: str = ""
    root_cause_en: str = ""
    claims: list[str] = Field(default_factory=list)
    reasons_zh: list[str] = Field(default_factory=list)
    reasons_en: list[str] = Field(default_factory=list)
    complexity_reason_zh: str = ""
    complexity_reason_en: str = ""
    paused_days: int = 0
    to_request_from_customer: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, p: InvestigationCompleted) -> InvestigationDetails:
        """Take these fields from the typed event."""
        return cls.model_validate(p.model_dump(include=set(cls.model_fields)))


class FindingRevision(Model):
    """A revised ``investigation.completed`` that came after the workspace opened: taken into an
    open workspace (``applied``), or held back because an agreement (or an escalation) already
    stands — then raised for the agent, never written over the agreement."""

    event_id: str
    revision: int
    at: AwareDatetime
    applied: bool
    revised_by: str | None = Field(None, description="The investigator whose review made it (None: new facts).")
    reason: str = Field("", description="The investigator's reason (personal numbers masked).")
    category: str
    finding: str
    remedy_min: Money | None = None
    remedy_max: Money | None = None
    previous_category: str | None = None
    previous_finding: str | None = None
    revised_fields: list[str] = Field(default_factory=list)


class Workspace(Model):
    """One case's negotiation workspace: complaint, findings, evidence and history in one view."""

    model_config = ConfigDict(extra="ignore")

    case_id: str
    case_number: str = ""
    status: CaseStatus = "awaiting_investigation"
    version: int = 0
    correlation_id: str = ""
    registered_event_id: str | None = None
    investigation_event_id: str | None = None
    investigation_revision: int = 0
    # from complaint.registered (or investigation's optional fields)
    customer_id: str | None = None
    customer_name_masked: str = ""
    language: Lang = "zh-CN"
    product: str | None = None
    complaint_text: str = ""
    demand: str = ""
    amount_disputed: Money | None = None
    deadline_at: AwareDatetime | None = None
    received_at: AwareDatetime | None = None
    registered_at: AwareDatetime | None = None
    deadline_tier: int | None = None
    deadline_from_investigation: bool = Field(
        False, description="The deadline came from investigation (tiers, pauses); intake's does not replace it.")
    deadline_changes: list[DeadlineChange] = Field(
        default_factory=list, description="Every change of the deadline after registration, with its reason.")
    # from investigation.completed
    category: str | None = None
    finding: str | None = None
    reasons: list[str] = Field(default_factory=list)
    complex_case: bool = False
    evidence: list[EvidenceItem] = Field(default_factory=list)
    facts: list[ComputedFact] = Field(default_factory=list)
    remedy_range: RemedyRange | None = None
    investigation_details: InvestigationDetails = Field(
        default_factory=lambda: InvestigationDetails(),
        description="What else investigation found (root cause, claims, what to ask the customer...).",
    )
    hardship: bool = False
    hardship_reason: str = ""
    review_pending: bool = Field(
        False, description="Investigation's category confidence was low: an investigator will review the "
        "finding (a revised investigation follows).")
    finding_revisions: list[FindingRevision] = Field(
        default_factory=list, description="Revised investigations after opening: applied, or held back "
        "(an agreement or escalation stands) for the agent to decide on.")
    opened_at: AwareDatetime | None = None
    # negotiation
    team: str | None = None
    assigned_agent: str | None = None
    recusals: list[Recusal] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list)
    offers: list[Offer] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    agreement: Agreement | None = None
    escalation: Escalation | None = None
    # from follow-up: settlement.executed, case.closed
    executions: list[ExecutionRecord] = Field(default_factory=list)
    closure: Closure | None = None
    progress: list[StepProgress] = Field(
        default_factory=list, description="Each step carried out, each instalment paid or missed (follow-up).")
    reopenings: list[Reopening] = Field(default_factory=list, description="Dissatisfied callbacks that reopened it.")
    # the regular progress notice while the case is open (handlers.progress.progress_notice)
    progress_due_at: AwareDatetime | None = Field(None, description="When the next progress notice is due.")
    progress_notices: int = Field(0, description="The last period a progress notice went out for (0: none yet).")

    def offer(self, offer_id: str) -> Offer | None:
        """Return the offer with this id, if any."""
        return next((o for o in self.offers if o.offer_id == offer_id), None)

    def recused(self, agent_id: str) -> bool:
        """Whether an agent is recused from this case."""
        return any(r.agent_id == agent_id for r in self.recusals)


class AgentProfile(Model):
    """An agent in the directory: skills, capacity, conflicts (for assignment and recusal)."""

    agent_id: str = Field(min_length=1, max_length=64)
    team: str = Field(min_length=1, max_length=64)
    role: Literal["agent", "team_lead", "manager", "committee"] = "agent"
    categories: list[Category] = Field(default_factory=list, description="Categories handled; empty: all.")
    languages: list[Lang] = Field(default_factory=lambda: list[Lang](["zh-CN"]))
    max_load: int = Field(20, ge=0, le=500)
    active: bool = True
    conflicted_customer_ids: list[str] = Field(
        default_factory=list, description="Customers this agent must not handle (回避)."
    )


class DossierFindings(Model):
    """Investigation's findings as the dossier gives them."""

    category: str | None = None
    finding: str | None = None
    reasons: list[str] = Field(default_factory=list)
    complex_case: bool = False
    hardship: bool = False
    facts: list[ComputedFact] = Field(default_factory=list)
    remedy_range: RemedyRange | None = None
    details: InvestigationDetails = Field(default_factory=lambda: InvestigationDetails())
    revision: int = 0


class Dossier(Model):
    """The escalation dossier: everything a mediator or court needs, in order."""

    dossier_id: str
    case_id: str
    case_number: str
    target: Literal["mediation", "litigation"]
    reason: str
    created_at: AwareDatetime
    complaint: dict[str, Any]
    findings: DossierFindings
    evidence: list[EvidenceItem]
    communications: list[Message]
    offers: list[Offer]
    timeline: list[TimelineEntry]


