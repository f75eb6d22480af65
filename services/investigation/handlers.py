"""Investigation's rules: categorise, gather evidence, verify, find, suggest a remedy, judge complexity.

Plain functions with keyword-only dependencies (the ports in ``ports``); no faust, FastAPI or
Kafka imports here. ``assess`` is the pure core (same inputs, same finding: that is what makes
replays safe); ``on_registered_batch`` and ``sweep_paused`` wrap it with storage and return
what they wrote with the events it owes (``shared.outbox.Written``), which the runtime
publishes before it acknowledges the batch.

Rules with numbers (see docs/investigation.md): 《银行业保险业消费投诉处理管理办法》(2020)
gives 15 days for a decision, 30 for complex cases and 60 for especially complex ones (with a
manager's approval, ``approve_especially_complex``); time spent on external appraisal does not
count, and the customer must be told (``investigation.paused``). Every deadline is
``shared.clock``'s: Beijing days from the day after receipt, ending at 24:00 Beijing, rolled
over rest days; pauses added with ``shared.clock.add_pause`` (docs/clock.md).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from services.investigation import evidence as ev
from services.investigation.claims import CLAIMS, Claims, read_claims
from services.investigation.facts import Facts, Rules, compute
from services.investigation.ports import (
    Categoriser,
    InvestigationRepository,
    RecordsRequest,
    RecordsStore,
)
from services.investigation.records import CoreRecords, product_of
from services.investigation.settings import Settings
from shared.clock import Deadline, add_pause, beijing_day, due
from shared.contracts.common import Category, Channel, Language, Product
from shared.contracts.envelope import Envelope, Payload
from shared.contracts.intake import ComplaintRegistered, CustomerNotified
from shared.contracts.investigation import (
    DeadlineExtension,
    EvidenceItem,
    InvestigationCompleted,
    InvestigationPaused,
    RemedyItem,
    RemedyRange,
)
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.money import to_yuan
from shared.outbox import Written, ledger_document, outbox_document

log = logging.getLogger(__name__)

PRODUCER = "investigation"
Finding = Literal["substantiated", "partly_substantiated", "unsubstantiated"]
Outcome = Literal["duplicate", "merged", "investigated", "reinvestigated"]

def rules_of(settings: Settings) -> Rules:
    """The fact rules from settings."""
    return Rules(rate_cap_apr=settings.rate_cap_apr, hard_cap_apr=settings.hard_cap_apr,
                 contact_hours_start=settings.contact_hours_start, contact_hours_end=settings.contact_hours_end,
                 max_contacts_per_day=settings.max_contacts_per_day, timezone=settings.timezone)


@dataclass
class Assessment:
    """Everything investigation concludes about a case."""

    category: Category
    confidence: float
    product: Product
    claims: Claims
    facts: Facts
    evidence: list[EvidenceItem]
    finding: Finding
    reasons_zh: list[str]
    reasons_en: list[str]
    root_cause: str
    remedy: RemedyRange
    complex_case: bool
    complexity_zh: list[str]
    complexity_en: list[str]
    deadline_at: datetime
    paused_days: int
    pause: dict[str, Any] | None = None
    awaiting_appraisal: bool = False
    requests: list[str] = field(default_factory=list)
    deadline_tier: int = 15
    deadline_provisional: bool = False
    extension: DeadlineExtension | None = None
    #: the category's confidence is under the review threshold: the finding goes out flagged
    #: ``review_pending`` and the case waits in the review queue (``review.py``)
    needs_review: bool = False


ROOT_CAUSES: list[tuple[str, str, str, str]] = [
    ("unauthorised_account", "identity_fraud", "身份冒用/非本人办理", "identity misuse: not opened by the customer"),
    ("collection_abuse", "collection_abuse", "催收人员威胁辱骂", "threats or insults by collectors"),
    ("collection_third_party", "collection_third_party_disclosure", "向第三人透露债务", "debt disclosed to third parties"),
    ("collection_off_hours", "collection_off_hours", "非合理时间催收", "collection at unreasonable hours"),
    ("collection_frequency", "collection_frequency", "催收频率超限", "collection contacts over the daily limit"),
    ("excessive_rate", "rate_above_cap", "综合融资成本超过利率上限", "cost of credit above the rate cap"),
    ("upfront_deduction", "upfront_deduction", "放款时预扣费用（砍头息）", "fees deducted from the principal"),
    ("unauthorised_fee", "fee_not_in_contract", "收取合同外费用", "fees outside the contract"),
    ("late_fees", "late_fee_miscalculated", "违约金/罚息计算超出合同", "late fees computed beyond the contract"),
    ("early_settlement", "early_settlement_overcharge", "提前还款收费超出合同", "early settlement charged beyond the contract"),
    ("misleading_sales", "sales_misrepresentation", "销售披露不实", "misrepresentation at sale"),
    ("credit_report", "credit_report_error", "征信报送错误", "wrong credit-bureau submission"),
    ("service_failure", "service_handling_failure", "客服处理不到位", "complaint handling failure at the service desk"),
    ("hardship_refused", "hardship_not_assessed", "未评估困难客户的协商申请", "hardship request not assessed"),
]
FACT_ROOT = {"charges_beyond_contract": "fee_not_in_contract", "apr": "rate_above_cap",
             "cost_above_rate_cap": "rate_above_cap", "upfront_deduction": "upfront_deduction",
             "contacts_off_hours": "collection_off_hours", "contacts_max_per_day": "collection_frequency",
             "third_party_contacts": "collection_third_party_disclosure", "abusive_contacts": "collection_abuse",
             "service_unresolved": "service_handling_failure", "disclosed_apr": "sales_misrepresentation",
             "credit_reports_wrong": "credit_report_error"}
#: fact → the claim whose verdict already states it.
FACT_CLAIM = {"contacts_off_hours": "collection_off_hours", "contacts_max_per_day": "collection_frequency",
              "third_party_contacts": "collection_third_party", "abusive_contacts": "collection_abuse",
              "upfront_deduction": "upfront_deduction", "disclosed_apr": "misleading_sales",
              "credit_reports_wrong": "credit_report", "service_unresolved": "service_failure"}
OTHER_ROOTS = {"no_fault_found": ("记录未支持投诉主张", "the records do not support the complaint"),
               "insufficient_records": ("缺少可核实的记录", "no records to verify the complaint"),
               "customer_expectation": ("客户预期与产品规则不一致", "the customer's expectation differs from the product rules")}
ROOT_TEXT = {code: (zh, en) for _, code, zh, en in ROOT_CAUSES} | OTHER_ROOTS

OUTCOME_TEXT = {"confirmed": ("记录证实", "the records confirm"), "contradicted": ("记录不支持", "the records contradict"),
                "not_found": ("机构未持有相关记录", "the institution holds no record of")}


def claim_verdicts(claims: Claims, evidence: list[EvidenceItem]) -> dict[str, str]:
    """Each claim's outcome: that of the first evidence item testing it."""
    out: dict[str, str] = {}
    for item in evidence:
        if item.claim and item.claim not in out:
            out[item.claim] = item.outcome
    return out


def decide(verdicts: dict[str, str], facts: Facts) -> Finding:
    """Substantiated when every claim is borne out; partly when some are (or the records show a
    breach the customer did not name); unsubstantiated otherwise."""
    confirmed = [c for c, v in verdicts.items() if v == "confirmed"]
    breaches = [f for f in facts.items() if f.breach]
    if confirmed and len(confirmed) == len(verdicts):
        return "substantiated"
    if confirmed or breaches:
        return "partly_substantiated"
    return "unsubstantiated"


def root_cause(verdicts: dict[str, str], facts: Facts) -> str:
    """The strongest substantiated cause, or why nothing was found."""
    for claim, code, _, _ in ROOT_CAUSES:
        if verdicts.get(claim) == "confirmed":
            return code
    for fact in facts.items():
        if fact.breach and fact.code in FACT_ROOT:
            return FACT_ROOT[fact.code]
    if not verdicts:
        return "customer_expectation"
    if all(v == "not_found" for v in verdicts.values()):
        return "insufficient_records"
    return "no_fault_found"


def suggest_remedy(finding: Finding, verdicts: dict[str, str], facts: Facts, claims: Claims) -> RemedyRange:
    """A remedy range from the facts: refunds of what was charged wrongly, waivers, non-monetary steps."""
    items: list[RemedyItem] = []
    zero = Decimal("0.00")
    if facts.beyond_contract_total:
        items.append(RemedyItem(kind="refund", min=facts.beyond_contract_total, max=facts.beyond_contract_total,
                                basis_zh=f"退还超出合同的收费 {facts.beyond_contract_total} 元",
                                basis_en=f"refund CNY {facts.beyond_contract_total} charged beyond the contract"))
    # the refund above already lowers the cost of credit: only what remains above the cap counts
    cap_high = max(zero, facts.cost_above_cap - facts.beyond_contract_total)
    cap_low = max(zero, facts.cost_above_hard_cap - facts.beyond_contract_total)
    if cap_high:
        items.append(RemedyItem(kind="interest_reduction", min=cap_low, max=cap_high,
                                basis_zh=f"减免超过利率上限的融资成本 {cap_low}–{cap_high} 元（超过上限红线的部分无效，须全额减免）",
                                basis_en=f"reduce the cost above the rate cap: CNY {cap_low}–{cap_high} (the part above the hard cap is void and must go)"))
    late = facts.late_charges - sum((v for k, v in facts.beyond_contract.items() if k in ("late_fee", "penalty_interest")), Decimal("0"))
    if late > 0:
        low, high = (50, 100) if finding != "unsubstantiated" else (0, 50) if claims.hardship else (0, 0)
        if high:
            items.append(RemedyItem(kind="fee_waiver", min=to_yuan(late * low / 100),
                                    max=to_yuan(late * high / 100), pct_min=low, pct_max=high,
                                    basis_zh=f"减免违约金及罚息 {low}–{high}%（已收 {late} 元）",
                                    basis_en=f"waive {low}–{high}% of late fees and penalty interest (CNY {late} charged)"))
    collection = [c for c in verdicts if c.startswith("collection_") and verdicts[c] == "confirmed"]
    if collection:
        items.append(RemedyItem(kind="apology", min=zero, max=zero, basis_zh="书面致歉并更换催收机构，停止违规催收",
                                basis_en="written apology; change the collection agency and stop the conduct"))
    if verdicts.get("credit_report") == "confirmed" or verdicts.get("unauthorised_account") == "confirmed":
        items.append(RemedyItem(kind="credit_report_correction", min=zero, max=zero,
                                basis_zh="申请更正征信记录", basis_en="have the credit-bureau entry corrected"))
    if verdicts.get("unauthorised_account") == "confirmed":
        paid = facts.charged.get("service_fee", Decimal("0"))
        items.append(RemedyItem(kind="debt_cancellation", min=zero, max=paid,
                                basis_zh="注销非本人办理的债务并退还已扣款项", basis_en="cancel the debt the customer did not take and refund what was taken"))
    if claims.hardship and facts.lending:
        items.append(RemedyItem(kind="instalment_plan", min=zero, max=zero,
                                basis_zh="评估个性化分期（最长 5 年）", basis_en="assess a personalised instalment plan (up to 5 years)"))
    low = sum((i.min or zero for i in items), zero)
    high = sum((i.max or zero for i in items), zero)
    text_zh = "；".join(i.basis_zh for i in items) or "无需补救；向客户解释核实结果"
    text_en = "; ".join(i.basis_en for i in items) or "no remedy due; explain the findings to the customer"
    return RemedyRange(min=low, max=high, items=items, text_zh=text_zh, text_en=text_en)


def complexity(reg: ComplaintRegistered, claims: Claims, facts: Facts, confidence: float,
               settings: Settings, appraisal: bool) -> tuple[list[str], list[str]]:
    """Why a case is complex (empty lists: it is not)."""
    zh: list[str] = []
    en: list[str] = []
    amount = reg.amount_disputed or Decimal("0")
    principal = Decimal("0")
    if facts.lending and facts.has_account:
        principal = facts.overdue_amount  # what is in dispute on the account, at least
    if max(amount, principal) >= settings.complex_amount:
        zh.append(f"争议金额达到 {settings.complex_amount} 元")
        en.append(f"amount in dispute of CNY {settings.complex_amount} or more")
    if appraisal:
        zh.append("需要外部鉴定")
        en.append("needs an external appraisal")
    if len(claims.codes) >= 4:
        zh.append(f"涉及 {len(claims.codes)} 项主张")
        en.append(f"{len(claims.codes)} separate claims")
    if reg.channel == Channel.REGULATOR_TRANSFER:
        zh.append("监管转办")
        en.append("transferred by the regulator")
    if reg.is_repeat or reg.linked_case_ids:
        zh.append("重复或关联投诉")
        en.append("repeat or linked complaint")
    if facts.abusive_contacts or facts.third_party_disclosures:
        zh.append("需复听催收录音并问责")
        en.append("collection recordings must be reviewed and staff held to account")
    if confidence < settings.low_confidence:
        zh.append("分类置信度低，需人工判断")
        en.append("low categorisation confidence; a person must decide")
    return zh, en


def case_deadline(received_at: datetime, tier_days: int, pause: dict[str, Any] | None) -> Deadline:
    """The decision deadline of a case (``shared.clock``): ``tier_days`` from receipt (the
    complaint that started the clock: new facts restart it), moved past a finished appraisal
    pause. A pause the calendar refuses (begun before receipt, or after the deadline had
    passed: paused wrongly) excludes nothing; supervision then sees the breach."""
    deadline = due(received_at, tier_days)
    if pause is not None and pause.get("resumed_at") is not None:
        try:
            deadline = add_pause(deadline, pause["paused_at"], pause["resumed_at"])
        except ValueError as exc:
            log.warning("appraisal pause %s not excluded from the clock: %s", pause.get("pause_id"), exc)
    return deadline


def tier_of(complex_case: bool, settings: Settings, extension: DeadlineExtension | None) -> int:
    """The deadline's tier: 60 once a manager approved it, else complex or standard."""
    if extension is not None:
        return extension.tier_days
    return settings.complex_days if complex_case else settings.standard_days


def assess(reg: ComplaintRegistered, *, text: str, category: str, confidence: float,
           records: CoreRecords, settings: Settings, now: datetime,
           extension: DeadlineExtension | None = None) -> Assessment:
    """Reach a finding from the complaint and the records (pure: same inputs, same result).

    ``extension``: a manager's approval of the especially complex tier, kept with the case."""
    rules = rules_of(settings)
    claims = read_claims(text)
    cat = Category(category) if category in Category._value2member_map_ else Category.OTHER
    product = product_of(text, reg.product)
    as_of = reg.received_at
    facts = compute(records, rules=rules, as_of=as_of)
    evidence = ev.gather(cat.value, claims, records, facts, rules, now=now)
    verdicts = claim_verdicts(claims, evidence)
    finding = decide(verdicts, facts)
    cause = root_cause(verdicts, facts)
    zh, en = [], []
    for claim, outcome in verdicts.items():
        ozh, oen = OUTCOME_TEXT[outcome]
        czh, cen = CLAIMS[claim]
        detail = next(e for e in evidence if e.claim == claim)
        zh.append(f"关于“{czh}”：{ozh}。{detail.detail_zh}")
        en.append(f"On '{cen}': {oen} it. {detail.detail_en}")
    for fact in facts.items():
        if fact.breach and FACT_CLAIM.get(fact.code) not in verdicts:  # else said with its claim above
            zh.append(f"核查发现：{fact.detail_zh}")
            en.append(f"Found in the records: {fact.detail_en}")
    if not verdicts:
        zh.append("投诉中没有可与记录核对的具体主张；已按类别核查清单调取记录。")
        en.append("The complaint makes no claim the records can test; the category checklist was checked.")
    rzh, ren = ROOT_TEXT[cause]
    zh.append(f"结论：{ {'substantiated': '投诉属实', 'partly_substantiated': '投诉部分属实', 'unsubstantiated': '投诉不属实'}[finding] }；根因：{rzh}。")
    en.append(f"Finding: {finding.replace('_', ' ')}; root cause: {ren}.")
    remedy = suggest_remedy(finding, verdicts, facts, claims)

    appraisal = records.appraisals[0] if records.appraisals else None
    czh, cen = complexity(reg, claims, facts, confidence, settings, appraisal is not None)
    tier = tier_of(bool(czh), settings, extension)
    pause = None
    awaiting = False
    if appraisal is not None:
        awaiting = appraisal["completed_at"] > now
        pause = {"pause_id": appraisal["_id"], "paused_at": appraisal["requested_at"],
                 "expected_resume_at": appraisal["completed_at"],
                 "resumed_at": None if awaiting else appraisal["completed_at"], "days": 0}
    deadline = case_deadline(reg.received_at, tier, pause)
    if pause is not None:
        pause["days"] = deadline.paused_days
    return Assessment(
        category=cat, confidence=round(float(confidence), 4), product=product, claims=claims, facts=facts,
        evidence=evidence, finding=finding, reasons_zh=zh, reasons_en=en, root_cause=cause, remedy=remedy,
        complex_case=bool(czh), complexity_zh=czh, complexity_en=cen, deadline_at=deadline.due_at,
        paused_days=deadline.paused_days, pause=pause, awaiting_appraisal=awaiting,
        requests=ev.customer_requests(claims), deadline_tier=tier,
        deadline_provisional=deadline.provisional or reg.deadline_provisional, extension=extension,
        needs_review=float(confidence) < settings.review_threshold,
    )


def completed_payload(reg: ComplaintRegistered, a: Assessment, *, case_id: str, revision: int,
                      complaint_ids: list[str]) -> InvestigationCompleted:
    """The ``investigation.completed`` payload of an assessment (no personal data in it)."""
    rzh, ren = ROOT_TEXT[a.root_cause]
    return InvestigationCompleted(
        case_number=reg.case_number, category=a.category, finding=a.finding,
        reasons=[f"{z} / {e}" for z, e in zip(a.reasons_zh, a.reasons_en, strict=True)],
        complex_case=a.complex_case, investigation_id=f"INV-{case_id}", revision=revision,
        complaint_ids=complaint_ids, customer_id=reg.customer_id, language=reg.language, product=a.product,
        category_confidence=a.confidence, root_cause=a.root_cause, root_cause_zh=rzh, root_cause_en=ren,
        claims=list(a.claims.codes), evidence=a.evidence, facts=a.facts.items(), reasons_zh=a.reasons_zh,
        reasons_en=a.reasons_en, remedy_range=a.remedy, amount_disputed=reg.amount_disputed,
        complexity_reason_zh="；".join(a.complexity_zh), complexity_reason_en="; ".join(a.complexity_en),
        deadline_at=a.deadline_at, paused_days=a.paused_days, to_request_from_customer=a.requests,
        hardship=a.claims.hardship, deadline_tier=a.deadline_tier, deadline_provisional=a.deadline_provisional,
        deadline_extension=a.extension, review_pending=a.needs_review,
    )


def _wrap(payload: Payload, cause: Envelope[Any], case_id: str, now: datetime) -> Envelope[Any]:
    return Envelope.wrap(payload, case_id=case_id, producer=PRODUCER, cause=cause, occurred_at=now)


def pause_events(reg: ComplaintRegistered, a: Assessment, cause: Envelope[Any], *, case_id: str,
                 now: datetime, announce: bool) -> list[Envelope[Any]]:
    """``investigation.paused`` (and the customer's notice) for an appraisal pause."""
    if a.pause is None:
        return []
    p = a.pause
    events: list[Envelope[Any]] = [_wrap(InvestigationPaused(
        case_number=reg.case_number, pause_id=p["pause_id"], reason_code="external_appraisal",
        reason_zh="已委托外部机构进行身份与签名鉴定，鉴定期间不计入处理时限。",
        reason_en="An external identity and signature appraisal was commissioned; its duration does not count "
                  "towards the decision deadline.",
        paused_at=p["paused_at"], resumed_at=p["resumed_at"], expected_resume_at=p["expected_resume_at"],
        days_excluded=p["days"] if p["resumed_at"] else None, deadline_at=None if p["resumed_at"] is None else a.deadline_at,
    ), cause, case_id, now)]
    if announce:
        zh = reg.language == Language.ZH_CN
        events.append(_wrap(CustomerNotified(
            kind="extension", language=reg.language, channel=reg.channel, customer_id=reg.customer_id,
            contact_masked=reg.customer_phone_masked, case_number=reg.case_number, deadline_at=p["expected_resume_at"],
            subject="投诉处理时限说明" if zh else "About the time needed for your complaint",
            body=("您的投诉需要外部机构鉴定，鉴定所需时间不计入处理时限，我们会在鉴定完成后继续处理并告知结果。"
                  if zh else "Your complaint needs an external appraisal. The time it takes does not count towards "
                  "our deadline; we will continue as soon as it is done and tell you the outcome."),
        ), cause, case_id, now))
    return events


def case_document(env: Envelope[ComplaintRegistered], a: Assessment, *, texts: list[str], complaint_ids: list[str],
                  revision: int, now: datetime) -> dict[str, Any]:
    """Investigation's own record of a case (Mongo-ready: no Decimal)."""
    reg = env.payload
    return {
        "_id": env.case_id, "case_number": reg.case_number, "customer_id": reg.customer_id,
        "status": "paused" if a.awaiting_appraisal else "completed", "revision": revision,
        "complaint_ids": complaint_ids, "texts": texts, "source_event": env.model_dump_json(),
        "category": a.category.value, "confidence": a.confidence, "product": a.product.value,
        "claims": list(a.claims.codes), "finding": a.finding, "root_cause": a.root_cause,
        "complex_case": a.complex_case, "deadline_at": a.deadline_at, "paused_days": a.paused_days,
        "deadline_tier": a.deadline_tier, "deadline_provisional": a.deadline_provisional,
        "deadline_extension": a.extension.model_dump(mode="json") if a.extension else None,
        "pause": ({"paused_at": a.pause["paused_at"], "resumed_at": a.pause["resumed_at"]}
                  if a.pause is not None else None),
        "resume_at": a.pause["expected_resume_at"] if a.awaiting_appraisal and a.pause else None,
        "evidence": [e.model_dump(mode="json") for e in a.evidence],
        "facts": [f.model_dump(mode="json") for f in a.facts.items()],
        "remedy_range": a.remedy.model_dump(mode="json"),
        "reasons_zh": a.reasons_zh, "reasons_en": a.reasons_en,
        "fingerprint": fingerprint(a), "updated_at": now,
        # the review queue (review.py): an indexed status, and what a revised event repeats
        "review_status": "pending" if a.needs_review else None,
        "complexity_zh": a.complexity_zh, "complexity_en": a.complexity_en,
        "requests": a.requests, "hardship": a.claims.hardship,
    }


def fingerprint(a: Assessment) -> str:
    """A digest of the finding and what it rests on (excluding read times), for replay checks."""
    parts = [a.category.value, a.finding, a.root_cause, str(a.complex_case), a.remedy.model_dump_json(),
             *[f"{e.item}:{e.outcome}:{','.join(e.record_refs)}" for e in a.evidence],
             *[f"{f.code}={f.value}" for f in a.facts.items()]]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]




# --------------------------------------------------------------------------- with storage


def records_request(env: Envelope[ComplaintRegistered], text: str) -> RecordsRequest:
    """What the records store is asked for one investigation of a case."""
    reg = env.payload
    return RecordsRequest(customer_id=reg.customer_id, case_id=env.case_id, text=text,
                          product=product_of(text, reg.product), received_at=reg.received_at)


@dataclass
class _Step:
    """One investigation of a case within a batch (a new case, or new facts on a linked complaint)."""

    env: Envelope[ComplaintRegistered]
    texts: list[str]
    complaint_ids: list[str]
    revision: int
    assessment: Assessment | None = None
    events: list[Envelope[Any]] = field(default_factory=list)
    extension: DeadlineExtension | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


@dataclass
class _Case:
    """A case as stored before the batch, and as the batch's events (in order) change it."""

    case_id: str
    stored: dict[str, Any] | None
    texts: list[str] = field(default_factory=list)
    complaint_ids: list[str] = field(default_factory=list)
    revision: int = 0
    merged: list[str] = field(default_factory=list)
    steps: list[_Step] = field(default_factory=list)

    @classmethod
    def of(cls, case_id: str, stored: dict[str, Any] | None) -> _Case:
        if stored is None:
            return cls(case_id, None)
        return cls(case_id, stored, list(stored["texts"]), list(stored["complaint_ids"]), stored["revision"])

    @property
    def exists(self) -> bool:
        return self.stored is not None or bool(self.steps)

    def take(self, env: Envelope[ComplaintRegistered]) -> Outcome:
        """Apply one registered complaint to the case (today's rules, event by event)."""
        reg = env.payload
        if self.exists and reg.complaint_id in self.complaint_ids:
            return "duplicate"
        if self.exists and not (reg.new_facts or reg.clock_restarted):
            self.complaint_ids.append(reg.complaint_id)
            self.merged.append(reg.complaint_id)
            return "merged"
        outcome: Outcome = "reinvestigated" if self.exists else "investigated"
        self.texts.append(reg.text)
        self.complaint_ids.append(reg.complaint_id)
        self.revision += 1
        self.steps.append(_Step(env, list(self.texts), list(self.complaint_ids), self.revision,
                                extension=stored_extension(self.stored)))
        return outcome

    def pending(self) -> dict[str, Any]:
        """The outbox the stored document still holds (published again: a crash may have left it)."""
        return dict((self.stored or {}).get("outbox") or {})

    def unpublished_batch(self, repo: InvestigationRepository) -> Written | None:
        """The batch that inserted the stored document, to publish if it never was (``shared.outbox``
        checks its ledger entry)."""
        token = (self.stored or {}).get("ledger_batch")
        return Written(repo.investigations, None, None, ledger=token) if token else None


@dataclass
class BatchResult:
    """What a batch did: the documents written with their events, and each event's outcome."""

    written: list[Written]
    outcomes: list[Outcome]


async def investigate_batch(events: Sequence[Envelope[ComplaintRegistered]], *, repo: InvestigationRepository,
                            records: RecordsStore, categorise: Categoriser, settings: Settings,
                            now: datetime, stored: dict[str, dict[str, Any]] | None = None) -> BatchResult:
    """Investigate a batch of registered complaints; idempotent per case and complaint.

    The events are applied in order per case in memory (a redelivered complaint changes
    nothing, a linked one without new facts is merged, one with new facts or a restarted clock
    re-investigates the case with all its texts); one ``categorise`` call for every text to
    investigate; one records load; one bulk insert of the new cases with their outboxes; a
    conditional update per re-investigated stored case (a lost race raises the shared,
    retriable ``Conflict`` after the rest is written).

    Only cases a complaint says exist (``role == "linked"``) are read first, by ``_id``. The
    others are taken as new and inserted: a duplicate ``_id`` means the case is there after all
    (Kafka redelivered, or another writer got there first), and only those cases are read and
    their events applied again to what is stored. So a batch of new complaints reads nothing
    (FerretDB v1 on PostgreSQL serves ``{_id: x}`` through ``@>``: a scan, or a GIN lookup of
    a few ms where the stack adds that index), and its cost stays flat as data grows; a
    redelivery costs one more classification. ``stored``: cases already read.
    """
    if stored is None:
        linked = [e.case_id for e in events if e.payload.role == "linked"]
        stored = await repo.get_many(linked) if linked else {}
    cases: dict[str, _Case] = {}
    outcomes: list[Outcome] = []
    for env in events:
        case = cases.setdefault(env.case_id, _Case.of(env.case_id, stored.get(env.case_id)))
        outcomes.append(case.take(env))
        log.debug("complaint %s: %s", env.payload.complaint_id, outcomes[-1])

    steps = [step for case in cases.values() for step in case.steps]
    if steps:
        texts = [step.text for step in steps]
        categories = categorise(texts)
        if len(categories) != len(texts):
            raise ValueError(f"the categoriser returned {len(categories)} results for {len(texts)} texts")
        found = await records.load_many([records_request(step.env, step.text) for step in steps])
        for step, (category, confidence) in zip(steps, categories, strict=True):
            reg = step.env.payload
            a = assess(reg, text=step.text, category=category, confidence=confidence,
                       records=found.get(reg.customer_id) or CoreRecords(), settings=settings, now=now,
                       extension=step.extension)
            step.assessment = a
            step.events = pause_events(reg, a, step.env, case_id=step.env.case_id, now=now, announce=True)
            if not a.awaiting_appraisal:
                step.events.append(_wrap(completed_payload(reg, a, case_id=step.env.case_id, revision=step.revision,
                                                           complaint_ids=step.complaint_ids), step.env, step.env.case_id, now))

    written: list[Written] = []
    new_docs: list[dict[str, Any]] = []
    replaced: list[tuple[_Case, dict[str, Any], list[Envelope[Any]]]] = []
    for case in cases.values():
        if case.steps:
            last = case.steps[-1]
            assert last.assessment is not None
            doc = case_document(last.env, last.assessment, texts=last.texts, complaint_ids=case.complaint_ids,
                                revision=last.revision, now=now)
            case_events = [e for step in case.steps for e in step.events]
            if case.stored is None:
                new_docs.append({**doc, **ledger_document(case_events)})
            else:
                replaced.append((case, doc, case_events))
            continue
        if case.stored is not None and case.merged:
            await repo.add_complaints(case.case_id, case.merged)
        if case.pending():
            written.append(Written(repo.investigations, case.case_id, case.pending()))
        if (batch := case.unpublished_batch(repo)) is not None:
            written.append(batch)

    inserted = await repo.insert_many(new_docs) if new_docs else set()
    written += [Written(repo.investigations, d["_id"], d["outbox_ledger"], ledger=d["ledger_batch"])
                if "ledger_batch" in d else Written(repo.investigations, d["_id"], d["outbox"])
                for d in new_docs if d["_id"] in inserted]
    there = [d["_id"] for d in new_docs if d["_id"] not in inserted]
    if there:  # taken as new but already stored: apply their events again, to what is stored
        found = await repo.get_many(there)
        if len(found) != len(there):
            raise Conflict(f"case {next(i for i in there if i not in found)} was neither inserted nor found")
        again = [(i, e) for i, e in enumerate(events) if e.case_id in found]
        redo = await investigate_batch([e for _, e in again], repo=repo, records=records, categorise=categorise,
                                       settings=settings, now=now, stored=found)
        for (i, _), outcome in zip(again, redo.outcomes, strict=True):
            outcomes[i] = outcome
        written += redo.written
    lost: list[str] = []
    for case, doc, case_events in replaced:
        assert case.stored is not None
        if await repo.replace(doc, {"revision": case.stored["revision"]}, case_events):
            written.append(Written(repo.investigations, case.case_id,
                                   {**case.pending(), **outbox_document(case_events)["outbox"]}))
        else:
            lost.append(case.case_id)
    counts = Counter(outcomes)
    log.info("registered complaints: %d (%s)", len(outcomes), ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if lost:
        raise Conflict(f"{len(lost)} case(s) changed while they were re-investigated (first: {lost[0]})")
    return BatchResult(written, outcomes)


async def on_registered_batch(events: list[Envelope[ComplaintRegistered]], *, repo: InvestigationRepository,
                              records: RecordsStore, categorise: Categoriser, settings: Settings,
                              now: datetime) -> list[Written]:
    """Investigate a batch of registered complaints; return the documents written with events to publish."""
    return (await investigate_batch(events, repo=repo, records=records, categorise=categorise,
                                    settings=settings, now=now)).written


async def on_registered(env: Envelope[ComplaintRegistered], *, repo: InvestigationRepository, records: RecordsStore,
                        categorise: Categoriser, settings: Settings, now: datetime) -> Outcome:
    """Investigate one registered complaint (a batch of one); return what happened to it."""
    result = await investigate_batch([env], repo=repo, records=records, categorise=categorise,
                                     settings=settings, now=now)
    return result.outcomes[0]


async def resume_many(docs: Sequence[dict[str, Any]], *, repo: InvestigationRepository, records: RecordsStore,
                      categorise: Categoriser, settings: Settings, now: datetime) -> list[Written]:
    """Finish the paused cases whose external appraisal is done; return what was written.

    A case still waiting, or changed since it was read (revision or status), is left alone.
    """
    if not docs:
        return []
    envs = [Envelope[ComplaintRegistered].model_validate_json(d["source_event"]) for d in docs]
    texts = ["\n".join(d["texts"]) for d in docs]
    found = await records.load_many([records_request(env, text) for env, text in zip(envs, texts, strict=True)])
    # only the cases whose appraisal is back are assessed again (``assess`` keeps the others
    # waiting on the same test): the classifier is the sweep's dearest step, and most paused
    # cases are still waiting at each sweep
    back = [i for i, env in enumerate(envs) if appraisal_back(found.get(env.payload.customer_id), now)]
    docs, envs, texts = [docs[i] for i in back], [envs[i] for i in back], [texts[i] for i in back]
    categories = categorise(texts) if texts else []
    written: list[Written] = []
    for doc, env, text, (category, confidence) in zip(docs, envs, texts, categories, strict=True):
        reg = env.payload
        a = assess(reg, text=text, category=category, confidence=confidence,
                   records=found.get(reg.customer_id) or CoreRecords(), settings=settings, now=now,
                   extension=stored_extension(doc))
        if a.awaiting_appraisal:
            continue
        events = pause_events(reg, a, env, case_id=env.case_id, now=now, announce=False)
        events.append(_wrap(completed_payload(reg, a, case_id=env.case_id, revision=doc["revision"],
                                              complaint_ids=doc["complaint_ids"]), env, env.case_id, now))
        new = case_document(env, a, texts=doc["texts"], complaint_ids=doc["complaint_ids"], revision=doc["revision"],
                            now=now)
        if await repo.replace(new, {"revision": doc["revision"], "status": "paused"}, events):
            written.append(Written(repo.investigations, env.case_id,
                                   {**(doc.get("outbox") or {}), **outbox_document(events)["outbox"]}))
    return written


def appraisal_back(records: CoreRecords | None, now: datetime) -> bool:
    """Whether a paused case's external appraisal is done by ``now`` (or there is none):
    ``assess``'s test of ``awaiting_appraisal``, without the rest of the assessment."""
    return records is None or not records.appraisals or records.appraisals[0]["completed_at"] <= now


async def sweep_paused(*, repo: InvestigationRepository, records: RecordsStore, categorise: Categoriser,
                       settings: Settings, now: datetime, limit: int = 200) -> list[Written]:
    """Finish paused cases whose appraisal is done (the periodic sweep; it queries cases by
    status, which is not a per-message path); return what was written."""
    return await resume_many(await repo.paused(limit), repo=repo, records=records, categorise=categorise,
                             settings=settings, now=now)


async def resume_paused(doc: dict[str, Any], *, repo: InvestigationRepository, records: RecordsStore,
                        categorise: Categoriser, settings: Settings, now: datetime) -> bool:
    """Finish one paused case if its appraisal is done; False if not yet (or it changed)."""
    return bool(await resume_many([doc], repo=repo, records=records, categorise=categorise,
                                  settings=settings, now=now))


# --------------------------------------------------------------------------- the especially complex tier


#: The role whose approval the especially complex tier (60 days) needs.
APPROVER_ROLE = "manager"


def stored_extension(doc: dict[str, Any] | None) -> DeadlineExtension | None:
    """The manager's approval kept with a stored case, if any (it survives re-investigation)."""
    raw = (doc or {}).get("deadline_extension")
    return DeadlineExtension.model_validate(raw) if raw else None


def especially_complex_extension(doc: dict[str, Any], *, approved_by: str, role: str, reason: str,
                                 now: datetime) -> DeadlineExtension:
    """Check a request for the especially complex tier against a stored case; return the approval.

    《银行业保险业消费投诉处理管理办法》: an especially complex case may take a further 30 days (60
    from receipt) with senior approval, and the customer is told. Only a ``manager`` approves;
    the reason is required (it is recorded and told to the customer); the case must already be
    complex (tier 30), not already extended, and its deadline not yet past: an extension
    decided after the period ended cannot undo the breach.
    """
    if role != APPROVER_ROLE:
        raise Forbidden(f"only a {APPROVER_ROLE} may approve the especially complex tier (60 days)")
    reason = reason.strip()
    if not reason or len(reason) > 1000:
        raise Unprocessable("reason: say why the case is especially complex (1 to 1000 characters)")
    if not approved_by.strip():
        raise Unprocessable("approved_by: the approver must be named")
    if doc.get("deadline_extension"):
        raise Conflict(f"case {doc['_id']} already has the especially complex tier")
    if not doc.get("complex_case"):
        raise Conflict(f"case {doc['_id']} is not complex; only a complex case (30 days) can be extended to 60")
    deadline = doc.get("deadline_at")
    if deadline is not None and _aware(deadline) < now:
        raise Conflict(f"case {doc['_id']} is past its deadline; an extension cannot be approved after it")
    return DeadlineExtension(tier_days=60, approved_by=approved_by.strip(), approved_role=role,
                             approved_at=now, reason=reason)


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def extension_notice(reg: ComplaintRegistered, a: Assessment, cause: Envelope[Any], *, case_id: str,
                     now: datetime) -> Envelope[Any]:
    """The customer's notice of the especially complex tier: why, and the new Beijing date."""
    assert a.extension is not None
    day = beijing_day(a.deadline_at)
    zh = reg.language == Language.ZH_CN
    if zh:
        subject = "投诉处理时限延长通知"
        body = (f"您的投诉（案件 {reg.case_number}）情况特别复杂，经管理人员批准，处理时限延长至"
                f"{day.year}年{day.month}月{day.day}日（北京时间）当日24时。原因：{a.extension.reason}")
    else:
        subject = "Your complaint needs more time"
        body = (f"Your complaint (case {reg.case_number}) is especially complex. With a manager's approval "
                f"we will give you our decision by the end of {day.day} {day:%B %Y} (24:00 Beijing time). "
                f"Why: {a.extension.reason}")
    return _wrap(CustomerNotified(
        kind="extension", language=reg.language, channel=reg.channel, customer_id=reg.customer_id,
        contact_masked=reg.customer_phone_masked, case_number=reg.case_number,
        deadline_at=None if a.awaiting_appraisal else a.deadline_at, subject=subject, body=body,
    ), cause, case_id, now)


async def approve_especially_complex(case_id: str, *, approved_by: str, role: str, reason: str,
                                     repo: InvestigationRepository, records: RecordsStore,
                                     categorise: Categoriser, settings: Settings, now: datetime) -> Written:
    """Record a manager's approval of the especially complex tier (60 days from receipt) and owe
    what it changes: a revised ``investigation.completed`` (revision + 1) with the new deadline,
    ``deadline_tier`` 60 and the approval (who, when, why), and the customer's notice.

    The case is assessed again with the approval (the same records give the same finding), so
    the deadline keeps its excluded pauses; a case still paused for appraisal gets the notice
    now and the tier with its completion. The approval stays with the case: a re-investigation
    on new facts keeps the tier. A request the rule refuses raises ``Forbidden``,
    ``Unprocessable`` or ``Conflict``; a case changed meanwhile raises ``Conflict`` (retry).
    """
    doc = (await repo.get_many([case_id])).get(case_id)
    if doc is None:
        raise NotFound(f"case {case_id} has not been investigated")
    extension = especially_complex_extension(doc, approved_by=approved_by, role=role, reason=reason, now=now)
    env = Envelope[ComplaintRegistered].model_validate_json(doc["source_event"])
    reg = env.payload
    text = "\n".join(doc["texts"])
    found = await records.load_many([records_request(env, text)])
    [(category, confidence)] = categorise([text])
    a = assess(reg, text=text, category=category, confidence=confidence,
               records=found.get(reg.customer_id) or CoreRecords(), settings=settings, now=now,
               extension=extension)
    revision = doc["revision"] + 1
    events = [extension_notice(reg, a, env, case_id=case_id, now=now)]
    if not a.awaiting_appraisal:
        events.insert(0, _wrap(completed_payload(reg, a, case_id=case_id, revision=revision,
                                                 complaint_ids=doc["complaint_ids"]), env, case_id, now))
    new = case_document(env, a, texts=doc["texts"], complaint_ids=doc["complaint_ids"], revision=revision, now=now)
    if not await repo.replace(new, {"revision": doc["revision"], "status": doc["status"]}, events):
        raise Conflict(f"case {case_id} changed while the extension was recorded; try again")
    log.info("case %s: especially complex tier approved by %s (%s)", case_id, extension.approved_by, role)
    return Written(repo.investigations, case_id, {**(doc.get("outbox") or {}), **outbox_document(events)["outbox"]})
