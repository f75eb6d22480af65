"""shared.clock's accelerated clock and the process-wide clock every service reads."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared import clock as clock_module
from shared.clock import (
    AcceleratedClock,
    ManualClock,
    SystemClock,
    clock_from_env,
    current_clock,
    now,
    set_clock,
)
from shared.contracts.envelope import Envelope, utcnow

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


class FakeReal:
    """The machine's seconds since the epoch, moved by the test."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def _fresh_process_clock() -> Iterator[None]:
    set_clock(None)
    yield
    set_clock(None)


def test_accelerated_clock_runs_speed_times_faster_from_its_start() -> None:
    real = FakeReal()
    clock = AcceleratedClock(START, 8640, real=real)
    assert clock.now() == START
    real.t += 10  # ten real seconds = 86,400 simulated seconds
    assert clock.now() == START + timedelta(days=1)
    assert clock() == clock.now()
    assert clock.now().tzinfo is UTC
    assert clock.real_seconds(timedelta(days=30)) == pytest.approx(300)


def test_anchor_makes_two_clocks_agree() -> None:
    real = FakeReal(5_000.0)
    a = AcceleratedClock(START, 100, real_start=4_000.0, real=real)
    b = clock_from_env({**a.env()})
    assert isinstance(b, AcceleratedClock)
    assert (b.start, b.speed, b.real_start) == (a.start, a.speed, a.real_start)
    assert a.now() == START + timedelta(seconds=100_000)


def test_start_in_another_zone_is_kept_as_the_same_instant() -> None:
    clock = AcceleratedClock(datetime.fromisoformat("2026-03-02T09:00:00+08:00"), 2, real=FakeReal())
    assert clock.now() == START


@pytest.mark.parametrize("speed", [0, -1, float("nan")])
def test_speed_must_be_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        AcceleratedClock(START, speed)


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        AcceleratedClock(datetime(2026, 3, 2), 2)  # noqa: DTZ001 - naive on purpose


def test_environment_without_clock_settings_is_the_system_clock() -> None:
    assert isinstance(clock_from_env({}), SystemClock)
    assert isinstance(clock_from_env({"PARLEY_CLOCK_START": " ", "PARLEY_CLOCK_SPEED": ""}), SystemClock)


def test_environment_speed_alone_starts_now() -> None:
    clock = clock_from_env({"PARLEY_CLOCK_SPEED": "60"})
    assert isinstance(clock, AcceleratedClock)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(minutes=5)


@pytest.mark.parametrize(("env", "name"), [
    ({"PARLEY_CLOCK_START": "2026-03-02T09:00:00"}, "PARLEY_CLOCK_START"),  # no offset
    ({"PARLEY_CLOCK_START": "yesterday"}, "PARLEY_CLOCK_START"),
    ({"PARLEY_CLOCK_SPEED": "fast"}, "PARLEY_CLOCK_SPEED"),
    ({"PARLEY_CLOCK_SPEED": "0"}, "PARLEY_CLOCK_SPEED"),
    ({"PARLEY_CLOCK_SPEED": "2", "PARLEY_CLOCK_ANCHOR": "noon"}, "PARLEY_CLOCK_ANCHOR"),
])
def test_bad_environment_names_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        clock_from_env(env)


def test_process_clock_is_read_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_CLOCK_START", "2026-03-02T09:00:00+08:00")
    monkeypatch.setenv("PARLEY_CLOCK_SPEED", "1000")
    monkeypatch.setenv("PARLEY_CLOCK_ANCHOR", repr(time.time()))
    first = current_clock()
    assert isinstance(first, AcceleratedClock)
    assert current_clock() is first
    assert START <= now() < START + timedelta(days=2)


def test_utcnow_and_new_events_read_the_process_clock() -> None:
    manual = ManualClock(START)
    set_clock(manual)
    assert utcnow() == START
    env = Envelope[dict](event_type="complaint.registered", case_id="c1", correlation_id="c1", producer="test",
                         payload={"x": 1})
    assert env.occurred_at == START
    manual.advance(days=3)
    assert utcnow() == START + timedelta(days=3)
    set_clock(None)
    assert abs(utcnow() - datetime.now(UTC)) < timedelta(minutes=5)


def test_a_service_process_started_with_the_clock_env_sees_simulated_time() -> None:
    """What ``parley simulate`` relies on: the env given to a child process is its clock."""
    clock = AcceleratedClock(START, 3600)
    code = ("from shared.contracts.envelope import utcnow; "
            "from shared.contracts.intake import ComplaintSubmission as S; print(utcnow().isoformat())")
    out = subprocess.run([sys.executable, "-c", code], env={**_env(), **clock.env()}, capture_output=True,
                         text=True, timeout=120, check=True).stdout.strip()
    seen = datetime.fromisoformat(out)
    assert clock.now() - timedelta(days=2) < seen <= clock.now()
    assert seen < datetime.now(UTC) - timedelta(days=100)  # March 2026, not the machine's time


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_CLOCK_")}


def test_module_keeps_its_earlier_names() -> None:
    for name in ("Clock", "SystemClock", "ManualClock", "FixedClock", "as_utc", "to_local", "zone", "due",
                 "add_pause", "is_working_day", "beijing_day", "end_of_day", "next_working_day"):
        assert hasattr(clock_module, name), name
