"""Day buckets (shared.buckets): Beijing days, the window, and when a sweep scans in full."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.buckets import Sweeper, aware, day_of, days_up_to


def test_a_day_is_the_beijing_calendar_day() -> None:
    assert day_of(datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC)) == "2026-12-31"
    assert day_of(datetime(2026, 12, 31, 16, 0, tzinfo=UTC)) == "2027-01-01"  # 00:00 in Beijing
    assert day_of(None) is None


def test_the_window_ends_on_the_day_asked_for_and_looks_back() -> None:
    days = days_up_to(datetime(2026, 3, 1, 16, 30, tzinfo=UTC), lookback_days=3)
    assert days == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
    assert len(days_up_to(datetime(2026, 3, 1, tzinfo=UTC))) == 15


def test_the_first_sweep_and_one_an_hour_scan_in_full() -> None:
    t = [0.0]
    sweeper = Sweeper(full_every_s=3600, monotonic=lambda: t[0])
    assert sweeper.full_scan_due() is True
    t[0] = 3599
    assert sweeper.full_scan_due() is False
    t[0] = 3600
    assert sweeper.full_scan_due() is True
    assert sweeper.full_scan_due() is False


def test_a_naive_stored_instant_is_read_as_utc() -> None:
    assert aware(datetime(2026, 1, 1, 8)) == datetime(2026, 1, 1, 8, tzinfo=UTC)  # noqa: DTZ001 - a naive one, on purpose
