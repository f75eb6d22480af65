"""Facts computed from hand-made records: lateness, charges beyond the contract, APR, contacts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.investigation import facts
from services.investigation.facts import Rules, _root_bracket, compute, monthly_irr
from services.investigation.records import CoreRecords, add_months, annuity
from shared.money import to_yuan, yuan_to_fen

AS_OF = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
OPENED = datetime(2026, 4, 12, 2, 0, tzinfo=UTC)


def loan(apr: str = "0.18", principal: str = "12000", n: int = 12, *, disbursed: str | None = None,
         unpaid_from: int | None = None, fees: dict[str, int] | None = None) -> CoreRecords:
    """A loan opened six months before AS_OF, paid on time up to ``unpaid_from``."""
    p, rate = Decimal(principal), Decimal(apr)
    pay = to_yuan(annuity(p, rate, n))
    balance, rows = p, []
    for i in range(1, n + 1):
        interest = to_yuan(balance * rate / 12)
        part = pay - interest if i < n else balance
        balance -= part
        rows.append({"n": i, "due_at": add_months(OPENED, i), "principal_fen": yuan_to_fen(part),
                     "interest_fen": yuan_to_fen(interest), "amount_fen": yuan_to_fen(part + interest)})
    records = CoreRecords(
        accounts=[{"_id": "AC1", "customer_id": "c1", "product": "consumer_loan", "principal_fen": yuan_to_fen(p),
                   "disbursed_fen": yuan_to_fen(Decimal(disbursed or principal)), "status": "current", "credit_reporting": []}],
        contracts=[{"_id": "CT1", "account_id": "AC1", "nominal_apr": apr, "late_fee_rate": "0.05",
                    "late_fee_max_fen": 20000, "penalty_factor": "1.5", "early_settlement_rate": "0.03",
                    "fees_fen": fees or {}, "clauses": [], "signed_at": OPENED}],
        repayment_schedules=[{"_id": "AC1", "account_id": "AC1", "instalments": rows}],
    )
    for row in rows:
        if row["due_at"] <= AS_OF and (unpaid_from is None or row["n"] < unpaid_from):
            records.payments.append({"_id": f"P{row['n']}", "account_id": "AC1", "instalment": row["n"],
                                     "paid_at": row["due_at"] - timedelta(days=1), "amount_fen": row["amount_fen"]})
    return records


def contact(at_local_hour: int, day: int, party: str = "debtor", **kw: Any) -> dict[str, Any]:
    at = datetime(2026, 10, day, at_local_hour - 8, 5, tzinfo=UTC) if at_local_hour >= 8 else \
        datetime(2026, 10, day - 1, at_local_hour + 16, 5, tzinfo=UTC)
    return {"_id": f"CC{day}-{at_local_hour}-{party}-{kw.get('n', 0)}", "account_id": "AC1", "at": at, "party": party,
            "disclosed_debt": kw.get("disclosed", False), "qa_flags": kw.get("flags", [])}


def test_irr_of_a_plain_annuity_is_its_rate() -> None:
    flows = [Decimal(10000)] + [-annuity(Decimal(10000), Decimal("0.24"), 12)] * 12
    irr = monthly_irr(flows)
    assert irr is not None and abs(irr * 12 - Decimal("0.24")) < Decimal("0.0001")


def test_days_late_and_overdue_amount() -> None:
    records = loan(unpaid_from=5)  # instalments 5 (due 12 Sep) and 6 (due 12 Oct, 02:00 UTC) unpaid
    f = compute(records, rules=Rules(), as_of=AS_OF)
    assert f.overdue_instalments == 2
    assert f.days_late_current == (AS_OF - add_months(OPENED, 5)).days == 30
    assert f.overdue_amount == sum(Decimal(r["amount_fen"]) for r in records.repayment_schedules[0]["instalments"][4:6]) / 100


def test_apr_within_the_cap_is_no_breach() -> None:
    f = compute(loan("0.18"), rules=Rules(), as_of=AS_OF)
    assert f.apr is not None and abs(f.apr - Decimal("0.18")) < Decimal("0.002")
    assert f.cost_above_cap == 0
    assert not any(x.breach for x in f.items())


def test_upfront_deduction_lifts_the_apr_above_the_cap_and_counts_beyond_contract() -> None:
    records = loan("0.18", disbursed="10800")
    records.charges.append({"_id": "CH-up", "account_id": "AC1", "kind": "service_fee", "amount_fen": 120000,
                            "charged_at": OPENED, "deducted_at_disbursement": True})
    f = compute(records, rules=Rules(), as_of=AS_OF)
    assert f.apr is not None and f.apr > Decimal("0.36")  # 1,200 kept back on 12,000 over a year
    assert f.cost_above_cap > f.cost_above_hard_cap > 0
    assert f.beyond_contract == {"service_fee": Decimal("1200.00")}
    assert f.upfront_deducted == Decimal("1200.00")
    assert {"apr", "cost_above_rate_cap", "charges_beyond_contract", "upfront_deduction"} <= {x.code for x in f.items() if x.breach}


def test_the_rate_cap_is_configurable() -> None:
    records = loan("0.30")
    assert compute(records, rules=Rules(), as_of=AS_OF).cost_above_cap > 0
    relaxed = compute(records, rules=Rules(rate_cap_apr=Decimal("0.36")), as_of=AS_OF)
    assert relaxed.cost_above_cap == 0 and not any(x.breach for x in relaxed.items() if x.code == "apr")


def test_late_fee_above_the_contract_formula_is_flagged() -> None:
    records = loan(unpaid_from=6)
    row = records.repayment_schedules[0]["instalments"][5]
    allowed = int(Decimal(row["amount_fen"]) * Decimal("0.05"))
    records.charges += [
        {"_id": "L6", "account_id": "AC1", "kind": "late_fee", "instalment": 6, "amount_fen": allowed * 2,
         "charged_at": row["due_at"] + timedelta(days=1)},
        {"_id": "M1", "account_id": "AC1", "kind": "membership_fee", "amount_fen": 2990, "charged_at": row["due_at"]},
    ]
    f = compute(records, rules=Rules(), as_of=AS_OF)
    assert f.charged["late_fee"] == Decimal(allowed * 2) / 100
    exact_allowed = Decimal(row["amount_fen"]) * Decimal("0.05")  # 5 % of the instalment, in fen
    assert abs(f.beyond_contract["late_fee"] - (allowed * 2 - exact_allowed) / 100) <= Decimal("0.01")
    assert f.beyond_contract["membership_fee"] == Decimal("29.90")  # not in the contract at all
    in_contract = loan(unpaid_from=6, fees={"membership_fee": 2990})
    in_contract.charges = [records.charges[1]]
    assert compute(in_contract, rules=Rules(), as_of=AS_OF).beyond_contract == {}


def test_contacts_outside_hours_over_the_daily_limit_and_to_third_parties() -> None:
    records = loan()
    records.collection_contacts = [
        *[contact(10 + i, 9, n=i) for i in range(5)],   # five calls on 9 Oct
        contact(9, 10), contact(22, 10), contact(7, 11),  # one at 22:05, one at 07:05 local
        contact(15, 11, party="third_party", disclosed=True),
        contact(16, 11, party="emergency_contact"),
        contact(17, 11, flags=["threat"]),
    ]
    f = compute(records, rules=Rules(), as_of=AS_OF)
    assert f.contacts_off_hours == 2
    assert f.contacts_max_per_day == 5 and f.days_over_limit == 1
    assert f.third_party_contacts == 2 and f.third_party_disclosures == 1
    assert f.abusive_contacts == 1
    strict = compute(records, rules=Rules(max_contacts_per_day=6, contact_hours_start=7, contact_hours_end=23), as_of=AS_OF)
    assert strict.days_over_limit == 0 and strict.contacts_off_hours == 0


def test_the_float_bracket_leaves_the_irr_exactly_as_decimal_halving_finds_it(monkeypatch: Any) -> None:
    """Every midpoint's sign summed in Decimal (``_root_bracket`` off) is the reference: the
    bracket only skips sums whose sign it knows, so the halvings and the result are the same."""
    rng = random.Random(8)
    cases: list[list[Decimal]] = []
    for _ in range(1500):
        principal = Decimal(rng.choice([1000, 3000, 5000, 20000, 50000, 300000, 2000000])) * 100
        n = rng.choice([1, 2, 3, 6, 12, 24, 36, 45, 60])
        apr = Decimal(rng.choice(["0.000001", "0.01", "0.1", "0.18", "0.24", "0.3599", "0.36", "1.2", "5", "14"]))
        fee = Decimal(rng.choice([0, 0, 500, 1999, 30000]))
        received = principal - Decimal(rng.choice([0, 0, 100, principal // 10]))
        instalment = (annuity(principal, apr, n) + fee).quantize(Decimal(1))
        cases.append([received] + [-instalment] * n)
    cases += [
        [Decimal(10000), Decimal(-10001)],                   # a rate just above 0
        [Decimal(10000)] + [Decimal(-1)] * 3 + [Decimal(-9998)],
        [Decimal(100), Decimal(-500), Decimal(-500)],        # a root above 1: every halving goes up
        [Decimal(10000), Decimal(-6000), Decimal(3000), Decimal(-8000)],  # money back in the middle: no bracket
        [Decimal(10000), Decimal(0), Decimal(0), Decimal(-12000)],
    ]
    fast = [monthly_irr(flows) for flows in cases]
    bracketed = sum(_root_bracket(flows) is not None for flows in cases)
    monkeypatch.setattr(facts, "_root_bracket", lambda flows: None)
    for flows, irr in zip(cases, fast, strict=True):
        assert irr == monthly_irr(flows), flows[:3]
    assert bracketed > len(cases) * 0.9  # the shortcut is taken, not just the fallback
    assert _root_bracket([Decimal(10000), Decimal(-6000), Decimal(3000), Decimal(-8000)]) is None
