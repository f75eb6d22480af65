"""Money in CNY: parsing, yuan↔fen conversion with one rounding rule, and display.

The one rounding rule: **an amount is rounded to the fen (0.01 yuan) with ROUND_HALF_UP**
(四舍五入; .005 goes away from zero), the rule Chinese finance uses for amounts a customer
sees. Every conversion in this module uses it, and no other module should round money on
its own:

- ``to_yuan(value)`` parses an exact amount (``str``, ``Decimal`` or ``int`` yuan) and rounds
  it to the fen;
- ``yuan_to_fen(value)`` gives the integer fen that storage keeps (``*_fen`` fields, see
  docs/architecture.md's storage rules);
- ``fen_to_yuan(fen)`` gives the exact 2-dp ``Decimal`` back;
- ``round_fen(amount_in_fen)`` rounds a computed fractional number of fen (an interest or a
  fee worked out in fen) to whole fen.

Floats are refused everywhere (``MoneyError``), as are NaN, infinities and booleans: a binary
float cannot hold 0.10 exactly, and an amount that went through one is already wrong.

Display follows what the services print: zh-CN ``"1234.50 元"``, English ``"CNY 1234.50"``;
``grouping=True`` adds thousands separators (``"1,234.50 元"``) and ``symbol=True`` writes
the yuan sign (``"¥1,234.50"``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

__all__ = [
    "FEN",
    "ROUNDING",
    "MoneyError",
    "fen_to_yuan",
    "format_yuan",
    "parse_decimal",
    "round_fen",
    "to_yuan",
    "yuan_to_fen",
]

#: One fen as a quantum of yuan.
FEN: Final = Decimal("0.01")
#: The one rounding rule for money (四舍五入 to the fen).
ROUNDING: Final = ROUND_HALF_UP

MoneyInput = Decimal | int | str


class MoneyError(ValueError):
    """A value that is not an exact, finite amount of money."""


def parse_decimal(value: MoneyInput) -> Decimal:
    """Return ``value`` as an exact, finite ``Decimal`` without rounding it.

    Accepts a ``Decimal``, an ``int`` or a decimal string (surrounding blanks allowed,
    no thousands separators, no currency sign). Refuses floats, booleans, NaN and infinities.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        hint = ""
        if isinstance(value, float):
            hint = " (pass a str or Decimal: a float cannot hold an amount exactly)"
        raise MoneyError(f"money must be a str, Decimal or int, not {type(value).__name__}{hint}")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise MoneyError(f"not a decimal amount: {value!r}") from None
    else:
        number = Decimal(value)
    if not number.is_finite():
        raise MoneyError(f"money must be a finite amount, not {number}")
    return number


def to_yuan(value: MoneyInput) -> Decimal:
    """Return an amount in yuan rounded to the fen (ROUND_HALF_UP), e.g. ``Decimal("1234.50")``."""
    return parse_decimal(value).quantize(FEN, rounding=ROUNDING)


def yuan_to_fen(value: MoneyInput) -> int:
    """Return an amount in yuan as integer fen, rounded half up (``"12.345"`` → ``1235``)."""
    return int(to_yuan(value).scaleb(2))


def fen_to_yuan(fen: int) -> Decimal:
    """Return integer fen as an exact 2-dp amount in yuan (``123450`` → ``Decimal("1234.50")``)."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise MoneyError(f"fen must be an int, not {type(fen).__name__}")
    return Decimal(fen).scaleb(-2).quantize(FEN)


def round_fen(amount_in_fen: MoneyInput) -> int:
    """Return a computed (fractional) number of fen as whole fen, rounded half up."""
    return int(parse_decimal(amount_in_fen).quantize(Decimal(1), rounding=ROUNDING))


def format_yuan(
    value: MoneyInput,
    language: str = "zh-CN",
    *,
    grouping: bool = False,
    symbol: bool = False,
) -> str:
    """Return an amount for a person to read, rounded to the fen.

    ``"1234.50 元"`` (``"zh-CN"``/``"zh"``, or ``Language.ZH_CN``) or ``"CNY 1234.50"``
    (``"en"``), as the services print amounts;
    ``grouping`` adds thousands separators and ``symbol`` writes ``"¥1,234.50"`` in either
    language. A negative amount keeps its sign in front of the number (``"-¥5.00"``).
    """
    if language not in ("zh-CN", "zh", "en"):
        raise ValueError(f"unknown language {language!r}; expected 'zh-CN' or 'en'")
    amount = to_yuan(value)
    number = f"{abs(amount):,.2f}" if grouping else f"{abs(amount):.2f}"
    sign = "-" if amount < 0 else ""
    if symbol:
        return f"{sign}¥{number}"
    if language == "en":
        return f"CNY {sign}{number}"
    return f"{sign}{number} 元"
