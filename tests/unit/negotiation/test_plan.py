"""Instalment plan arithmetic: exact sums, rounding residue in the last instalment, due dates."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import pytest

from services.negotiation.plan import (
    MAX_PLAN_MONTHS,
    PlanError,
    add_months,
    affordability,
    check_first_due_date,
    compute_plan,
    from_fen,
    money,
    to_fen,
)


def test_annuity_matches_the_textbook_payment() -> None:
    plan = compute_plan(Decimal("10000"), 12, date(2027, 1, 15), annual_rate_pct=Decimal("12"))
    payments = [i.payment for i in plan.instalments]
    assert payments[0] == Decimal("888.49")  # 10000·0.01/(1−1.01^−12) = 888.4879
    assert all(p == Decimal("888.49") for p in payments[:-1])
    assert plan.instalments[0].interest == Decimal("100.00")
    assert sum(i.principal for i in plan.instalments) == Decimal("10000.00")
    assert plan.total_payable == plan.total_interest + Decimal("10000.00")
    assert abs(payments[-1] - payments[0]) <= Decimal("0.12")


def test_equal_principal_has_falling_payments() -> None:
    plan = compute_plan(Decimal("1200"), 12, date(2027, 1, 1), annual_rate_pct=Decimal("6"),
                        method="equal_principal")
    assert [i.principal for i in plan.instalments] == [Decimal("100.00")] * 12
    assert plan.instalments[0].interest == Decimal("6.00")
    payments = [i.payment for i in plan.instalments]
    assert payments == sorted(payments, reverse=True)
    assert plan.total_interest == Decimal("39.00")  # 6% /12 on 1200, 1100, ..., 100


def test_interest_free_plan_puts_the_residue_in_the_last_instalment() -> None:
    plan = compute_plan(Decimal("1000"), 3, date(2027, 1, 31))
    assert [i.principal for i in plan.instalments] == [Decimal("333.33"), Decimal("333.33"), Decimal("333.34")]
    assert plan.total_interest == Decimal("0.00")


def test_due_dates_clamp_to_month_end_and_recover() -> None:
    plan = compute_plan(Decimal("600"), 6, date(2027, 1, 31))
    assert [i.due_date for i in plan.instalments] == [
        date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31),
        date(2027, 4, 30), date(2027, 5, 31), date(2027, 6, 30),
    ]
    assert add_months(date(2027, 12, 31), 2) == date(2028, 2, 29)  # leap year
    assert add_months(date(2027, 11, 15), 60) == date(2032, 11, 15)


@pytest.mark.parametrize("method", ["annuity", "equal_principal"])
def test_properties_hold_for_many_random_plans(method: str) -> None:
    rng = random.Random(7)
    for _ in range(400):
        amount = Decimal(rng.randint(100, 50_000_000)) / 100
        months = rng.randint(1, 60)
        rate = Decimal(rng.choice([0, 0, rng.randint(1, 3600)])) / 100
        start = date(2027, rng.randint(1, 12), rng.randint(1, 28) if rng.random() < 0.7 else 28)
        plan = compute_plan(amount, months, start, annual_rate_pct=rate, method=method)  # type: ignore[arg-type]
        rows = plan.instalments
        assert len(rows) == plan.months <= months
        assert all(r.payment > 0 for r in rows)  # never an instalment of 0.00
        assert plan.months == months or plan.note_en
        assert sum(r.principal for r in rows) == money(amount), (amount, months, rate)
        assert rows[-1].balance_after == 0
        assert all(r.payment == r.principal + r.interest for r in rows)
        assert all(r.principal >= 0 and r.interest >= 0 for r in rows)
        assert all(r.payment.as_tuple().exponent == -2 for r in rows)
        assert [r.number for r in rows] == list(range(1, months + 1))
        dates = [r.due_date for r in rows]
        assert dates == sorted(set(dates))
        assert plan.total_payable == money(amount) + plan.total_interest
        if method == "annuity" and rate > 0 and months > 1:
            first = rows[0].payment
            assert all(r.payment == first for r in rows[:-1])
            assert abs(rows[-1].payment - first) <= Decimal("0.01") * months


@pytest.mark.parametrize(
    ("amount", "months", "rate", "field"),
    [("0", 12, "0", "amount"), ("100", 0, "0", "months"), ("100", 61, "0", "months"),
     ("100", 12, "-1", "annual_rate_pct"), ("100", 12, "40", "annual_rate_pct")],
)
def test_bad_parameters_name_the_field(amount: str, months: int, rate: str, field: str) -> None:
    with pytest.raises(PlanError) as err:
        compute_plan(Decimal(amount), months, date(2027, 1, 1), annual_rate_pct=Decimal(rate))
    assert err.value.field == field


def test_fen_round_trip_is_exact() -> None:
    for text in ("0.00", "0.01", "1234.56", "999999999.99", "2.005"):
        value = money(Decimal(text))
        assert from_fen(to_fen(value)) == value
    assert money(Decimal("2.005")) == Decimal("2.01")  # ROUND_HALF_UP


def test_no_zero_instalments_the_term_is_shortened_and_says_so() -> None:
    plan = compute_plan(Decimal("1.00"), 36, date(2027, 1, 1))
    assert plan.requested_months == 36 and plan.months == 34
    assert all(r.payment > 0 for r in plan.instalments)
    assert sum(r.payment for r in plan.instalments) == Decimal("1.00")
    assert "34" in plan.note_zh and "shortened to 34 months" in plan.note_en
    tiny = compute_plan(Decimal("0.05"), 12, date(2027, 1, 1))
    assert tiny.months == 5 and [r.payment for r in tiny.instalments] == [Decimal("0.01")] * 5
    # a term that works is left alone, with no note
    fine = compute_plan(Decimal("1200"), 12, date(2027, 1, 1))
    assert fine.months == fine.requested_months == 12 and fine.note_en == ""


@pytest.mark.parametrize("first", [date(9999, 1, 31), date(9999, 12, 31), date(9995, 6, 1)])
def test_a_plan_past_the_year_9999_is_refused_naming_the_first_due_date(first: date) -> None:
    with pytest.raises(PlanError) as err:
        compute_plan(Decimal("1000"), 60, first)
    assert err.value.field == "first_due_date" and "9999" in str(err.value)


def test_the_first_due_date_is_in_the_future_and_within_a_year() -> None:
    today = date(2026, 11, 30)
    check_first_due_date(date(2026, 12, 1), today)
    check_first_due_date(date(2027, 11, 30), today)
    for bad in (date(2026, 11, 30), date(2026, 1, 1), date(2027, 12, 1), date(9999, 12, 31)):
        with pytest.raises(PlanError) as err:
            check_first_due_date(bad, today)
        assert err.value.field == "first_due_date"


def test_affordability_gives_the_shortest_and_the_longest_plan_that_fit() -> None:
    a = affordability(Decimal("12000"), Decimal("8000"), Decimal("7000"), first_due_date=date(2027, 1, 1))
    assert a.fits and a.disposable == Decimal("1000.00")
    assert (a.shortest_months, a.shortest_instalment) == (12, Decimal("1000.00"))
    assert (a.longest_months, a.lowest_instalment) == (MAX_PLAN_MONTHS, Decimal("200.00"))
    # with interest the shortest plan that fits is longer
    b = affordability(Decimal("12000"), Decimal("8000"), Decimal("7000"), first_due_date=date(2027, 1, 1),
                      annual_rate_pct=Decimal("12"))
    assert b.fits and b.shortest_months is not None and b.shortest_months > 12
    plan = compute_plan(Decimal("12000"), b.shortest_months, date(2027, 1, 1), annual_rate_pct=Decimal("12"))
    shorter = compute_plan(Decimal("12000"), b.shortest_months - 1, date(2027, 1, 1), annual_rate_pct=Decimal("12"))
    assert plan.largest_payment <= Decimal("1000") < shorter.largest_payment


def test_affordability_says_when_nothing_fits_and_refuses_negative_figures() -> None:
    a = affordability(Decimal("12000"), Decimal("5000"), Decimal("4900"), first_due_date=date(2027, 1, 1))
    assert not a.fits and a.shortest_months is None and a.lowest_instalment == Decimal("200.00")
    assert "超出其负担能力" in a.explanation_zh and "more than they can pay" in a.explanation_en
    broke = affordability(Decimal("500"), Decimal("3000"), Decimal("3500"), first_due_date=date(2027, 1, 1))
    assert not broke.fits and broke.disposable == Decimal("-500.00")
    with pytest.raises(PlanError) as err:
        affordability(Decimal("500"), Decimal("-1"), Decimal("0"), first_due_date=date(2027, 1, 1))
    assert err.value.field == "monthly_income"
