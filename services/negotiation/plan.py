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
    """A computed plan and its totals."""

    amount: Decimal
    months: int
    annual_rate_pct: Decimal
    method: Method
    instalments: list[Instalment]

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
    """Compute an instalment schedule whose principal parts sum exactly to ``amount``."""
    amount = money(amount)
    if amount <= 0:
        raise PlanError("amount", "amount must be greater than 0")
    if not 1 <= months <= MAX_PLAN_MONTHS:
        raise PlanError("months", f"months must be between 1 and {MAX_PLAN_MONTHS}")
    if annual_rate_pct < 0 or annual_rate_pct > 36:
        raise PlanError("annual_rate_pct", "annual_rate_pct must be between 0 and 36")
    if amount < months * FEN:
        raise PlanError("months", "too many months for the amount: each instalment needs 0.01")
    with localcontext() as ctx:
        ctx.prec = 34
        rate = Decimal(annual_rate_pct) / Decimal(1200)
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
    return Plan(amount, months, Decimal(annual_rate_pct), method, rows)
