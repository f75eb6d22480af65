"""shared.clock: the injectable clock and the one zone setting (PARLEY_TIMEZONE)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from shared.clock import (
    DEFAULT_TIMEZONE,
    Clock,
    FixedClock,
    ManualClock,
    SystemClock,
    as_utc,
    to_local,
    zone,
)
from shared.settings import CommonSettings

START = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def test_system_clock_is_aware_utc_and_moves() -> None:
    clock = SystemClock()
    first = clock.now()
    assert first.tzinfo is UTC
    assert abs(first - datetime.now(UTC)) < timedelta(seconds=5)
    assert clock() >= first
    assert isinstance(clock, Clock)


def test_manual_clock_stands_still_until_advanced() -> None:
    clock = ManualClock(START)
    assert clock.now() == clock.now() == clock() == START
    assert clock.advance(hours=1) == START + timedelta(hours=1)
    assert clock.advance(timedelta(days=1), minutes=30) == START + timedelta(days=1, hours=1, minutes=30)
    assert clock.now() == START + timedelta(days=1, hours=1, minutes=30)
    clock.set(START)
    assert clock.now() == START
    assert isinstance(clock, Clock)
    assert FixedClock is ManualClock


def test_manual_clock_keeps_utc_and_refuses_naive_and_going_back() -> None:
    beijing = datetime(2026, 11, 29, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    clock = ManualClock(beijing)
    assert clock.now() == START and clock.now().tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        ManualClock(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(seconds=-1)


def test_a_clock_fits_where_a_callable_is_expected() -> None:
    def stamp(now: Callable[[], datetime]) -> str:
        return now().isoformat()

    assert stamp(ManualClock(START)) == "2026-11-29T02:00:00+00:00"


def test_as_utc_and_to_local() -> None:
    plus8 = timezone(timedelta(hours=8))
    assert as_utc(datetime(2026, 11, 29, 10, tzinfo=plus8)) == START
    local = to_local(START)
    assert (local.hour, local.tzinfo) == (10, ZoneInfo(DEFAULT_TIMEZONE))
    assert to_local(START, "UTC").hour == 2
    with pytest.raises(ValueError, match="naive"):
        to_local(datetime(2026, 1, 1))  # noqa: DTZ001


def test_zone_names_an_unknown_zone_clearly() -> None:
    assert zone() == ZoneInfo("Asia/Shanghai")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")


def test_one_zone_setting_with_the_old_names_still_working(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.followup.settings import Settings as FollowupSettings
    from services.intake.settings import Settings as IntakeSettings
    from services.investigation.settings import Settings as InvestigationSettings

    for var in ("PARLEY_TIMEZONE", "PARLEY_INTAKE_TIMEZONE", "PARLEY_INVESTIGATION_TIMEZONE",
                "PARLEY_FOLLOWUP_TIMEZONE"):
        monkeypatch.delenv(var, raising=False)
    assert CommonSettings().timezone == DEFAULT_TIMEZONE
    assert CommonSettings().zone == ZoneInfo("Asia/Shanghai")

    monkeypatch.setenv("PARLEY_TIMEZONE", "Europe/Berlin")
    for settings in (CommonSettings(), IntakeSettings(), InvestigationSettings(), FollowupSettings()):
        assert settings.timezone == "Europe/Berlin", type(settings)

    monkeypatch.setenv("PARLEY_INVESTIGATION_TIMEZONE", "Asia/Tokyo")  # the older, per-service name
    assert InvestigationSettings().timezone == "Asia/Tokyo"
    assert IntakeSettings().timezone == "Europe/Berlin"
    assert InvestigationSettings(timezone="UTC").timezone == "UTC"

    monkeypatch.setenv("PARLEY_TIMEZONE", "Nowhere/Special")
    with pytest.raises(ValidationError, match="unknown time zone"):
        CommonSettings()
