"""shared.money: one rounding rule (half up to the fen), exact parsing, display."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.contracts.common import Language
from shared.money import (
    MoneyError,
    fen_to_yuan,
    format_yuan,
    parse_decimal,
    round_fen,
    to_yuan,
    yuan_to_fen,
)


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        ("0", 0),
        ("0.01", 1),
        ("12.345", 1235),  # half up, not banker's rounding (which would give 1234)
        ("12.325", 1233),  # banker's rounding would give 1232
        ("12.344", 1234),
        ("0.005", 1),
        ("-0.005", -1),  # half away from zero
        ("1234.5", 123450),
        (Decimal("99999999.999"), 10000000000),
        (7, 700),
        (" 3.10 ", 310),
    ],
)
def test_yuan_to_fen_rounds_half_up(value: object, fen: int) -> None:
    assert yuan_to_fen(value) == fen  # type: ignore[arg-type]


def test_the_three_old_converters_now_agree() -> None:
    # intake truncated (int(amount * 100)), investigation and negotiation rounded half up:
    # "19.999" was 1999 fen in intake and 2000 elsewhere; now it is 2000 everywhere.
    assert yuan_to_fen("19.999") == 2000
    assert yuan_to_fen(Decimal("0.015")) == 2


def test_fen_to_yuan_is_exact_and_two_places() -> None:
    assert fen_to_yuan(123450) == Decimal("1234.50")
    assert str(fen_to_yuan(123450)) == "1234.50"
    assert str(fen_to_yuan(0)) == "0.00"
    assert str(fen_to_yuan(-5)) == "-0.05"
    for fen in (0, 1, 99, 100, 123456789, -42):
        assert yuan_to_fen(fen_to_yuan(fen)) == fen


def test_to_yuan_rounds_to_the_fen() -> None:
    assert to_yuan("2.675") == Decimal("2.68")  # a float would say 2.67
    assert str(to_yuan(5)) == "5.00"


def test_round_fen_rounds_computed_fen_half_up() -> None:
    assert round_fen(Decimal("1234.5")) == 1235
    assert round_fen(Decimal("1234.4999")) == 1234
    assert round_fen(Decimal("-0.5")) == -1


@pytest.mark.parametrize("bad", [1.5, 0.1, float("nan"), True])
def test_floats_and_bools_are_refused(bad: object) -> None:
    for convert in (yuan_to_fen, to_yuan, parse_decimal, round_fen, format_yuan):
        with pytest.raises(MoneyError, match="str, Decimal or int"):
            convert(bad)  # type: ignore[operator]


def test_float_error_says_why() -> None:
    with pytest.raises(MoneyError, match="float cannot hold an amount exactly"):
        yuan_to_fen(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["NaN", "inf", "-Infinity", Decimal("NaN"), Decimal("Infinity"), "sNaN"])
def test_nan_and_infinity_are_refused(bad: str | Decimal) -> None:
    with pytest.raises(MoneyError, match="finite"):
        yuan_to_fen(bad)


@pytest.mark.parametrize("bad", ["", "abc", "1,234.50", "¥5", "1.2.3"])
def test_text_that_is_not_a_decimal_is_refused(bad: str) -> None:
    with pytest.raises(MoneyError, match="not a decimal amount"):
        to_yuan(bad)


def test_fen_must_be_an_int() -> None:
    with pytest.raises(MoneyError):
        fen_to_yuan(Decimal("1"))  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        fen_to_yuan(True)


def test_money_error_is_a_value_error() -> None:
    assert issubclass(MoneyError, ValueError)


def test_format_matches_what_the_services_print() -> None:
    assert format_yuan(Decimal("1234.5")) == "1234.50 元"
    assert format_yuan(Decimal("1234.5"), "en") == "CNY 1234.50"
    assert format_yuan("1234.5", "zh-CN", grouping=True) == "1,234.50 元"
    assert format_yuan("1234.5", "en", grouping=True) == "CNY 1,234.50"
    assert format_yuan("1234.5", grouping=True, symbol=True) == "¥1,234.50"
    assert format_yuan("1234567.891", "en", symbol=True, grouping=True) == "¥1,234,567.89"
    assert format_yuan("-5", symbol=True) == "-¥5.00"
    assert format_yuan("-5", "en") == "CNY -5.00"
    assert format_yuan("-0.001") == "0.00 元"
    assert format_yuan(fen_to_yuan(20000), "zh") == "200.00 元"


def test_format_takes_the_contracts_language() -> None:
    assert format_yuan("5", Language.ZH_CN) == "5.00 元"
    assert format_yuan("5", Language.EN) == "CNY 5.00"


def test_format_refuses_an_unknown_language() -> None:
    with pytest.raises(ValueError, match="unknown language"):
        format_yuan("1", "fr")
