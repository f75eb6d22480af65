"""Facts computed from the institution's records: lateness, charges, the cost of credit, contacts.

Pure functions over the record documents (see ``records``); amounts are ``Decimal`` CNY
computed from integer fen. The rules and their numbers come from settings:

* the cost of credit is the annualised IRR of what the customer actually received and
  what the schedule and recurring fees make them pay (PBoC announcement [2021] No. 3
  requires lenders to state APR this way); above ``rate_cap_apr`` (24 % by default) the
  excess is a breach, above ``hard_cap_apr`` (36 %) it is void;
* a charge is beyond the contract when its kind is not in the contract, or exceeds the
  contract's own formula (late fee share and cap, penalty interest at 1.5x the rate,
  early-settlement share);
* collection contacts: only between ``contact_hours_start`` and ``contact_hours_end`` local
  time, at most ``max_contacts_per_day`` to the debtor a day, never disclosing the debt to
  third parties, no threats or insults (recording QA flags).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from services.investigation.records import FEE_NAMES, CoreRecords, annuity
from shared.clock import DEFAULT_TIMEZONE
from shared.contracts.investigation import ComputedFact
from shared.money import fen_to_yuan, round_fen, to_yuan


@dataclass(frozen=True)
class Rules:
    """The numbers the rules use (from settings)."""

    rate_cap_apr: Decimal = Decimal("0.24")
    hard_cap_apr: Decimal = Decimal("0.36")
    contact_hours_start: int = 8
    contact_hours_end: int = 21
    max_contacts_per_day: int = 3
    timezone: str = DEFAULT_TIMEZONE


@dataclass
class Facts:
    """Everything computed for one case; ``items()`` gives the facts as they are published."""

    has_account: bool = False
    has_contract: bool = False
    lending: bool = False
    contract_apr: Decimal | None = None
    apr: Decimal | None = None
    cap_apr: Decimal | None = None
    cost_above_cap: Decimal = Decimal("0")
    cost_above_hard_cap: Decimal = Decimal("0")
    days_late_current: int = 0
    days_late_max: int = 0
    overdue_instalments: int = 0
    overdue_amount: Decimal = Decimal("0")
    charged: dict[str, Decimal] = field(default_factory=dict)
    beyond_contract: dict[str, Decimal] = field(default_factory=dict)
    beyond_contract_refs: list[str] = field(default_factory=list)
    upfront_deducted: Decimal = Decimal("0")
    disbursement_known: bool = True
    contacts_total: int = 0
    contacts_off_hours: int = 0
    contacts_max_per_day: int = 0
    days_over_limit: int = 0
    third_party_contacts: int = 0
    third_party_disclosures: int = 0
    abusive_contacts: int = 0
    contact_log_found: bool = False
    service_contacts: int = 0
    service_unresolved: int = 0
    callbacks_missed: int = 0
    hardship_plan_offered: bool | None = None
    sales_record_found: bool = False
    disclosed_apr: Decimal | None = None
    key_facts_signed: bool | None = None
    appraisal: dict[str, Any] | None = None
    e_signature: dict[str, Any] | None = None
    credit_reports: int = 0
    credit_reports_wrong: int = 0
    _items: list[ComputedFact] = field(default_factory=list)

    @property
    def late_charges(self) -> Decimal:
        return self.charged.get("late_fee", Decimal("0")) + self.charged.get("penalty_interest", Decimal("0"))

    @property
    def beyond_contract_total(self) -> Decimal:
        return sum(self.beyond_contract.values(), Decimal("0"))

    def items(self) -> list[ComputedFact]:
        return list(self._items)


def monthly_irr(flows: list[Decimal]) -> Decimal | None:
    """The monthly rate at which ``flows`` (month 0 first) have zero present value."""
    if not flows or flows[0] <= 0:
        return None
    if sum(flows) >= 0:  # repaid no more than received: no cost of credit
        return Decimal("0")

    def npv(rate: Decimal) -> Decimal:
        total, factor, step = Decimal("0"), Decimal("1"), 1 / (1 + rate)
        for f in flows:
            total += f * factor
            factor *= step
        return total

    # 48 halvings leave the monthly rate within 2**-48 (4e-15): far inside the 0.0001 to
    # which the APR is quantized, at 60 % of the 80 it took before. Only the sign of ``npv``
    # at each midpoint steers the halving: away from the root ``_root_bracket`` knows it
    # without the Decimal sum (the same halvings, the same result; test_facts checks that).
    bracket = _root_bracket(flows)
    low, high = Decimal("0"), Decimal("1")
    for _ in range(48):
        mid = (low + high) / 2
        if bracket is not None and mid > bracket[1]:
            above = True
        elif bracket is not None and mid < bracket[0]:
            above = False
        else:
            above = npv(mid) > 0
        if above:
            high = mid
        else:
            low = mid
    return low


def _root_bracket(flows: list[Decimal]) -> tuple[Decimal, Decimal] | None:
    """Rates ``(lo, hi)`` with the present value of ``flows`` surely below zero at ``lo`` and
    below, and surely above zero at ``hi`` and above — so surely of that sign when ``monthly_irr``
    sums it in Decimal too; None when that cannot be shown.

    For money received first and only paid after (``flows[0] > 0``, the rest ``<= 0``, summing
    below zero) the present value rises with the rate, so one bracket of its root settles the
    sign everywhere outside it. The root is found in floats (Newton's method from 0, which
    stays left of the root of this rising concave function); the bracket counts only where the
    float sums at its ends (rates >= 0: every discount factor <= 1) are farther from zero than
    floats can err (64 times ``(4n + 4)`` roundings of the sum of magnitudes), and Decimal's
    default 28 digits err less still.
    """
    if any(f > 0 for f in flows[1:]):
        return None
    values = [float(f) for f in flows]
    scale = sum(abs(v) for v in values)
    margin = 64 * (4 * len(values) + 4) * 2.0**-53 * scale

    def value_and_slope(rate: float) -> tuple[float, float]:
        total, slope, step = 0.0, 0.0, 1 / (1 + rate)
        factor = 1.0
        for i, v in enumerate(values):
            total += v * factor
            slope -= i * v * factor * step
            factor *= step
        return total, slope

    rate = 0.0
    for _ in range(60):
        value, slope = value_and_slope(rate)
        if slope <= 0:
            return None
        move = -value / slope
        rate += move
        if not -1 < rate < 2:
            return None
        if abs(move) <= 1e-15:
            break
    for width in (1e-12, 1e-9):
        lo, hi = rate - width, rate + width
        if lo >= 0 and value_and_slope(lo)[0] < -margin and value_and_slope(hi)[0] > margin:
            return Decimal(lo), Decimal(hi)
    return None


def compute(records: CoreRecords, *, rules: Rules, as_of: datetime) -> Facts:
    """Compute the facts of a case from its records as they stood at ``as_of``."""
    f = Facts()
    tz = ZoneInfo(rules.timezone)
    account = records.accounts[0] if records.accounts else None
    contract = records.contracts[0] if records.contracts else None
    schedule = records.repayment_schedules[0]["instalments"] if records.repayment_schedules else []
    f.has_account, f.has_contract, f.lending = account is not None, contract is not None, bool(schedule)
    f.e_signature = (contract or {}).get("e_signature")
    paid = {p["instalment"]: p for p in records.payments}

    # lateness
    for row in schedule:
        if row["due_at"] > as_of:
            continue
        payment = paid.get(row["n"])
        if payment is None:
            f.overdue_instalments += 1
            f.overdue_amount += fen_to_yuan(row["amount_fen"])
            f.days_late_current = max(f.days_late_current, (as_of - row["due_at"]).days)
        else:
            f.days_late_max = max(f.days_late_max, (payment["paid_at"] - row["due_at"]).days)
    f.days_late_max = max(f.days_late_max, f.days_late_current)

    # charges, and what the contract allows
    rows = {r["n"]: r for r in schedule}
    fees = (contract or {}).get("fees_fen", {})
    apr = Decimal(contract["nominal_apr"]) if contract and contract.get("nominal_apr") else None
    f.contract_apr = apr
    for charge in records.charges:
        kind, amount = charge["kind"], Decimal(charge["amount_fen"])
        if not charge.get("quote_only"):
            f.charged[kind] = f.charged.get(kind, Decimal("0")) + fen_to_yuan(int(amount))
        if charge.get("deducted_at_disbursement"):
            f.upfront_deducted += fen_to_yuan(int(amount))
        allowed = _allowed(charge, contract, rows, fees, apr)
        if allowed is not None and amount - allowed > 1:
            excess = fen_to_yuan(round_fen(amount - allowed))
            f.beyond_contract[kind] = f.beyond_contract.get(kind, Decimal("0")) + excess
            f.beyond_contract_refs.append(charge["_id"])

    # the cost of credit
    if schedule and account is not None:
        f.disbursement_known = account.get("disbursed_fen") is not None
        disbursed = Decimal(account["disbursed_fen"] if f.disbursement_known else account["principal_fen"])
        recurring: Counter[int] = Counter()
        for charge in records.charges:
            if charge.get("recurring"):
                due = charge["charged_at"]
                n = next((r["n"] for r in schedule if r["due_at"] == due), None)
                if n is not None:
                    recurring[n] += charge["amount_fen"]
        per_instalment = max(recurring.values(), default=0)
        flows = [disbursed] + [-(Decimal(r["amount_fen"]) + per_instalment) for r in schedule]
        irr = monthly_irr(flows)
        if irr is not None:
            f.apr = (irr * 12).quantize(Decimal("0.0001"))
            cost = -sum(flows[1:], Decimal("0")) - disbursed
            for cap, attr in ((rules.rate_cap_apr, "cost_above_cap"), (rules.hard_cap_apr, "cost_above_hard_cap")):
                allowed = annuity(disbursed, cap, len(schedule)) * len(schedule) - disbursed
                setattr(f, attr, to_yuan(max(Decimal("0"), (cost - allowed) / 100)))
        f.cap_apr = rules.rate_cap_apr

    # collection contacts
    per_day: Counter[str] = Counter()
    f.contact_log_found = bool(records.collection_contacts)
    for c in records.collection_contacts:
        local = c["at"].astimezone(tz)
        f.contacts_total += 1
        if not rules.contact_hours_start <= local.hour < rules.contact_hours_end:
            f.contacts_off_hours += 1
        if c["party"] == "debtor":
            per_day[local.date().isoformat()] += 1
        else:
            f.third_party_contacts += 1
            f.third_party_disclosures += bool(c.get("disclosed_debt"))
        f.abusive_contacts += bool(c.get("qa_flags"))
    f.contacts_max_per_day = max(per_day.values(), default=0)
    f.days_over_limit = sum(1 for v in per_day.values() if v > rules.max_contacts_per_day)

    # service desk, sales, appraisal, credit reporting
    for s in records.service_interactions:
        f.service_contacts += 1
        f.service_unresolved += s["outcome"] == "unresolved"
        f.callbacks_missed += not s.get("callback_made", True)
        if s["topic"] == "hardship_refused":
            f.hardship_plan_offered = bool(f.hardship_plan_offered) or bool(s.get("plan_offered"))
    if records.sales_records:
        sale = records.sales_records[0]
        f.sales_record_found = True
        f.disclosed_apr = Decimal(sale["disclosed_apr"]) if sale.get("disclosed_apr") else None
        f.key_facts_signed = bool(sale.get("key_facts_statement_signed"))
    f.appraisal = records.appraisals[0] if records.appraisals else None
    if account is not None:
        reports = account.get("credit_reporting") or []
        f.credit_reports = len(reports)
        f.credit_reports_wrong = sum(1 for r in reports if not r.get("ledger_shows_overdue"))

    f._items = _describe(f, rules)
    return f


def _allowed(charge: dict[str, Any], contract: dict[str, Any] | None, rows: dict[int, dict[str, Any]],
             fees: dict[str, int], apr: Decimal | None) -> Decimal | None:
    """What the contract allows for a charge (fen), or None when it cannot be told."""
    kind = charge["kind"]
    if contract is None:
        return None
    if kind in FEE_NAMES and kind not in ("late_fee", "penalty_interest", "early_settlement_fee"):
        if charge.get("deducted_at_disbursement"):
            return Decimal(0)
        return Decimal(fees.get(kind, 0))
    row = rows.get(charge.get("instalment", -1))
    if kind == "late_fee" and row is not None:
        return min(Decimal(row["amount_fen"]) * Decimal(contract["late_fee_rate"]), Decimal(contract["late_fee_max_fen"]))
    if kind == "penalty_interest" and row is not None and apr is not None:
        return Decimal(row["principal_fen"]) * apr * Decimal(contract["penalty_factor"]) / 360 * charge.get("days", 0)
    if kind == "early_settlement_fee":
        return Decimal(charge.get("outstanding_principal_fen", 0)) * Decimal(contract.get("early_settlement_rate") or "0")
    return None


def _pct(value: Decimal | None) -> str:
    return f"{value * 100:.2f}%" if value is not None else "—"


def _describe(f: Facts, rules: Rules) -> list[ComputedFact]:
    out: list[ComputedFact] = []

    def add(code: str, value: object, unit: str, zh: str, en: str, breach: bool = False) -> None:
        out.append(ComputedFact(code=code, value=str(value), unit=unit, breach=breach, detail_zh=zh, detail_en=en))

    if f.lending:
        add("days_late_current", f.days_late_current, "days",
            f"当前逾期 {f.days_late_current} 天，逾期 {f.overdue_instalments} 期，逾期金额 {f.overdue_amount} 元。",
            f"{f.days_late_current} days past due now; {f.overdue_instalments} instalments, CNY {f.overdue_amount} overdue.")
        add("days_late_max", f.days_late_max, "days", f"历史最长逾期 {f.days_late_max} 天。",
            f"Longest lateness on record: {f.days_late_max} days.")
    for kind, amount in sorted(f.charged.items()):
        zh, en = FEE_NAMES.get(kind, (kind, kind))
        add(f"charged_{kind}", amount, "CNY", f"已收取{zh} {amount} 元。", f"{en.capitalize()} charged: CNY {amount}.")
    if f.beyond_contract:
        parts_zh = "、".join(f"{FEE_NAMES.get(k, (k, k))[0]} {v} 元" for k, v in sorted(f.beyond_contract.items()))
        parts_en = ", ".join(f"{FEE_NAMES.get(k, (k, k))[1]} CNY {v}" for k, v in sorted(f.beyond_contract.items()))
        add("charges_beyond_contract", f.beyond_contract_total, "CNY",
            f"超出合同约定的收费合计 {f.beyond_contract_total} 元（{parts_zh}）。",
            f"Charges beyond the contract: CNY {f.beyond_contract_total} ({parts_en}).", breach=True)
    if f.upfront_deducted:
        add("upfront_deduction", f.upfront_deducted, "CNY", f"放款时预先扣除 {f.upfront_deducted} 元（砍头息）。",
            f"CNY {f.upfront_deducted} was deducted from the loan at disbursement.", breach=True)
    if f.apr is not None:
        above = f.apr > rules.rate_cap_apr
        add("apr", f.apr, "APR",
            f"按实际到手金额和全部还款计算的综合年化利率（IRR）为 {_pct(f.apr)}，{'超过' if above else '未超过'}"
            f" {_pct(rules.rate_cap_apr)} 的上限。",
            f"The all-in APR (IRR on the amount received and everything repaid) is {_pct(f.apr)}, "
            f"{'above' if above else 'within'} the {_pct(rules.rate_cap_apr)} cap.", breach=above)
        if f.cost_above_cap:
            add("cost_above_rate_cap", f.cost_above_cap, "CNY",
                f"超过 {_pct(rules.rate_cap_apr)} 上限的融资成本 {f.cost_above_cap} 元，其中超过 {_pct(rules.hard_cap_apr)} 的部分 {f.cost_above_hard_cap} 元。",
                f"Cost above the {_pct(rules.rate_cap_apr)} cap: CNY {f.cost_above_cap}, of which CNY "
                f"{f.cost_above_hard_cap} above {_pct(rules.hard_cap_apr)}.", breach=True)
    if f.contact_log_found:
        hours = f"{rules.contact_hours_start:02d}:00–{rules.contact_hours_end:02d}:00"
        add("contacts_total", f.contacts_total, "count", f"近 14 天催收联系 {f.contacts_total} 次。",
            f"{f.contacts_total} collection contacts in the last 14 days.")
        add("contacts_off_hours", f.contacts_off_hours, "count", f"{hours} 以外的联系 {f.contacts_off_hours} 次。",
            f"{f.contacts_off_hours} contacts outside {hours} local time.", breach=f.contacts_off_hours > 0)
        add("contacts_max_per_day", f.contacts_max_per_day, "count",
            f"单日联系本人最多 {f.contacts_max_per_day} 次（上限 {rules.max_contacts_per_day} 次），超限 {f.days_over_limit} 天。",
            f"At most {f.contacts_max_per_day} contacts with the debtor in a day (limit {rules.max_contacts_per_day}); "
            f"{f.days_over_limit} days over the limit.", breach=f.days_over_limit > 0)
        add("third_party_contacts", f.third_party_contacts, "count",
            f"联系第三人 {f.third_party_contacts} 次，其中向第三人透露债务 {f.third_party_disclosures} 次。",
            f"{f.third_party_contacts} contacts with third parties, {f.third_party_disclosures} disclosing the debt.",
            breach=f.third_party_disclosures > 0)
        add("abusive_contacts", f.abusive_contacts, "count", f"录音质检标记威胁或辱骂 {f.abusive_contacts} 次。",
            f"{f.abusive_contacts} contacts flagged for threats or insults by recording QA.", breach=f.abusive_contacts > 0)
    if f.service_contacts:
        add("service_unresolved", f.service_unresolved, "count",
            f"客服记录 {f.service_contacts} 次，未解决 {f.service_unresolved} 次，未按承诺回电 {f.callbacks_missed} 次。",
            f"{f.service_contacts} service contacts, {f.service_unresolved} unresolved, {f.callbacks_missed} promised callbacks missed.",
            breach=f.callbacks_missed > 0)
    if f.sales_record_found and f.disclosed_apr is not None:
        actual = f.apr or f.contract_apr
        misled = bool(actual is not None and f.disclosed_apr < actual - Decimal("0.005")) or not f.key_facts_signed
        add("disclosed_apr", f.disclosed_apr, "APR",
            f"销售时披露年化利率 {_pct(f.disclosed_apr)}，实际 {_pct(actual)}；{'未' if not f.key_facts_signed else '已'}签署关键信息说明书。",
            f"APR disclosed at sale {_pct(f.disclosed_apr)}, actual {_pct(actual)}; key-facts statement "
            f"{'not ' if not f.key_facts_signed else ''}signed.", breach=misled)
    if f.credit_reports:
        add("credit_reports_wrong", f.credit_reports_wrong, "count",
            f"报送征信 {f.credit_reports} 条，与账务记录不符 {f.credit_reports_wrong} 条。",
            f"{f.credit_reports} credit-bureau submissions, {f.credit_reports_wrong} not supported by the ledger.",
            breach=f.credit_reports_wrong > 0)
    return out
