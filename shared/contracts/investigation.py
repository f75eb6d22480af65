"""Contracts of stage 2, investigation (初步调查与核实).

At their v1 core: the stage's own issue adds optional fields (never renames or removes
one) as it builds the stage; ``extra="ignore"`` lets consumers read newer producers.
Both events are emitted by the investigation service and keyed by ``case_id``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.common import Category, Language, Money, Product
from shared.contracts.envelope import Payload

Outcome = Literal["confirmed", "contradicted", "not_found"]


class EvidenceItem(BaseModel):
    """One item of a category's evidence checklist, as found in the institution's records."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    item: str = Field(description="Checklist code, e.g. contact_log, fee_ledger, contract_clause.")
    title_zh: str
    title_en: str
    source: str = Field(description="System and collection the record came from, e.g. collections.contacts.")
    record_refs: list[str] = Field(default_factory=list, description="Ids of the records consulted.")
    recorded_at: AwareDatetime | None = Field(None, description="Time of the latest record consulted.")
    retrieved_at: AwareDatetime | None = Field(None, description="When investigation read it.")
    outcome: Outcome = Field(description="Whether the records confirm, contradict or lack the claim.")
    claim: str | None = Field(None, description="Code of the customer's claim this item tests, if any.")
    detail_zh: str = ""
    detail_en: str = ""


class ComputedFact(BaseModel):
    """A fact computed from the records (days late, fees charged, APR, contacts ...)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: str
    value: str = Field(description="Exact value as text (amounts as decimal strings).")
    unit: str = Field("", description="CNY, days, count, APR ...")
    breach: bool = Field(False, description="The fact breaks the contract, the rate cap or a conduct rule.")
    detail_zh: str = ""
    detail_en: str = ""


class RemedyItem(BaseModel):
    """One part of the suggested remedy (waiver, refund, apology ...)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: str = Field(description="fee_waiver, refund, apology, stop_collection, credit_report_correction ...")
    min: Money | None = None
    max: Money | None = None
    pct_min: int | None = Field(None, ge=0, le=100, description="Waiver share, lower bound (%).")
    pct_max: int | None = Field(None, ge=0, le=100, description="Waiver share, upper bound (%).")
    basis_zh: str = ""
    basis_en: str = ""


class RemedyRange(BaseModel):
    """The remedy investigation suggests, as a range negotiation may offer within."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    min: Money
    max: Money
    currency: str = "CNY"
    items: list[RemedyItem] = Field(default_factory=list)
    text_zh: str = ""
    text_en: str = ""


class DeadlineExtension(BaseModel):
    """A manager's approval of the especially complex tier (60 days from receipt): who, when, why."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tier_days: int = Field(60, description="The tier approved (60).")
    approved_by: str = Field(description="The approver's id (token subject).")
    approved_role: str = Field(description="The approver's role (manager).")
    approved_at: AwareDatetime
    reason: str = Field(description="Why the case is especially complex (told to the customer).")


class InvestigationCompleted(Payload):
    """Investigation finished with a finding. Emitted by investigation."""

    event_type = "investigation.completed"

    case_number: str
    category: Category
    finding: Literal["substantiated", "partly_substantiated", "unsubstantiated"]
    reasons: list[str] = Field(default_factory=list)
    complex_case: bool = False
    # optional additions (v1, investigation issue 4)
    investigation_id: str | None = None
    revision: int = Field(1, ge=1, description="Raised when a linked complaint with new facts re-opened it, "
                          "a manager approved the especially complex tier, or an investigator revised it.")
    complaint_ids: list[str] = Field(default_factory=list)
    customer_id: str | None = None
    language: Language | None = None
    product: Product | None = None
    category_confidence: float | None = Field(None, ge=0, le=1)
    root_cause: str | None = Field(None, description="Root-cause code, e.g. collection_off_hours.")
    root_cause_zh: str = ""
    root_cause_en: str = ""
    claims: list[str] = Field(default_factory=list, description="Codes of the claims read in the complaint.")
    evidence: list[EvidenceItem] = Field(default_factory=list)
    facts: list[ComputedFact] = Field(default_factory=list)
    reasons_zh: list[str] = Field(default_factory=list)
    reasons_en: list[str] = Field(default_factory=list)
    remedy_range: RemedyRange | None = None
    amount_disputed: Money | None = None
    complexity_reason_zh: str = ""
    complexity_reason_en: str = ""
    deadline_at: AwareDatetime | None = Field(None, description="Decision deadline incl. excluded pauses.")
    paused_days: int = Field(0, ge=0, description="Days excluded from the clock (external appraisal).")
    hardship: bool = Field(False, description="The customer states financial hardship (job loss, illness ...).")
    to_request_from_customer: list[str] = Field(
        default_factory=list, description="Only what the institution does not hold itself."
    )
    # optional additions (v1, clock issue 12): how ``deadline_at`` was computed (shared.clock)
    deadline_tier: int | None = Field(
        None, description="Days of the deadline's tier: 15, 30 (complex) or 60 (especially complex, "
        "approved by a manager), counted from receipt, before excluded pauses.",
    )
    deadline_provisional: bool = Field(
        False, description="A day counted lies in a year the holiday package does not cover: recompute "
        "once it does; supervision raises an ops alert.",
    )
    deadline_extension: DeadlineExtension | None = Field(
        None, description="The manager's approval of the especially complex tier (60 days), when given.",
    )
    # optional additions (v1, investigation issue 12): the investigator review queue
    review_pending: bool = Field(
        False, description="The category's confidence is under the review threshold: an investigator "
        "will review the finding; it stands (and the clock runs) until a revision says otherwise.",
    )
    revised_by: str | None = Field(
        None, description="The investigator (token subject) whose review made this revision; None when "
        "the revision came from investigation itself.",
    )
    revised_at: AwareDatetime | None = Field(None, description="When the review was recorded.")
    revision_reason: str | None = Field(
        None, description="Why the investigator changed (or confirmed) the finding; personal numbers masked.",
    )
    revised_fields: list[str] = Field(
        default_factory=list, description="What the review changed: category, finding, remedy_range.",
    )


class InvestigationPaused(Payload):
    """The regulatory clock stops (or, with ``resumed_at``, starts again) for a case.

    Emitted by investigation when it sends a matter to external appraisal (鉴定): the
    time it takes does not count towards the decision deadline, and the customer must be
    told. One ``pause_id`` is emitted once open (``resumed_at`` null) and once closed.
    """

    event_type = "investigation.paused"

    case_number: str
    pause_id: str
    reason_code: str = Field(description="external_appraisal, ...")
    reason_zh: str
    reason_en: str
    paused_at: AwareDatetime
    resumed_at: AwareDatetime | None = None
    expected_resume_at: AwareDatetime | None = None
    days_excluded: int | None = Field(None, ge=0, description="Whole days excluded once resumed.")
    deadline_at: AwareDatetime | None = Field(None, description="The deadline after this pause.")
