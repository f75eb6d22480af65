"""A stand-in for the institution's core systems: deterministic records consistent with a complaint.

Parley has no access to a real lender's ledger, so investigation keeps, in its own database,
the collections a core banking / collections / CRM stack would hold (accounts, repayment
schedules, payments, fees and penalty interest charged, collection contacts, contracts,
product rate caps, service interactions, sales records, external appraisals). This module
*generates* them for a customer the first time the customer is investigated, from the
customer id and the complaint: the same input always yields byte-identical records.

To exercise verification, each claim the customer makes is, by a draw seeded from the
customer id and the claim, borne out by the records (about 55 %), contradicted by them
(about 30 %) or absent from them (about 15 %). The draw only shapes the records; the
verdict is then computed from the records like any real ones (see ``facts``). In
production this module is replaced by adapters to the real systems.

Money is integer fen; times are timezone-aware UTC.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from services.investigation.claims import Caseless, Claims, folded, read_claims
from shared.clock import DEFAULT_TIMEZONE, zone
from shared.contracts.common import Product
from shared.money import fen_to_yuan, to_yuan, yuan_to_fen

if TYPE_CHECKING:
    from services.investigation.ports import RecordsBacking, RecordsRequest

LENDING = {Product.CONSUMER_LOAN, Product.INSTALMENT, Product.CREDIT_CARD}
TZ = zone(DEFAULT_TIMEZONE)  # the simulated institution keeps its books in local time

#: Reference data: products, their contractual fee schedule and declared APR cap.
PRODUCTS: list[dict[str, Any]] = [
    {"_id": "consumer_loan", "name_zh": "个人消费贷款", "name_en": "personal consumer loan",
     "apr_cap": "0.24", "late_fee_rate": "0.05", "late_fee_max_fen": 20000, "penalty_factor": "1.5",
     "early_settlement_rate": "0.03"},
    {"_id": "instalment", "name_zh": "消费分期", "name_en": "instalment purchase",
     "apr_cap": "0.24", "late_fee_rate": "0.05", "late_fee_max_fen": 10000, "penalty_factor": "1.5",
     "early_settlement_rate": "0.02"},
    {"_id": "credit_card", "name_zh": "信用卡", "name_en": "credit card",
     "apr_cap": "0.24", "late_fee_rate": "0.05", "late_fee_max_fen": 30000, "penalty_factor": "1.5",
     "early_settlement_rate": "0.0"},
    {"_id": "insurance", "name_zh": "保险代销", "name_en": "insurance (distributed)", "apr_cap": None},
    {"_id": "wealth", "name_zh": "理财代销", "name_en": "wealth products (distributed)", "apr_cap": None},
    {"_id": "payments", "name_zh": "支付服务", "name_en": "payment services", "apr_cap": None},
    {"_id": "other", "name_zh": "其他", "name_en": "other", "apr_cap": None},
]

FEE_NAMES: dict[str, tuple[str, str]] = {
    "service_fee": ("服务费", "service fee"),
    "membership_fee": ("会员费", "membership fee"),
    "insurance_premium": ("保险费", "insurance premium"),
    "guarantee_fee": ("担保费", "guarantee fee"),
    "annual_fee": ("年费", "annual fee"),
    "late_fee": ("违约金", "late fee"),
    "penalty_interest": ("罚息", "penalty interest"),
    "early_settlement_fee": ("提前还款手续费", "early settlement fee"),
}


#: Product by the complaint's words, first match wins.
_PRODUCT_WORDS: list[tuple[Product, Caseless]] = [
    (Product.CREDIT_CARD, Caseless(r"信用卡|credit card|账单分期")),
    (Product.INSURANCE, Caseless(r"保险|保单|投保|退保|insurance")),
    (Product.WEALTH, Caseless(r"理财|基金|定投|纪念币|贵金属|invest")),
    (Product.INSTALMENT, Caseless(r"分期购|分期付款|白条|花呗|消费分期|买单吧")),
    (Product.CONSUMER_LOAN, Caseless(r"贷款|借款|借钱|网贷|放款|loan|mortgage")),
    (Product.PAYMENTS, Caseless(r"支付|转账|扣款|payment|transfer")),
]


def product_of(text: str, given: Product | str | None) -> Product:
    """Return the product a complaint is about: the text's words first, intake's field second."""
    lowered = folded(text)
    for product, words in _PRODUCT_WORDS:
        if words.search(text, lowered):
            return product
    try:
        return Product(given) if given else Product.OTHER
    except ValueError:
        return Product.OTHER


def _seed(*parts: str) -> int:
    return int(hashlib.sha256(":".join(parts).encode()).hexdigest()[:16], 16)


def draw(customer_id: str, claim: str) -> str:
    """The scenario the records will bear out for one claim: confirmed, contradicted or not_found."""
    x = random.Random(_seed(customer_id, "claim", claim)).random()
    return "confirmed" if x < 0.55 else "contradicted" if x < 0.85 else "not_found"


def add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year = moment.year + month // 12
    return moment.replace(year=year, month=month % 12 + 1, day=min(moment.day, 28))


def annuity(principal: Decimal, apr: Decimal, n: int) -> Decimal:
    """Equal monthly instalment (等额本息) of ``principal`` at nominal ``apr`` over ``n`` months."""
    r = apr / 12
    if r == 0:
        return principal / n
    return principal * r / (1 - (1 + r) ** -n)


@dataclass
class CoreRecords:
    """One customer's records, one list of documents per collection."""

    accounts: list[dict[str, Any]] = field(default_factory=list)
    contracts: list[dict[str, Any]] = field(default_factory=list)
    repayment_schedules: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    charges: list[dict[str, Any]] = field(default_factory=list)
    collection_contacts: list[dict[str, Any]] = field(default_factory=list)
    service_interactions: list[dict[str, Any]] = field(default_factory=list)
    sales_records: list[dict[str, Any]] = field(default_factory=list)
    appraisals: list[dict[str, Any]] = field(default_factory=list)
    #: Made by ``normalise`` (already in stored form: ``normalise`` returns it as it is).
    normalised: bool = field(default=False, compare=False, repr=False)

    COLLECTIONS = (
        "accounts", "contracts", "repayment_schedules", "payments", "charges",
        "collection_contacts", "service_interactions", "sales_records", "appraisals",
    )

    def items(self) -> list[tuple[str, list[dict[str, Any]]]]:
        return [(name, getattr(self, name)) for name in self.COLLECTIONS]

    @property
    def customer_id(self) -> str:
        return str(self.accounts[0]["customer_id"])


#: Values a store gives back as they are (exact types: a ``str`` enum still goes through ``_stored``).
_LEAVES = frozenset({str, int, float, bool, type(None)})


def _stored(value: Any) -> Any:
    """``value`` as a MongoDB-wire store gives it back: datetimes in UTC to the millisecond.

    (Dispatch on the exact type, and leaves kept without a call: this walks every field of every
    synthesized record and was investigation's costliest Python function.)"""
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _LEAVES else _stored(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _LEAVES else _stored(v) for v in value]
    if kind is datetime or isinstance(value, datetime):
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000) if value.microsecond % 1000 else value
    if kind in _LEAVES:
        return value
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stored(v) for v in value]
    return value


def normalise(records: CoreRecords) -> CoreRecords:
    """The records exactly as a store keeps and returns them: each collection sorted by ``_id``,
    times in UTC to the millisecond. Fresh records are investigated in this form, so the first
    investigation and any replay (which reads them back) see the same input.

    Records this function made are returned as they are (the simulator normalises what it
    generates, and the store normalises what it is given: the walk is done once)."""
    if records.normalised:
        return records
    out = CoreRecords(normalised=True)
    for name, docs in records.items():
        setattr(out, name, sorted((_stored(d) for d in docs), key=lambda d: str(d["_id"])))
    return out


def account_id_of(customer_id: str) -> str:
    """The synthetic account of a customer (one per customer)."""
    return "AC" + hashlib.sha256(customer_id.encode()).hexdigest()[:12].upper()


def synthesize(
    *, customer_id: str, case_id: str, claims: Claims, product: Product, received_at: datetime
) -> CoreRecords:
    """Generate the core records of ``customer_id`` consistent with a complaint (deterministic)."""
    received_at = received_at.replace(microsecond=0)  # the store keeps milliseconds at best
    rng = random.Random(_seed(customer_id, "account"))
    acc = account_id_of(customer_id)
    out = CoreRecords()
    as_of = received_at.astimezone(TZ).replace(hour=10, minute=0, second=0, microsecond=0)
    prod = next(p for p in PRODUCTS if p["_id"] == product.value)
    lending = product in LENDING

    principal = claims.principal if claims.principal and 1000 <= claims.principal <= 2_000_000 else None
    principal = to_yuan(principal or Decimal(rng.choice([3000, 5000, 8000, 10000, 20000, 30000, 50000])))
    n = claims.term or rng.choice([6, 12, 12, 24, 36])
    elapsed = min(n, rng.randint(3, 14))
    opened = add_months(as_of, -elapsed).replace(hour=rng.randint(9, 20), minute=rng.randint(0, 59))

    # --- price: the nominal rate and any fees, shaped by the rate claim
    rate_case = draw(customer_id, "excessive_rate") if claims.has("excessive_rate") else "contradicted"
    if claims.principal and claims.monthly_payment and claims.term and lending and rate_case != "contradicted":
        apr = _rate_from_payment(principal, claims.monthly_payment, n)
    elif rate_case == "confirmed":
        apr = Decimal(rng.choice(["0.2880", "0.3240", "0.3550", "0.3960"]))
    else:
        apr = Decimal(rng.choice(["0.0900", "0.1250", "0.1540", "0.1800", "0.2160"]))
    contract_fees: dict[str, int] = {}
    consented: set[str] = set()
    fee_kinds = list(claims.fee_kinds) or (["membership_fee"] if claims.has("unauthorised_fee") else [])
    fee_case = draw(customer_id, "unauthorised_fee") if claims.has("unauthorised_fee") else None
    monthly_fees: dict[str, int] = {}
    for kind in fee_kinds:
        amount = rng.choice([1990, 2990, 4900, 9900, 12000])
        if fee_case == "contradicted":
            contract_fees[kind] = amount
            consented.add(kind)
            monthly_fees[kind] = amount
        elif fee_case == "confirmed":
            monthly_fees[kind] = amount
    upfront_case = draw(customer_id, "upfront_deduction") if claims.has("upfront_deduction") else None
    upfront_fen = 0
    if upfront_case == "confirmed" and lending:
        if claims.received and claims.received < principal:
            upfront_fen = yuan_to_fen(principal - claims.received)
        else:
            upfront_fen = yuan_to_fen(principal * Decimal(rng.choice(["0.08", "0.10", "0.15"])))
    contract_missing = rate_case == "not_found"
    contract_id = f"CT-{acc}"
    signature_case = draw(customer_id, "unauthorised_account") if claims.has("unauthorised_account") else None
    if not contract_missing:
        out.contracts.append({
            "_id": contract_id, "account_id": acc, "customer_id": customer_id, "product": product.value,
            "signed_at": opened, "principal_fen": yuan_to_fen(principal), "term_months": n,
            "nominal_apr": str(apr) if lending else None, "repayment_method": "equal_instalment",
            "late_fee_rate": prod.get("late_fee_rate"), "late_fee_max_fen": prod.get("late_fee_max_fen"),
            "penalty_factor": prod.get("penalty_factor"),
            "early_settlement_rate": prod.get("early_settlement_rate"),
            "fees_fen": contract_fees,
            "clauses": _clauses(product, apr, contract_fees, prod),
            "e_signature": None if signature_case == "not_found" else {
                "signed_at": opened, "method": "face_verification+sms",
                "device_matches_customer": signature_case != "confirmed",
                "face_match_score": "0.41" if signature_case == "confirmed" else "0.97",
            },
        })

    # --- the loan: schedule and what was paid
    disbursed_fen = yuan_to_fen(principal) - upfront_fen
    overdue = any(claims.has(c) for c in ("late_fees", "collection_frequency", "collection_off_hours",
                                          "collection_third_party", "collection_abuse", "hardship_refused"))
    overdue = overdue or rng.random() < 0.25
    schedule = []
    if lending:
        pay = to_yuan(annuity(principal, apr, n))
        balance = principal
        for i in range(1, n + 1):
            interest = to_yuan(balance * apr / 12)
            part = (pay - interest) if i < n else balance
            balance -= part
            schedule.append({"n": i, "due_at": add_months(opened, i).replace(hour=23, minute=59),
                             "principal_fen": yuan_to_fen(part), "interest_fen": yuan_to_fen(interest),
                             "amount_fen": yuan_to_fen(part + interest)})
        out.repayment_schedules.append({"_id": acc, "account_id": acc, "contract_id": contract_id,
                                        "instalments": schedule})
    due = [row for row in schedule if row["due_at"] <= as_of]
    if overdue and due:
        late_days = claims.days_late or rng.choice([12, 25, 40, 67, 95])
        unpaid = [row for row in due if (as_of - row["due_at"]).days < late_days] or due[-1:]
    else:
        unpaid = []
    for row in due:
        if row in unpaid:
            continue
        paid_at = row["due_at"] - timedelta(days=rng.randint(0, 3), hours=rng.randint(1, 12))
        out.payments.append({"_id": f"PY-{acc}-{row['n']:02d}", "account_id": acc, "instalment": row["n"],
                             "paid_at": paid_at, "amount_fen": row["amount_fen"] + sum(monthly_fees.values())})
    # --- charges: upfront deduction, monthly fees, late fees and penalty interest
    if upfront_fen:
        out.charges.append({"_id": f"CH-{acc}-upfront", "account_id": acc, "kind": "service_fee",
                            "amount_fen": upfront_fen, "charged_at": opened, "deducted_at_disbursement": True})
    for kind, amount in monthly_fees.items():
        for row in due:
            out.charges.append({"_id": f"CH-{acc}-{kind}-{row['n']:02d}", "account_id": acc, "kind": kind,
                                "amount_fen": amount, "charged_at": row["due_at"], "recurring": True})
    # the simulated ledger charges whole fen by dropping the fraction it computed (int(...)):
    # that is the lender's behaviour being simulated, not a money conversion of ours
    late_case = draw(customer_id, "late_fees") if claims.has("late_fees") else "contradicted"
    if unpaid and lending and late_case != "not_found":
        factor = Decimal(prod["penalty_factor"])
        for row in unpaid:
            allowed = min(Decimal(row["amount_fen"]) * Decimal(prod["late_fee_rate"]), Decimal(prod["late_fee_max_fen"]))
            late = allowed * (2 if late_case == "confirmed" else 1)
            out.charges.append({"_id": f"CH-{acc}-late-{row['n']:02d}", "account_id": acc, "kind": "late_fee",
                                "instalment": row["n"], "amount_fen": int(late),
                                "charged_at": row["due_at"] + timedelta(days=1)})
            days = (as_of - row["due_at"]).days
            penalty = Decimal(row["principal_fen"]) * apr * factor / 360 * days
            if late_case == "confirmed":
                penalty = Decimal(row["amount_fen"] + row["interest_fen"]) * apr * factor * 2 / 360 * days
            out.charges.append({"_id": f"CH-{acc}-penalty-{row['n']:02d}", "account_id": acc,
                                "kind": "penalty_interest", "instalment": row["n"], "days": days,
                                "amount_fen": int(penalty), "charged_at": as_of - timedelta(hours=2)})
    es_case = draw(customer_id, "early_settlement") if claims.has("early_settlement") else None
    if es_case in ("confirmed", "contradicted") and lending:
        outstanding = sum(r["principal_fen"] for r in schedule if r not in due) or schedule[-1]["principal_fen"]
        rate = Decimal(prod.get("early_settlement_rate") or "0")
        remaining_interest = sum(r["interest_fen"] for r in schedule if r not in due)
        amount = int(outstanding * rate) + (remaining_interest if es_case == "confirmed" else 0)
        out.charges.append({"_id": f"CH-{acc}-early", "account_id": acc, "kind": "early_settlement_fee",
                            "amount_fen": amount, "outstanding_principal_fen": outstanding,
                            "charged_at": as_of - timedelta(days=3), "quote_only": True})

    credit_case = draw(customer_id, "credit_report") if claims.has("credit_report") else None
    reporting = []
    if credit_case in ("confirmed", "contradicted"):
        reported_overdue = credit_case == "contradicted" and bool(unpaid)
        if credit_case == "contradicted" and not unpaid:  # a real late payment, properly reported
            first = due[0] if due else None
            reporting.append({"reported_at": (first["due_at"] if first else opened) + timedelta(days=5),
                              "status": "overdue", "instalment": first["n"] if first else None,
                              "ledger_shows_overdue": True})
        else:
            reporting.append({"reported_at": as_of - timedelta(days=10), "status": "overdue",
                              "instalment": due[-1]["n"] if due else None,
                              "ledger_shows_overdue": reported_overdue})
    out.accounts.append({
        "_id": acc, "customer_id": customer_id, "product": product.value, "contract_id": contract_id,
        "opened_at": opened, "status": "overdue" if unpaid else "current",
        "principal_fen": yuan_to_fen(principal) if lending else 0,
        "disbursed_fen": None if upfront_case == "not_found" else disbursed_fen if lending else 0,
        "credit_reporting": reporting, "case_ids": [case_id],
    })

    # --- collection contacts over the 14 days before the complaint
    _contacts(out, acc, customer_id, claims, as_of, rng, bool(unpaid))
    # --- service desk, sales and appraisal
    _service(out, customer_id, claims, as_of, rng)
    if claims.has("misleading_sales") and draw(customer_id, "misleading_sales") != "not_found":
        ok = draw(customer_id, "misleading_sales") == "contradicted"
        out.sales_records.append({
            "_id": f"SR-{acc}", "account_id": acc, "customer_id": customer_id, "sold_at": opened,
            "channel": rng.choice(["app", "agent", "partner"]),
            "disclosed_apr": str(apr) if ok else str((apr * Decimal("0.45")).quantize(Decimal("0.0001"))),
            "key_facts_statement_signed": ok, "recording_ref": f"REC-S-{acc}" if ok else None,
            "fees_disclosed": sorted(contract_fees) if ok else [],
        })
    if signature_case is not None:
        requested = received_at + timedelta(days=1)
        out.appraisals.append({
            "_id": f"AP-{case_id}", "case_id": case_id, "account_id": acc, "kind": "identity_and_signature",
            "requested_at": requested,
            "completed_at": requested + timedelta(days=random.Random(_seed(case_id, "appraisal")).randint(5, 12)),
            "result": "not_the_customer" if signature_case == "confirmed" else
                      "customer_verified" if signature_case == "contradicted" else "inconclusive",
        })
    return out


def _rate_from_payment(principal: Decimal, payment: Decimal, n: int) -> Decimal:
    """The nominal APR at which ``payment`` × ``n`` repays ``principal`` (bisection)."""
    low, high = Decimal("0"), Decimal("3")
    if payment * n <= principal:
        return Decimal("0.0000")
    for _ in range(60):
        mid = (low + high) / 2
        if annuity(principal, mid, n) > payment:
            high = mid
        else:
            low = mid
    return low.quantize(Decimal("0.0001"))


def _clauses(product: Product, apr: Decimal, fees: dict[str, int], prod: dict[str, Any]) -> list[dict[str, str]]:
    clauses = []
    if product in LENDING:
        clauses.append({"code": "interest", "text_zh": f"借款年利率（单利）为 {apr * 100:.2f}%。",
                        "text_en": f"Nominal interest rate {apr * 100:.2f}% a year."})
        clauses.append({"code": "late_fee",
                        "text_zh": f"逾期的，按当期应还金额的 {Decimal(prod['late_fee_rate']) * 100:.0f}% 收取违约金，"
                                   f"单期不超过 {fen_to_yuan(prod['late_fee_max_fen'])} 元；罚息按合同利率上浮 50%。",
                        "text_en": f"Late fee {Decimal(prod['late_fee_rate']) * 100:.0f}% of the overdue instalment, "
                                   f"at most CNY {fen_to_yuan(prod['late_fee_max_fen'])}; penalty interest at 1.5x the rate."})
    for kind, amount in sorted(fees.items()):
        zh, en = FEE_NAMES[kind]
        clauses.append({"code": kind, "text_zh": f"每期收取{zh} {fen_to_yuan(amount)} 元。",
                        "text_en": f"{en.capitalize()} of CNY {fen_to_yuan(amount)} per instalment."})
    return clauses


def _contacts(out: CoreRecords, acc: str, customer_id: str, claims: Claims, as_of: datetime,
              rng: random.Random, overdue: bool) -> None:
    collection_claims = [c for c in claims.codes if c.startswith("collection_")]
    if not overdue and not collection_claims:
        return
    if collection_claims and draw(customer_id, "collection_log") == "not_found":
        return  # the agency's log for the period was never returned to the institution
    case = {c: ("confirmed" if draw(customer_id, c) == "confirmed" else "contradicted") for c in collection_claims}
    heavy = case.get("collection_frequency") == "confirmed"
    per_day_claimed = min(claims.contacts_per_day or rng.choice([8, 12, 20]), 40)
    seq = 0

    def contact(at: datetime, party: str = "debtor", relation: str = "本人", disclosed: bool = False,
                flags: list[str] | None = None) -> None:
        nonlocal seq
        seq += 1
        out.collection_contacts.append({
            "_id": f"CC-{acc}-{seq:04d}", "account_id": acc, "at": at.astimezone(TZ).astimezone(ZoneInfo("UTC")),
            "party": party, "relation_zh": relation, "channel": "call" if seq % 4 else "sms",
            "agency": "委外催收机构 A" if heavy else "本机构催收中心", "disclosed_debt": disclosed,
            "qa_reviewed": True, "qa_flags": flags or [], "recording_ref": f"REC-{acc}-{seq:04d}",
        })

    for day in range(14, 0, -1):
        date = as_of - timedelta(days=day)
        count = per_day_claimed if heavy and day in (2, 3, 5, 8) else rng.choice([0, 1, 1, 2])
        for i in range(count):
            hour = 9 + (i * 11 // max(count, 1))
            contact(date.replace(hour=min(hour, 20), minute=rng.randint(0, 59)))
    if case.get("collection_off_hours") == "confirmed":
        for day, (h, m) in zip((3, 6, 9), ((22, 40), (23, 15), (6, 50)), strict=True):
            contact((as_of - timedelta(days=day)).replace(hour=h, minute=m))
    if "collection_third_party" in case:
        if case["collection_third_party"] == "confirmed":
            for day, rel in zip((2, 4, 7), ("母亲", "同事", "单位领导"), strict=True):
                contact((as_of - timedelta(days=day)).replace(hour=15), party="third_party", relation=rel, disclosed=True)
        else:
            contact((as_of - timedelta(days=6)).replace(hour=11), party="emergency_contact", relation="紧急联系人")
    if case.get("collection_abuse") == "confirmed":
        contact((as_of - timedelta(days=2)).replace(hour=16, minute=5), flags=["threat", "insult"])


def _service(out: CoreRecords, customer_id: str, claims: Claims, as_of: datetime, rng: random.Random) -> None:
    topics = [c for c in ("service_failure", "hardship_refused") if claims.has(c)]
    for topic in topics:
        case = draw(customer_id, topic)
        if case == "not_found":
            continue
        times = 5 if case == "confirmed" else 2
        for i in range(times):
            at = (as_of - timedelta(days=3 + i * 4)).replace(hour=10 + i)
            out.service_interactions.append({
                "_id": f"SI-{customer_id}-{topic}-{i}", "customer_id": customer_id, "at": at,
                "channel": rng.choice(["hotline", "app_chat"]), "topic": topic,
                "outcome": ("unresolved" if case == "confirmed" else
                            "resolved" if i == times - 1 else "callback_made"),
                "callback_promised_hours": 72,
                "callback_made": case != "confirmed",
                "plan_offered": topic == "hardship_refused" and case == "contradicted",
            })


class SimulatedCoreSystems:
    """The ``RecordsStore`` adapter of Parley's stand-in core systems.

    A customer seen for the first time gets records generated from the complaint
    (``synthesize``, deterministic), stored once, and returned in their stored form; a customer
    already in ``backing`` gets what is stored there (the first records stored win). Several
    requests for one customer in a batch: the first (in batch order) shapes new records.

    Write first, read only what was already there: records are generated for every requested
    customer and inserted in bulk; only customers whose insert met a duplicate are read back.
    So a batch of new customers costs no read (on FerretDB's PostgreSQL backend a read by
    ``_id`` is a scan unless the stack's GIN index serves it); a returning customer costs a
    generation and a read.
    """

    def __init__(self, backing: RecordsBacking) -> None:
        self.backing = backing

    async def load_many(self, requests: Sequence[RecordsRequest]) -> dict[str, CoreRecords]:
        first: dict[str, RecordsRequest] = {}
        for r in requests:
            first.setdefault(r.customer_id, r)
        if not first:
            return {}
        made = {cid: normalise(synthesize(customer_id=cid, case_id=r.case_id, claims=read_claims(r.text),
                                          product=r.product, received_at=r.received_at))
                for cid, r in first.items()}
        already = await self.backing.store_many(list(made.values()))
        found = {cid: rec for cid, rec in made.items() if cid not in already}
        if already:
            found.update(await self.backing.load_many([first[cid] for cid in already]))
        return found
