"""Money arithmetic: exact decimals, and personalised instalment plans (个性化分期).

Every amount is a ``Decimal`` rounded to fen (2 dp) with ROUND_HALF_UP through ``shared.money``
(the one rounding rule); no float touches money. Two repayment methods are offered, both
common in Chinese consumer credit:

* ``annuity`` (等额本息, equal instalments): the payment ``P·r / (1 − (1+r)^−n)`` is rounded
  to fen once; each month's interest is ``round(balance · r)`` and the principal part is the
  payment minus the interest. The last instalment takes whatever principal is left, so the
  principal parts sum exactly to the amount and the last payment may differ by a few fen.
* ``equal_principal`` (等额本金): principal ``round(P / n)`` each month (residue in the last
  instalment), interest on the falling balance, so payments decrease.

With a rate of 0 (the usual hardship plan, 停息分期) both reduce to equal principal parts.
Due dates step by calendar month from the first due date and clamp to the month's end
(first due 31 Jan → 28/29 Feb → 31 Mar), always counted from the first date so a short
month never drags later dates back. Credit-card hardship plans may run up to 5 years
(《商业银行信用卡业务监督管理办法》 第七十条): at most 60 months.

Rules a plan must keep (each refusal a ``PlanError`` naming the field):

* **No zero instalments.** Rounding each part to fen can leave the last instalments of a
  small amount over a long term at 0.00 (1.00 over 36 months: 0.03 a month uses the
  amount up after 34). ``compute_plan`` then shortens the term to the longest one without a
  zero instalment and says so (``Plan.requested_months``, ``Plan.note_zh``/``note_en``).
* **Dates a calendar can hold.** A plan whose last due date would fall after year 9999 is
  refused (``first_due_date``), never a crash.
* **First due date in the future and within a year** (``check_first_due_date``): a date in
  the past (or today, Beijing time) would start the plan in arrears; one more than 12
  months ahead is a deferral, which is its own term.
* **Affordability** (``affordability``): from the customer's monthly income and expenses,
  the shortest term whose largest instalment fits what is left each month, and the longest
  term allowed (60 months) with its lowest instalment — and whether even that fits.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext
from typing import Literal

from shared.money import FEN, fen_to_yuan, to_yuan, yuan_to_fen

MAX_PLAN_MONTHS = 60

Method = Literal["annuity", "equal_principal"]


#: Round to fen, half up (``shared.money``'s one rule).
money = to_yuan
#: An amount as integer fen (how money is stored).
to_fen = yuan_to_fen
#: Integer fen as a 2-dp decimal.
from_fen = fen_to_yuan


def add_months(start: date, months: int) -> date:
    """Return ``start`` plus ``months`` calendar months, clamped to the end of the month."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Instalment:
    """One instalment of a plan."""

    number: int
    due_date: date
    principal: Decimal
    interest: Decimal
    payment: Decimal
    balance_after: Decimal


@dataclass(frozen=True)
class Plan:
    """A computed plan and its totals; ``requested_months`` differs from ``months`` when the
    term was shortened so that no instalment is 0.00 (the notes say so)."""

    amount: Decimal
    months: int
    annual_rate_pct: Decimal
    method: Method
    instalments: list[Instalment]
    requested_months: int = 0
    note_zh: str = ""
    note_en: str = ""

    @property
    def largest_payment(self) -> Decimal:
        """The largest instalment (what the customer must be able to pay each month)."""
        return max(i.payment for i in self.instalments)

    @property
    def total_interest(self) -> Decimal:
        return sum((i.interest for i in self.instalments), Decimal("0.00"))

    @property
    def total_payable(self) -> Decimal:
        return sum((i.payment for i in self.instalments), Decimal("0.00"))


class PlanError(ValueError):
    """Plan parameters that cannot make a plan; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def compute_plan(
    amount: Decimal,
    months: int,
    first_due_date: date,
    *,
    annual_rate_pct: Decimal = Decimal("0"),
    method: Method = "annuity",
) -> Plan:
    """Compute an instalment schedule whose principal parts sum exactly to ``amount``.

    When the requested term would hold an instalment of 0.00, the term is shortened to the
    longest one without (and the plan says so).
    """
    amount = money(amount)
    if amount <= 0:
        raise PlanError("amount", "amount must be greater than 0")
    if not 1 <= months <= MAX_PLAN_MONTHS:
        raise PlanError("months", f"months must be between 1 and {MAX_PLAN_MONTHS}")
    if annual_rate_pct < 0 or annual_rate_pct > 36:
        raise PlanError("annual_rate_pct", "annual_rate_pct must be between 0 and 36")
    try:
        add_months(first_due_date, months - 1)
    except ValueError:
        raise PlanError("first_due_date", "the plan would run past the year 9999; choose an earlier first due date") from None
    term = min(months, int(amount / FEN))  # every instalment needs at least 0.01
    while True:
        rows = _schedule(amount, term, first_due_date, Decimal(annual_rate_pct), method)
        if term == 1 or all(r.payment > 0 for r in rows):
            break
        term -= 1
    plan = Plan(amount, term, Decimal(annual_rate_pct), method, rows, requested_months=months)
    if term == months:
        return plan
    return Plan(
        amount, term, plan.annual_rate_pct, method, rows, requested_months=months,
        note_zh=f"按 {months} 期计算会出现 0.00 元的分期，期数缩短为 {term} 期。",
        note_en=f"{months} instalments would include instalments of 0.00; the term is shortened to {term} months.",
    )


def _schedule(amount: Decimal, months: int, first_due_date: date, annual_rate_pct: Decimal,
              method: Method) -> list[Instalment]:
    with localcontext() as ctx:
        ctx.prec = 34
        rate = annual_rate_pct / Decimal(1200)
        if method == "annuity" and rate > 0:
            payment = money(amount * rate / (1 - (1 + rate) ** -months))
        else:
            payment = None
        base_principal = money(amount / months)
        balance = amount
        rows: list[Instalment] = []
        for n in range(1, months + 1):
            interest = money(balance * rate)
            if n == months:
                principal = balance
            elif payment is not None:
                principal = min(payment - interest, balance)
            else:
                principal = min(base_principal, balance)
            balance = balance - principal
            rows.append(
                Instalment(
                    n, add_months(first_due_date, n - 1), principal, interest,
                    principal + interest, balance,
                )
            )
    return rows


def check_first_due_date(first_due_date: date, today: date) -> None:
    """Refuse a first due date that is not in the future (Beijing ``today``) or is more than
    12 months ahead; ``PlanError`` names ``first_due_date``."""
    if first_due_date <= today:
        raise PlanError("first_due_date", f"first_due_date must be after today ({today.isoformat()}, Beijing time)")
    latest = add_months(today, 12)
    if first_due_date > latest:
        raise PlanError(
            "first_due_date",
            f"first_due_date must be within a year (on or before {latest.isoformat()}); a later start is a deferral",
        )


@dataclass(frozen=True)
class Affordability:
    """What plan the customer can carry, from their monthly income and expenses."""

    disposable: Decimal
    fits: bool
    shortest_months: int | None
    shortest_instalment: Decimal | None
    longest_months: int
    lowest_instalment: Decimal
    explanation_zh: str
    explanation_en: str


def affordability(
    amount: Decimal, monthly_income: Decimal, monthly_expenses: Decimal, *, first_due_date: date,
    annual_rate_pct: Decimal = Decimal("0"), method: Method = "annuity",
) -> Affordability:
    """The shortest term whose largest instalment fits the customer's disposable income
    (income − expenses) and the longest allowed term (≤ 60 months) with its lowest
    instalment; ``fits`` is False when even that is more than the customer has left."""
    if monthly_income < 0:
        raise PlanError("monthly_income", "monthly_income cannot be negative")
    if monthly_expenses < 0:
        raise PlanError("monthly_expenses", "monthly_expenses cannot be negative")
    disposable = money(monthly_income - monthly_expenses)
    longest = compute_plan(amount, MAX_PLAN_MONTHS, first_due_date, annual_rate_pct=annual_rate_pct, method=method)
    lowest = longest.largest_payment
    shortest: Plan | None = None
    if disposable >= lowest:
        for months in range(1, MAX_PLAN_MONTHS + 1):
            candidate = compute_plan(amount, months, first_due_date, annual_rate_pct=annual_rate_pct, method=method)
            if candidate.largest_payment <= disposable:
                shortest = candidate
                break
    if shortest is None:
        zh = (f"客户每月可支配收入为 {disposable} 元，即使分 {longest.months} 期，每期最多也需 {lowest} 元，超出其负担能力；"
              "请考虑减免、延期或降低金额。")
        en = (f"The customer has CNY {disposable} a month left; even over {longest.months} months an instalment is up "
              f"to CNY {lowest}, more than they can pay. Consider a waiver, a deferral or a smaller amount.")
        return Affordability(disposable, False, None, None, longest.months, lowest, zh, en)
    zh = (f"客户每月可支配收入为 {disposable} 元：最短可分 {shortest.months} 期（每期最多 {shortest.largest_payment} 元），"
          f"最长 {longest.months} 期（每期最多 {lowest} 元）。")
    en = (f"The customer has CNY {disposable} a month left: the shortest plan that fits is {shortest.months} months "
          f"(up to CNY {shortest.largest_payment} an instalment), the longest {longest.months} months "
          f"(up to CNY {lowest}).")
    return Affordability(disposable, True, shortest.months, shortest.largest_payment, longest.months, lowest, zh, en)
