"""Request and response bodies of negotiation's HTTP API (staff and customer).

Requests refuse unknown fields (typos are reported); changing requests carry the version
they were made against (``expected_version``, or the ``If-Match`` header).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from services.negotiation.models import (
    AuthorityCheck,
    FairnessComparison,
    Lang,
    Model,
    Offer,
    Workspace,
)
from shared.contracts.common import Money
from shared.contracts.terms import ScheduleRow, Term


class Versioned(Model):
    """A change made against a known version of the case."""

    expected_version: int | None = Field(None, ge=0, description="Or send If-Match.")


class OfferRequest(Versioned):
    """An offer an agent proposes."""

    terms: list[Term] = Field(min_length=1, max_length=12)
    reason: str = Field(min_length=1, max_length=2000, description="Why this offer (kept in the dossier).")
    justification: str | None = Field(
        None, max_length=4000, description="Required when the fairness check flags the offer."
    )
    final: bool = Field(False, description="The institution's final offer: rejecting it ends negotiation.")
    responds_to: str | None = Field(None, description="The customer counter-offer this answers.")


class PreviewRequest(Model):
    """An offer to check (schedule, fairness, authority) without saving."""

    terms: list[Term] = Field(min_length=1, max_length=12)


class PreviewResponse(BaseModel):
    """What an offer would be."""

    terms: list[Term]
    concession: Money
    fairness: FairnessComparison
    authority: AuthorityCheck


class ApprovalRequest(Versioned):
    """An approver's decision."""

    decision: Literal["approve", "reject"]
    reason: str = Field("", max_length=2000, description="Required when rejecting.")


class WithdrawRequest(Versioned):
    reason: str = Field(min_length=1, max_length=2000)


class MessageRequest(Versioned):
    """A message, call note or meeting note."""

    body: str = Field(min_length=1, max_length=8000)
    direction: Literal["inbound", "outbound", "note"] = "outbound"
    channel: Literal["in_app", "sms", "call", "meeting", "letter", "email"] = "in_app"


class CustomerMessageRequest(Versioned):
    body: str = Field(min_length=1, max_length=8000)


class AssignRequest(Versioned):
    agent_id: str | None = Field(None, description="Omit to pick by skill and load.")


class RecusalRequest(Versioned):
    agent_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=1000)


class EscalateRequest(Versioned):
    target: Literal["mediation", "litigation"]
    reason: str = Field(min_length=1, max_length=2000)


class AcceptRequest(Versioned):
    channel: Literal["in_app", "sms", "call", "meeting", "letter", "email"] = "in_app"


class RecordAcceptanceRequest(Versioned):
    """An acceptance the customer gave outside the app."""

    channel: Literal["sms", "call", "meeting", "letter", "email"]
    note: str = Field("", max_length=2000, description="E.g. where the signed letter is filed.")


class HardshipRequest(Versioned):
    hardship: bool
    reason: str = Field(min_length=1, max_length=1000, description="What changed (illness, income loss...).")


class RejectRequest(Versioned):
    reason: str = Field("", max_length=2000)
    escalate_to: Literal["mediation", "litigation"] = Field(
        "mediation", description="Where the case goes if this was the final offer."
    )


class CounterRequest(Versioned):
    message: str = Field(min_length=1, max_length=4000, description="What the customer asks for, in words.")
    terms: list[Term] = Field(default_factory=list, max_length=12, description="Optional typed terms.")


class PlanRequest(Model):
    """Instalment plan parameters."""

    amount: Money = Field(gt=Decimal("0"))
    months: int = Field(ge=1, le=60)
    first_due_date: date
    annual_rate_pct: Decimal = Field(Decimal("0"), ge=0, le=36, decimal_places=2)
    method: Literal["annuity", "equal_principal"] = "annuity"


class PlanResponse(BaseModel):
    schedule: list[ScheduleRow]
    months: int = Field(description="The term: the months asked for, or fewer when an instalment would be 0.00.")
    note: str | None = Field(None, description="Why the term differs from the months asked for (zh-CN / English).")
    total_principal: Money
    total_interest: Money
    total_payable: Money


class AffordabilityRequest(Model):
    """What the customer owes and can spare each month (for an agent sizing a plan)."""

    amount: Money = Field(gt=Decimal("0"), description="Amount the plan would repay (CNY).")
    monthly_income: Money = Field(description="The customer's monthly income (CNY).")
    monthly_expenses: Money = Field(description="The customer's necessary monthly expenses (CNY).")
    annual_rate_pct: Decimal = Field(Decimal("0"), ge=0, le=36, decimal_places=2)
    method: Literal["annuity", "equal_principal"] = "annuity"
    first_due_date: date | None = Field(None, description="Default: a month from today (Beijing time).")


class AffordabilityResponse(BaseModel):
    """The plans that fit: the shortest (least interest) and the longest allowed (lowest instalment)."""

    disposable: Decimal = Field(description="Income minus expenses per month (CNY); may be negative.")
    fits: bool = Field(description="Whether even the longest plan's instalments fit the disposable income.")
    shortest_months: int | None
    shortest_instalment: Money | None
    longest_months: int = Field(description="At most 60.")
    lowest_instalment: Money = Field(description="The largest instalment of the longest plan.")
    first_due_date: date
    explanation_zh: str
    explanation_en: str


class CaseSummary(BaseModel):
    case_id: str
    case_number: str
    status: str
    category: str | None
    team: str | None
    assigned_agent: str | None
    deadline_at: AwareDatetime | None
    version: int


class OfferResult(BaseModel):
    version: int
    offer: Offer


class CaseResult(BaseModel):
    version: int
    status: str


class CustomerOffer(BaseModel):
    offer_id: str = Field(description="For answering the offer (accept, reject, counter); not shown as text.")
    final: bool
    description: str = Field(description="What changes, how much and by when, in plain words; says when it "
                             "replaces an earlier offer.")
    concession: Money
    comparison: str | None = Field(None, description="How it compares with similar cases.")
    replaces_earlier: bool = Field(False, description="It replaces an offer we made before.")


class CustomerMessage(BaseModel):
    at: AwareDatetime
    sender: Literal["you", "us"]
    body: str


class CustomerStep(BaseModel):
    at: AwareDatetime
    text: str


class CustomerCaseView(BaseModel):
    """What the customer sees: status, next step, deadline and open offers in plain words."""

    case_id: str
    case_number: str
    language: Lang
    status: str
    stage: str = Field("", description="registered, open, agreed, executed, closed or escalated.")
    status_text: str
    next_step: str
    deadline_at: AwareDatetime | None
    deadline_text: str
    deadline_changes: list[str] = Field(default_factory=list, description="Every change of the deadline, with its reason.")
    contact: str = Field("", description="Where to reach us.")
    findings: list[str] = Field(
        default_factory=list, description="What we found, what we checked and the rule behind it, in plain words.")
    open_offers: list[CustomerOffer]
    timeline: list[CustomerStep] = Field(default_factory=list, description="What has happened, in plain words.")
    messages: list[CustomerMessage]
    agreement_id: str | None = None
    agreement_text: str | None = Field(
        None, description="The agreement: both parties named, the time in Beijing time, in the customer's language.")
    version: int


class AuditEntry(BaseModel):
    at: AwareDatetime
    actor: str | None
    role: str | None
    method: str
    path: str
    case_id: str | None
    status: int
    outcome: Literal["allowed", "refused", "rejected"]
    reason: str | None = None


class CaseView(Workspace):
    """The workspace and the customer's other cases (in the caller's scope)."""

    customer_history: list[CaseSummary] = Field(default_factory=list)
