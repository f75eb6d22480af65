"""Evidence checklists per category, and each item's verification outcome.

Each category has a checklist of what to pull from the institution's own systems (for
``pricing_fees``: the fee ledger, the fee schedule, the contract clause, the rate cap; for
``collection_conduct``: the contact log, contacts with third parties, call times, recording
QA ...). The claims read in the complaint add the items that test them, whatever the
category. Every item is read from records the institution already holds, so nothing on the
list is ever asked of the customer; ``customer_requests`` names the few things only the
customer has.

An item's outcome is relative to the complaint: ``confirmed`` when the records bear the
customer out (or show a breach), ``contradicted`` when records exist and show otherwise,
``not_found`` when the institution holds no record of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.investigation.claims import Claims
from services.investigation.facts import Facts, Rules
from services.investigation.records import CoreRecords
from shared.contracts.investigation import EvidenceItem, Outcome
from shared.money import fen_to_yuan


@dataclass(frozen=True)
class ItemSpec:
    """One kind of evidence: its names and where it is kept."""

    title_zh: str
    title_en: str
    source: str


ITEMS: dict[str, ItemSpec] = {
    "account": ItemSpec("账户信息", "account record", "core_banking.accounts"),
    "repayment_ledger": ItemSpec("还款计划与还款流水", "repayment schedule and payments", "core_banking.repayment_schedules+payments"),
    "fee_ledger": ItemSpec("费用与罚息流水", "fee and penalty-interest ledger", "core_banking.charges"),
    "fee_schedule": ItemSpec("产品收费标准", "product fee schedule", "product_catalogue.products"),
    "contract_clause": ItemSpec("合同条款", "contract clauses", "contracts.contracts"),
    "rate_cap": ItemSpec("综合年化利率与利率上限", "all-in APR against the rate cap", "core_banking.schedules+charges / product_catalogue.rate_caps"),
    "upfront_deduction": ItemSpec("放款与实际到账", "disbursement against amount received", "core_banking.accounts"),
    "e_signature": ItemSpec("电子签约与身份核验记录", "e-signature and identity check", "contracts.e_signature"),
    "external_appraisal": ItemSpec("外部鉴定结果", "external appraisal result", "appraisals"),
    "contact_log": ItemSpec("催收联系记录", "collection contact log", "collections.contacts"),
    "call_times": ItemSpec("催收时间", "collection call times", "collections.contacts"),
    "third_party_contacts": ItemSpec("第三人联系记录", "contacts with third parties", "collections.contacts"),
    "recording_qa": ItemSpec("催收录音质检", "collection recording QA", "collections.recordings_qa"),
    "service_log": ItemSpec("客服工单与通话记录", "service tickets and call log", "crm.service_interactions"),
    "hardship_requests": ItemSpec("困难协商申请记录", "hardship requests", "crm.service_interactions"),
    "sales_record": ItemSpec("销售过程记录与关键信息说明书", "sales record and key-facts statement", "sales.records"),
    "early_settlement_quote": ItemSpec("提前还款报价", "early-settlement quote", "core_banking.charges"),
    "credit_reporting": ItemSpec("征信报送记录", "credit-bureau submissions", "core_banking.credit_reporting"),
}

CHECKLISTS: dict[str, tuple[str, ...]] = {
    "collection_conduct": ("contact_log", "call_times", "third_party_contacts", "recording_qa", "repayment_ledger"),
    "pricing_fees": ("fee_ledger", "fee_schedule", "contract_clause", "rate_cap", "repayment_ledger"),
    "contract_terms": ("contract_clause", "fee_schedule", "e_signature", "repayment_ledger"),
    "customer_service": ("service_log", "account", "repayment_ledger"),
    "marketing": ("sales_record", "contract_clause", "rate_cap"),
    "other": ("account", "repayment_ledger", "fee_ledger"),
}

#: claim → the items that test it (the first one carries the claim's verdict).
CLAIM_ITEMS: dict[str, tuple[str, ...]] = {
    "collection_frequency": ("contact_log",),
    "collection_off_hours": ("call_times",),
    "collection_third_party": ("third_party_contacts",),
    "collection_abuse": ("recording_qa",),
    "excessive_rate": ("rate_cap", "contract_clause"),
    "upfront_deduction": ("upfront_deduction",),
    "unauthorised_fee": ("fee_ledger", "contract_clause"),
    "late_fees": ("fee_ledger",),
    "early_settlement": ("early_settlement_quote",),
    "unauthorised_account": ("external_appraisal", "e_signature"),
    "misleading_sales": ("sales_record",),
    "service_failure": ("service_log",),
    "credit_report": ("credit_reporting",),
    "hardship_refused": ("hardship_requests",),
}

Verdict = tuple[Outcome, str, str, list[str], datetime | None]


def checklist(category: str, claims: Claims) -> list[tuple[str, str | None]]:
    """The (item, claim) pairs to verify for a case: claim items first, then the category's."""
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for claim in claims.codes:
        for item in CLAIM_ITEMS.get(claim, ()):
            if item not in seen:
                seen.add(item)
                out.append((item, claim))
    for item in CHECKLISTS.get(category, CHECKLISTS["other"]):
        if item not in seen:
            seen.add(item)
            out.append((item, None))
    return out


def _latest(docs: list[dict[str, Any]], *keys: str) -> datetime | None:
    times = [d[k] for d in docs for k in keys if isinstance(d.get(k), datetime)]
    return max(times) if times else None


def verify(item: str, claim: str | None, records: CoreRecords, facts: Facts, claims: Claims,
           rules: Rules, *, now: datetime) -> EvidenceItem:
    """Read one checklist item from the records and say what it shows."""
    outcome, zh, en, refs, recorded = _VERIFIERS[item](records, facts, claims, rules)
    spec = ITEMS[item]
    return EvidenceItem(item=item, title_zh=spec.title_zh, title_en=spec.title_en, source=spec.source,
                        record_refs=refs[:20], recorded_at=recorded, retrieved_at=now, outcome=outcome,
                        claim=claim, detail_zh=zh, detail_en=en)


def _nf(zh: str, en: str) -> Verdict:
    return "not_found", zh, en, [], None


def _account(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if not r.accounts:
        return _nf("未找到该客户的账户。", "No account of this customer was found.")
    a = r.accounts[0]
    bad = a["status"] == "overdue"
    return ("confirmed" if bad else "contradicted", f"账户状态：{'逾期' if bad else '正常'}。",
            f"Account status: {a['status']}.", [a["_id"]], a.get("opened_at"))


def _ledger(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if not r.repayment_schedules:
        return _nf("该产品无还款计划。", "The product has no repayment schedule.")
    refs = [r.repayment_schedules[0]["_id"]] + [p["_id"] for p in r.payments]
    late = f.days_late_current > 0
    return ("confirmed" if late else "contradicted",
            f"已还 {len(r.payments)} 期；当前逾期 {f.days_late_current} 天。",
            f"{len(r.payments)} instalments paid; {f.days_late_current} days past due now.",
            refs, _latest(r.payments, "paid_at"))


def _fees(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    fees = [x for x in r.charges if not x.get("quote_only")]
    if not fees:
        return _nf("费用流水中没有相关收费记录。", "The ledger shows no such charges.")
    refs = f.beyond_contract_refs or [x["_id"] for x in fees]
    if f.beyond_contract_total > 0:
        return ("confirmed", f"流水显示超出合同的收费 {f.beyond_contract_total} 元。",
                f"The ledger shows CNY {f.beyond_contract_total} charged beyond the contract.", refs,
                _latest(fees, "charged_at"))
    total = sum(f.charged.values())
    return ("contradicted", f"流水中的收费合计 {total} 元，均符合合同约定。",
            f"Charges of CNY {total} in the ledger, all as the contract provides.", refs, _latest(fees, "charged_at"))


def _schedule(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if not r.accounts:
        return _nf("未找到产品收费标准所对应的账户。", "No account to read the fee schedule for.")
    extra = [k for k in f.beyond_contract if k not in ("late_fee", "penalty_interest")]
    if extra:
        return ("confirmed", f"收费项目不在产品收费标准内：{'、'.join(sorted(extra))}。",
                f"Charges not in the product's fee schedule: {', '.join(sorted(extra))}.", [r.accounts[0]["product"]], None)
    return ("contradicted", "所收费用均在产品收费标准内。", "Every charge is in the product's fee schedule.",
            [r.accounts[0]["product"]], None)


def _contract(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if not r.contracts:
        return _nf("合同档案中未找到该笔合同。", "The contract is missing from the contract archive.")
    ct = r.contracts[0]
    clauses = "；".join(x["text_zh"] for x in ct["clauses"]) or "无收费条款"
    breach = bool(f.beyond_contract) or (f.apr is not None and f.apr > rules.rate_cap_apr)
    return ("confirmed" if breach else "contradicted", f"合同约定：{clauses}",
            "Contract terms: " + ("; ".join(x["text_en"] for x in ct["clauses"]) or "no fee clauses"),
            [ct["_id"]], ct.get("signed_at"))


def _rate(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if f.apr is None:
        return _nf("无法由还款计划计算综合年化利率。", "No schedule to compute the all-in APR from.")
    refs = [x["_id"] for x in r.repayment_schedules]
    above = f.apr > rules.rate_cap_apr
    return ("confirmed" if above else "contradicted",
            f"综合年化利率 {f.apr * 100:.2f}%，上限 {rules.rate_cap_apr * 100:.0f}%。",
            f"All-in APR {f.apr * 100:.2f}%, cap {rules.rate_cap_apr * 100:.0f}%.", refs, None)


def _upfront(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if not f.disbursement_known or not r.accounts:
        return _nf("放款记录中没有实际到账金额。", "The disbursement record lacks the amount received.")
    a = r.accounts[0]
    if f.upfront_deducted:
        return ("confirmed", f"合同本金 {fen_to_yuan(a['principal_fen'])} 元，实际到账 {fen_to_yuan(a['disbursed_fen'])} 元。",
                f"Principal CNY {fen_to_yuan(a['principal_fen'])}, received CNY {fen_to_yuan(a['disbursed_fen'])}.",
                [a["_id"]], a.get("opened_at"))
    return ("contradicted", "放款金额与合同本金一致，未预扣费用。", "The full principal was paid out; nothing was deducted.",
            [a["_id"]], a.get("opened_at"))


def _signature(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    sig = f.e_signature
    if not sig:
        return _nf("未找到电子签约与身份核验记录。", "No e-signature or identity-check record was found.")
    ok = sig.get("device_matches_customer")
    ref = r.contracts[0]["_id"] if r.contracts else ""
    return ("contradicted" if ok else "confirmed",
            f"签约设备{'与' if ok else '与客户常用设备不'}一致，人脸比对分数 {sig.get('face_match_score')}。",
            f"Signed on {'the customer' if ok else 'a device not'}'s usual device"
            f"{'' if ok else ' of the customer'}; face match score {sig.get('face_match_score')}.",
            [ref], sig.get("signed_at"))


def _appraisal(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    a = f.appraisal
    if not a:
        return _nf("未委托外部鉴定。", "No external appraisal was commissioned.")
    result = a["result"]
    outcome: Outcome = {"not_the_customer": "confirmed", "customer_verified": "contradicted"}.get(result, "not_found")  # type: ignore[assignment]
    zh = {"not_the_customer": "鉴定结论：非本人办理。", "customer_verified": "鉴定结论：系本人办理。"}.get(result, "鉴定结论：无法确定。")
    en = {"not_the_customer": "Appraisal: not done by the customer.", "customer_verified": "Appraisal: done by the customer."}.get(
        result, "Appraisal: inconclusive.")
    return outcome, zh, en, [a["_id"]], a.get("completed_at")


def _contacts(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if not f.contact_log_found:
        return _nf("未找到该期间的催收联系记录（委外机构未回传）。", "No collection contact log for the period (not returned by the agency).")
    over = f.days_over_limit > 0
    claimed = f"（客户称每天 {c.contacts_per_day} 次）" if c.contacts_per_day else ""
    return ("confirmed" if over else "contradicted",
            f"单日联系本人最多 {f.contacts_max_per_day} 次，{f.days_over_limit} 天超过 {rules.max_contacts_per_day} 次{claimed}。",
            f"At most {f.contacts_max_per_day} contacts a day; {f.days_over_limit} days over {rules.max_contacts_per_day}"
            + (f" (the customer says {c.contacts_per_day} a day)." if c.contacts_per_day else "."),
            [x["_id"] for x in r.collection_contacts], _latest(r.collection_contacts, "at"))


def _times(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if not f.contact_log_found:
        return _nf("未找到催收联系记录。", "No collection contact log was found.")
    refs = [x["_id"] for x in r.collection_contacts]
    return ("confirmed" if f.contacts_off_hours else "contradicted",
            f"{rules.contact_hours_start}:00–{rules.contact_hours_end}:00 以外联系 {f.contacts_off_hours} 次。",
            f"{f.contacts_off_hours} contacts outside {rules.contact_hours_start}:00–{rules.contact_hours_end}:00.",
            refs, _latest(r.collection_contacts, "at"))


def _third(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if not f.contact_log_found:
        return _nf("未找到催收联系记录。", "No collection contact log was found.")
    refs = [x["_id"] for x in r.collection_contacts if x["party"] != "debtor"]
    return ("confirmed" if f.third_party_disclosures else "contradicted",
            f"联系第三人 {f.third_party_contacts} 次，透露债务 {f.third_party_disclosures} 次。",
            f"{f.third_party_contacts} third-party contacts, {f.third_party_disclosures} disclosing the debt.",
            refs, _latest([x for x in r.collection_contacts if x["party"] != "debtor"], "at"))


def _qa(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if not f.contact_log_found:
        return _nf("未找到催收录音。", "No collection recordings were found.")
    refs = [x.get("recording_ref", x["_id"]) for x in r.collection_contacts if x.get("qa_flags")] or [
        x.get("recording_ref", x["_id"]) for x in r.collection_contacts][:5]
    return ("confirmed" if f.abusive_contacts else "contradicted",
            f"录音质检发现威胁或辱骂 {f.abusive_contacts} 次。", f"Recording QA found {f.abusive_contacts} threatening or insulting contacts.",
            refs, None)


def _service(topic: str) -> Callable[[CoreRecords, Facts, Claims, Rules], Verdict]:
    def check(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
        rows = [x for x in r.service_interactions if x["topic"] == topic] or (
            r.service_interactions if topic == "service_failure" else [])
        if not rows:
            return _nf("客服系统中没有相关记录。", "The service desk holds no record of it.")
        unresolved = sum(1 for x in rows if x["outcome"] == "unresolved")
        missed = sum(1 for x in rows if not x.get("callback_made", True))
        if topic == "hardship_refused":
            offered = any(x.get("plan_offered") for x in rows)
            return ("contradicted" if offered else "confirmed",
                    f"困难协商申请 {len(rows)} 次，{'曾提供' if offered else '未提供'}还款方案。",
                    f"{len(rows)} hardship requests; a repayment plan was {'offered' if offered else 'not offered'}.",
                    [x["_id"] for x in rows], _latest(rows, "at"))
        return ("confirmed" if unresolved or missed else "contradicted",
                f"客服记录 {len(rows)} 次，未解决 {unresolved} 次，未按承诺回电 {missed} 次。",
                f"{len(rows)} service contacts, {unresolved} unresolved, {missed} callbacks missed.",
                [x["_id"] for x in rows], _latest(rows, "at"))
    return check


def _sales(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if not r.sales_records:
        return _nf("未找到销售过程记录（合作渠道销售）。", "No sales record (sold through a partner channel).")
    s = r.sales_records[0]
    misled = any(x.breach for x in f.items() if x.code == "disclosed_apr")
    return ("confirmed" if misled else "contradicted",
            "销售披露与实际不符或未签署关键信息说明书。" if misled else "销售时已完整披露利率与费用并签署关键信息说明书。",
            "The disclosure at sale differs from the actual terms or no key-facts statement was signed." if misled
            else "Rate and fees were fully disclosed at sale and the key-facts statement signed.",
            [s["_id"]], s.get("sold_at"))


def _early(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    quotes = [x for x in r.charges if x["kind"] == "early_settlement_fee"]
    if not quotes:
        return _nf("未找到提前还款报价记录。", "No early-settlement quote was found.")
    over = "early_settlement_fee" in f.beyond_contract
    q = quotes[0]
    return ("confirmed" if over else "contradicted",
            f"提前还款报价费用 {fen_to_yuan(q['amount_fen'])} 元，{'超出' if over else '符合'}合同约定。",
            f"Early-settlement quote CNY {fen_to_yuan(q['amount_fen'])}, {'beyond' if over else 'within'} the contract.",
            [q["_id"]], q.get("charged_at"))


def _credit(r: CoreRecords, f: Facts, c: Claims, rules: Rules) -> Verdict:
    if not f.credit_reports:
        return _nf("未找到相关征信报送记录。", "No credit-bureau submission was found.")
    wrong = f.credit_reports_wrong > 0
    return ("confirmed" if wrong else "contradicted",
            "报送的逾期记录与账务不符。" if wrong else "报送的逾期记录与账务一致。",
            "The reported lateness is not supported by the ledger." if wrong else "The reported lateness matches the ledger.",
            [r.accounts[0]["_id"]], _latest(r.accounts[0].get("credit_reporting") or [], "reported_at"))


_VERIFIERS: dict[str, Callable[[CoreRecords, Facts, Claims, Rules], Verdict]] = {
    "account": _account, "repayment_ledger": _ledger, "fee_ledger": _fees, "fee_schedule": _schedule,
    "contract_clause": _contract, "rate_cap": _rate, "upfront_deduction": _upfront, "e_signature": _signature,
    "external_appraisal": _appraisal, "contact_log": _contacts, "call_times": _times,
    "third_party_contacts": _third, "recording_qa": _qa, "service_log": _service("service_failure"),
    "hardship_requests": _service("hardship_refused"), "sales_record": _sales,
    "early_settlement_quote": _early, "credit_reporting": _credit,
}


def gather(category: str, claims: Claims, records: CoreRecords, facts: Facts, rules: Rules, *,
           now: datetime) -> list[EvidenceItem]:
    """Verify the whole checklist of a case."""
    return [verify(item, claim, records, facts, claims, rules, now=now)
            for item, claim in checklist(category, claims)]


def customer_requests(claims: Claims) -> list[str]:
    """What only the customer holds (never what the institution keeps itself)."""
    out = []
    if claims.hardship:
        out.append("困难证明（如失业、疾病证明）/ proof of hardship (e.g. job loss, illness)")
    if claims.has("unauthorised_account"):
        out.append("报案回执（如已报警）/ police report receipt, if the customer reported it")
    return out
