"""shared.clock's business calendar: the regulatory deadline to the day (docs/clock.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import holidays
import pytest

from shared.clock import (
    TIERS,
    Deadline,
    add_pause,
    beijing_day,
    calendar_covers,
    due,
    end_of_day,
    is_working_day,
    next_working_day,
)

ROOT = Path(__file__).resolve().parents[3]
BJ = timezone(timedelta(hours=8))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_national_day_2025_received_the_day_before_is_due_on_day_15() -> None:
    # D = 30 Sep 2025; D+15 = Wed 15 Oct 2025, a working day (the holiday was 1-8 Oct).
    deadline = due(at("2025-09-30T10:00:00+08:00"), 15)
    assert deadline == Deadline(
        received_on=date(2025, 9, 30), tier_days=15, counted_to=date(2025, 10, 15),
        due_date=date(2025, 10, 15), due_at=datetime(2025, 10, 15, 23, 59, 59, 999_999, tzinfo=BJ),
        rolled_over=False, provisional=False,
    )
    assert deadline.due_at.isoformat() == "2025-10-15T23:59:59.999999+08:00"


def test_the_package_knows_the_2025_national_day_schedule() -> None:
    assert [is_working_day(date(2025, 10, d)) for d in range(1, 9)] == [False] * 8
    assert is_working_day(date(2025, 9, 28))  # Sunday, adjusted working day (调休)
    assert is_working_day(date(2025, 10, 11))  # Saturday, adjusted working day
    assert not is_working_day(date(2025, 10, 12))  # an ordinary Sunday
    assert is_working_day(date(2025, 10, 9))


def test_a_due_day_in_the_2026_spring_festival_rolls_to_the_first_working_day_after_it() -> None:
    # D = 2 Feb 2026; D+15 = Tue 17 Feb 2026, inside the holiday of 15-23 Feb.
    deadline = due(at("2026-02-02T09:00:00+08:00"), 15)
    assert deadline.counted_to == date(2026, 2, 17)
    assert (deadline.due_date, deadline.rolled_over, deadline.provisional) == (date(2026, 2, 24), True, False)
    assert deadline.due_at == end_of_day(date(2026, 2, 24))


def test_a_due_day_on_an_adjusted_working_saturday_does_not_roll() -> None:
    # D = 30 Jan 2026; D+15 = Sat 14 Feb 2026, worked before the Spring Festival (调休).
    deadline = due(at("2026-01-30T16:00:00+08:00"), 15)
    assert date(2026, 2, 14).weekday() == 5
    assert (deadline.due_date, deadline.rolled_over) == (date(2026, 2, 14), False)
    # and an ordinary weekend does roll: D+15 = Sat 7 Feb 2026 -> Mon 9 Feb
    weekend = due(at("2026-01-23T16:00:00+08:00"), 15)
    assert (weekend.counted_to, weekend.due_date, weekend.rolled_over) == (date(2026, 2, 7), date(2026, 2, 9), True)


def test_the_day_of_receipt_is_beijings_even_when_given_as_utc() -> None:
    late = due(at("2026-03-10T15:30:00+00:00"), 15)  # 23:30 Beijing on 10 Mar
    early = due(at("2026-03-10T16:30:00Z"), 15)  # 00:30 Beijing on 11 Mar
    assert (late.received_on, late.due_date) == (date(2026, 3, 10), date(2026, 3, 25))
    assert (early.received_on, early.due_date) == (date(2026, 3, 11), date(2026, 3, 26))
    # the same instants in any offset give the same answer
    assert due(at("2026-03-10T23:30:00+08:00"), 15) == late
    assert due(at("2026-03-10T09:30:00-07:00"), 15) == early
    assert beijing_day(at("2026-03-10T16:00:00+00:00")) == date(2026, 3, 11)


def test_tiers_30_and_60_count_from_receipt() -> None:
    received = at("2025-09-30T10:00:00+08:00")
    # D+30 = Thu 30 Oct 2025
    assert (due(received, 30).due_date, due(received, 30).rolled_over) == (date(2025, 10, 30), False)
    # D+60 = Sat 29 Nov 2025 -> Mon 1 Dec 2025
    sixty = due(received, 60)
    assert (sixty.counted_to, sixty.due_date, sixty.rolled_over) == (date(2025, 11, 29), date(2025, 12, 1), True)
    # D = 1 Sep 2026; D+30 = Thu 1 Oct 2026, National Day (1-7 Oct) -> Thu 8 Oct 2026
    national = due(at("2026-09-01T12:00:00+08:00"), 30)
    assert (national.due_date, national.rolled_over) == (date(2026, 10, 8), True)
    assert TIERS == (15, 30, 60)


def test_only_the_three_tiers_and_aware_instants() -> None:
    for tier in (0, 14, 45, True):
        with pytest.raises(ValueError, match="tier_days"):
            due(at("2026-03-10T10:00:00+08:00"), tier)
    with pytest.raises(ValueError, match="naive"):
        due(datetime(2026, 3, 10, 10), 15)  # noqa: DTZ001 - the point of the test
    with pytest.raises(TypeError):
        is_working_day(at("2026-03-10T10:00:00+08:00"))


def test_a_year_the_package_does_not_cover_is_provisional_with_weekends_only() -> None:
    assert calendar_covers(date(2026, 12, 31)) and not calendar_covers(date(2031, 1, 1))
    # 1 Oct 2031 would be National Day; uncovered, so only weekends rest: Wed 1 Oct 2031 works.
    deadline = due(at("2031-09-16T10:00:00+08:00"), 15)
    assert (deadline.due_date, deadline.rolled_over, deadline.provisional) == (date(2031, 10, 1), False, True)
    weekend = due(at("2031-03-07T10:00:00+08:00"), 15)  # D+15 = Sat 22 Mar 2031 -> Mon 24 Mar
    assert (weekend.due_date, weekend.rolled_over, weekend.provisional) == (date(2031, 3, 24), True, True)
    # a due day inside a covered year that rolls into an uncovered one is provisional too
    assert next_working_day(date(2026, 12, 31)) == (date(2026, 12, 31), False)
    assert due(at("2026-11-20T10:00:00+08:00"), 15).provisional is False  # 5 Dec 2026 -> Mon 7 Dec


def test_a_pause_moves_the_deadline_by_the_paused_days_and_rolls_again() -> None:
    deadline = due(at("2026-03-02T10:00:00+08:00"), 15)  # due Tue 17 Mar 2026
    assert deadline.due_date == date(2026, 3, 17)
    # paused on 5 Mar (counts), resumed on 9 Mar (does not): 4 days gained -> Sat 21 Mar -> Mon 23 Mar
    paused = add_pause(deadline, at("2026-03-05T15:00:00+08:00"), at("2026-03-09T09:00:00+08:00"))
    assert (paused.paused_days, paused.counted_to, paused.due_date, paused.rolled_over) == (
        4, date(2026, 3, 21), date(2026, 3, 23), True)
    # a pause within one day moves nothing; pauses add up
    assert add_pause(deadline, at("2026-03-05T09:00:00+08:00"), at("2026-03-05T17:00:00+08:00")) == deadline
    twice = add_pause(paused, at("2026-03-10T10:00:00+08:00"), at("2026-03-11T10:00:00+08:00"))
    assert (twice.paused_days, twice.counted_to, twice.due_date) == (5, date(2026, 3, 22), date(2026, 3, 23))
    # new facts restart the clock: a restart is a new receipt
    assert due(at("2026-03-09T10:00:00+08:00"), 15).due_date == date(2026, 3, 24)


def test_a_pause_is_refused_when_it_makes_no_sense() -> None:
    deadline = due(at("2026-03-02T10:00:00+08:00"), 15)
    with pytest.raises(ValueError, match="end before"):
        add_pause(deadline, at("2026-03-06T10:00:00+08:00"), at("2026-03-05T10:00:00+08:00"))
    with pytest.raises(ValueError, match="before the complaint"):
        add_pause(deadline, at("2026-03-01T10:00:00+08:00"), at("2026-03-05T10:00:00+08:00"))
    with pytest.raises(ValueError, match="already past"):
        add_pause(deadline, at("2026-03-18T00:00:00+08:00"), at("2026-03-20T10:00:00+08:00"))


def test_a_deadline_ends_at_beijing_midnight() -> None:
    deadline = due(at("2025-09-30T10:00:00+08:00"), 15)
    assert not deadline.is_past(at("2025-10-15T23:59:59.999999+08:00"))
    assert not deadline.is_past(at("2025-10-15T15:59:59+00:00"))
    assert deadline.is_past(at("2025-10-16T00:00:00+08:00"))
    assert deadline.is_past(datetime(2025, 10, 15, 16, 0, tzinfo=UTC))


@pytest.mark.parametrize("year", [2025, 2026])
def test_chinesecalendar_agrees_with_holidays_china(year: int) -> None:
    """The source (chinesecalendar) and the second package (holidays.China) agree on every
    day of the years both know; a disagreement means one of them has a wrong schedule."""
    other = holidays.China(years=year)
    day, disagree = date(year, 1, 1), []
    while day.year == year:
        if is_working_day(day) != other.is_working_day(day):
            disagree.append(day.isoformat())
        day += timedelta(days=1)
    assert not disagree


def run_cli(text: str) -> tuple[int, list[dict[str, object]]]:
    proc = subprocess.run(
        [sys.executable, "-m", "shared.clock"], input=text, capture_output=True, text=True,
        cwd=ROOT, timeout=60, check=False,
    )
    assert proc.stderr == ""
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def test_the_command_answers_each_line_and_names_the_bad_field() -> None:
    lines = [
        '{"received_at": "2025-09-30T10:00:00+08:00", "tier_days": 15}',
        '{"received_at": "2026-02-02T01:00:00Z", "tier_days": 15}',
        '{"received_at": "2025-09-30T10:00:00", "tier_days": 15}',
        '{"received_at": "2025-09-30T10:00:00+08:00", "tier_days": 20}',
        '{"tier_days": 30}',
        "not json",
        '{"received_at": "2031-09-16T10:00:00+08:00", "tier_days": 15}',
    ]
    code, out = run_cli("\n".join(lines) + "\n")
    assert code == 1
    assert len(out) == len(lines)
    assert out[0] == {"due_date": "2025-10-15", "due_at": "2025-10-15T23:59:59.999999+08:00",
                      "rolled_over": False, "provisional": False}
    assert out[1] == {"due_date": "2026-02-24", "due_at": "2026-02-24T23:59:59.999999+08:00",
                      "rolled_over": True, "provisional": False}
    assert (out[2]["field"], out[2]["line"]) == ("received_at", 3) and "offset" in str(out[2]["error"])
    assert (out[3]["field"], out[3]["line"]) == ("tier_days", 4)
    assert (out[4]["field"], out[4]["line"], out[4]["error"]) == ("received_at", 5, "missing")
    assert (out[5]["field"], out[5]["line"]) == (None, 6)
    assert out[6]["provisional"] is True and out[6]["due_date"] == "2031-10-01"


def test_the_command_exits_zero_when_every_line_is_good() -> None:
    code, out = run_cli('{"received_at": "2026-01-30T16:00:00+08:00", "tier_days": 60}\n')
    assert code == 0
    assert out == [{"due_date": "2026-03-31", "due_at": "2026-03-31T23:59:59.999999+08:00",
                    "rolled_over": False, "provisional": False}]
