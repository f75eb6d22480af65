"""Intake's rules: deadline, priority, language, case numbers, placement and new facts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.intake import rules
from services.intake.rules import CaseSummary, Facts, PriorityInputs, Role
from shared.contracts.common import Channel, Language, Priority, Product

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def test_deadline_is_the_end_of_beijing_day_d_plus_15_shown_as_that_day() -> None:
    received = datetime(2026, 11, 29, 17, 30, tzinfo=UTC)  # 30 Nov 01:30 in Beijing: D = 30 Nov
    deadline = rules.decision_deadline(received, 15)
    # D + 15 = Tue 15 Dec 2026, a working day: due at 24:00 Beijing that day
    assert deadline.due_date == date(2026, 12, 15) and not deadline.rolled_over and not deadline.provisional
    assert deadline.due_at == datetime(2026, 12, 15, 23, 59, 59, 999999, tzinfo=SHANGHAI)
    assert deadline.due_at != received + timedelta(days=15)  # not 15 x 24 h as a UTC instant
    assert rules.deadline_date_text(deadline.due_at, Language.ZH_CN) == "2026年12月15日"
    assert rules.deadline_date_text(deadline.due_at, Language.EN) == "15 December 2026"
    # the same day when the instant is read in UTC (15:59:59 UTC on 15 Dec)
    assert rules.deadline_date_text(deadline.due_at.astimezone(UTC), Language.EN) == "15 December 2026"


def test_deadline_rolls_over_rest_days_and_says_when_it_is_provisional() -> None:
    # received 2 Feb 2026 (Beijing): D + 15 = 17 Feb, in the Spring Festival holiday → Tue 24 Feb
    spring = rules.decision_deadline(datetime(2026, 2, 2, 1, 0, tzinfo=UTC), 15)
    assert spring.due_date == date(2026, 2, 24) and spring.rolled_over
    # 23:30 Beijing on 31 Jan 2026 is still D = 31 Jan: D + 15 = Sun 15 Feb (a rest day) → 24 Feb
    assert rules.decision_deadline(datetime(2026, 1, 31, 15, 30, tzinfo=UTC), 15).due_date == date(2026, 2, 24)
    # a year the holiday package does not cover: weekends only, provisional
    late = rules.decision_deadline(datetime(2031, 9, 16, 2, 0, tzinfo=UTC), 15)
    assert late.due_date == date(2031, 10, 1) and late.provisional


def test_case_number_day_is_the_shanghai_day() -> None:
    late_utc = datetime(2026, 11, 28, 16, 30, tzinfo=UTC)  # already 29 Nov in Shanghai
    assert rules.case_number_day(late_utc, SHANGHAI) == "20261129"
    assert rules.case_number("TS", "20261129", 123) == "TS-20261129-000123"
    with pytest.raises(ValueError):
        rules.case_number("TS", "20261129", 1_000_000)


def test_language_detection() -> None:
    assert rules.detect_language("催收电话太多了") is Language.ZH_CN
    assert rules.detect_language("They charged me a late fee twice.") is Language.EN
    assert rules.detect_language("我的 Visa 卡 被盗刷了 XXXX 元") is Language.ZH_CN


def priority(**kw: object) -> tuple[Priority, list[str]]:
    base: dict[str, object] = {"channel": Channel.APP, "product": Product.CONSUMER_LOAN, "text": "费用不合理"}
    base.update(kw)
    return rules.assess_priority(PriorityInputs(**base))  # type: ignore[arg-type]


def test_priority_rules() -> None:
    assert priority()[0] is Priority.NORMAL
    assert priority(channel=Channel.REGULATOR_TRANSFER) == (Priority.HIGH, ["regulator_transfer"])
    assert priority(amount_disputed=Decimal("80000"), text="我母亲是老人，被骗了")[0] is Priority.HIGH
    assert priority(channel=Channel.REGULATOR_TRANSFER, amount_disputed=Decimal("60000"))[0] is Priority.URGENT
    assert priority(text="再这样催收我就不想活了") == (Priority.URGENT, ["self_harm_words"])
    assert priority(text="I am unemployed and have cancer", amount_disputed=Decimal("20000"))[0] is Priority.HIGH
    assert priority(amount_disputed=Decimal("35"))[0] is Priority.LOW
    assert priority(product=Product.WEALTH)[0] is Priority.NORMAL
    assert "product_wealth" in priority(product=Product.WEALTH)[1]
    assert rules.higher_priority(Priority.LOW, Priority.HIGH) is Priority.HIGH


def case(n: int, status: str = "open", product: Product = Product.CREDIT_CARD, *, days_ago: int = 1,
         matter: str | None = None, closed_days_ago: int | None = None) -> CaseSummary:
    return CaseSummary(
        case_id=f"case-{n}", case_number=f"TS-20261101-{n:06d}", status=status, product=product,
        matter_ref=matter, last_received_at=T0 - timedelta(days=days_ago),
        closed_at=None if closed_days_ago is None else T0 - timedelta(days=closed_days_ago),
    )


def place(cases: list[CaseSummary], *, product: Product = Product.CREDIT_CARD, matter: str | None = None,
          about: str | None = None, window: int = 30, repeat: int = 365) -> rules.Placement:
    return rules.place_complaint(
        received_at=T0, product=product, matter_ref=matter, about_case_number=about, cases=cases,
        duplicate_window=timedelta(days=window), repeat_window=timedelta(days=repeat),
    )


def test_same_matter_within_window_joins_the_open_case() -> None:
    placement = place([case(1, days_ago=10)])
    assert placement.role is Role.LINKED and placement.case and placement.case.case_id == "case-1"


def test_outside_window_or_other_matter_opens_a_new_case() -> None:
    assert place([case(1, days_ago=31)]).role is Role.NEW_CASE
    assert place([case(1, days_ago=31)], window=45).role is Role.LINKED
    assert place([case(1)], product=Product.CONSUMER_LOAN).role is Role.NEW_CASE
    assert place([case(1, matter="CARD-1")], matter="CARD-2").role is Role.NEW_CASE
    assert place([case(1, matter="CARD-1")], matter="CARD-1").role is Role.LINKED


def test_closed_case_makes_a_repeat() -> None:
    placement = place([case(1, status="closed", days_ago=100, closed_days_ago=60)])
    assert placement.role is Role.REPEAT and placement.case and placement.case.case_id == "case-1"
    assert place([case(1, status="closed", days_ago=500, closed_days_ago=400)]).role is Role.NEW_CASE


def test_open_case_wins_over_closed_and_a_named_case_wins_over_all() -> None:
    cases = [case(1, status="closed", closed_days_ago=5), case(2, days_ago=3)]
    assert place(cases).case.case_id == "case-2"  # type: ignore[union-attr]
    named = place(cases, about="TS-20261101-000001", product=Product.INSURANCE)
    assert named.role is Role.REPEAT and named.case.case_id == "case-1"  # type: ignore[union-attr]


def test_new_facts() -> None:
    first = Facts("催收人员每天打二十多个电话骚扰我的家人", Decimal("500"), frozenset({"a.png"}))
    same, why = rules.new_facts(Facts("催收人员每天打二十多个电话骚扰我家人", Decimal("500")), [first], threshold=0.5)
    assert not same and why == []
    assert rules.new_facts(Facts("x", None, frozenset({"b.png"})), [first], threshold=0.0)[1] == ["new_attachments"]
    assert "new_amount" in rules.new_facts(Facts(first.text, Decimal("900")), [first], threshold=0.5)[1]
    different = Facts("他们还把我的逾期信息上报了征信，可是我已经还清了", None)
    assert rules.new_facts(different, [first], threshold=0.5) == (True, ["different_account_of_events"])
    assert rules.new_facts(different, [first], threshold=0.5, declared=False) == (False, ["declared_by_channel"])
