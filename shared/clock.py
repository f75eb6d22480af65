"""Time: the one injectable clock, and the one zone setting.

Storage, events and comparisons use timezone-aware UTC datetimes; a local zone is only for
what a person reads and for rules stated in local time (case-number days, collection hours,
end-of-day due dates). That zone is one setting, ``PARLEY_TIMEZONE`` (default
``Asia/Shanghai``), read by ``shared.settings.CommonSettings.timezone``; the services' older
``PARLEY_<SERVICE>_TIMEZONE`` variables still override it for their own service.

Code that needs the time takes a ``Clock`` (``clock.now()`` is an aware UTC datetime) instead
of calling ``datetime.now``: production passes ``SystemClock()``, tests a ``ManualClock`` they
move forward themselves. Both are also plain callables (``clock()``), so they fit where a
``Callable[[], datetime]`` is expected.

**The process-wide clock.** ``now()`` (which ``shared.contracts.envelope.utcnow`` returns, and
every service reads for business time: receipt, deadlines, sweeps, offers, steps) is
``current_clock().now()``: the system clock, unless the environment asks for an
``AcceleratedClock`` — ``PARLEY_CLOCK_START`` (ISO-8601 with offset), ``PARLEY_CLOCK_SPEED``
(simulated seconds per real second) and ``PARLEY_CLOCK_ANCHOR`` (the real epoch second at which
the simulated time is the start, so several processes agree). ``parley simulate`` starts every
service with the same three values; ``set_clock`` replaces it in-process (tests). Token expiry,
leases and outbox grace stay on the machine's clock: they measure real waiting.

The **business calendar** of the regulatory decision deadline lives here too, the one place
every service asks (rules and sources: ``docs/clock.md``): ``due(received_at, tier_days)``
gives a ``Deadline`` at the end of Beijing day D+N (the day of receipt D not counted), moved
to the end of the next working day when that day is a rest day of the State Council's
schedule (package ``chinesecalendar``; a year it does not cover counts weekends only and
makes the deadline ``provisional``); ``add_pause`` moves a deadline past a paused interval;
``is_working_day`` answers for one date. ``python -m shared.clock`` computes deadlines for
JSON lines on stdin.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time as _time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import IO, Any, Final, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar  # type: ignore[import-untyped]  # no type information shipped

__all__ = [
    "DEFAULT_TIMEZONE",
    "HOLIDAY_SOURCE",
    "REGULATORY_TIMEZONE",
    "TIERS",
    "CLOCK_ANCHOR_ENV",
    "CLOCK_SPEED_ENV",
    "CLOCK_START_ENV",
    "AcceleratedClock",
    "Clock",
    "Deadline",
    "FixedClock",
    "ManualClock",
    "SystemClock",
    "add_pause",
    "as_utc",
    "beijing_day",
    "calendar_covers",
    "clock_from_env",
    "current_clock",
    "due",
    "end_of_day",
    "is_working_day",
    "main",
    "next_working_day",
    "now",
    "set_clock",
    "to_local",
    "zone",
]

#: The zone of the institution's customers when nothing else is configured.
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"


@runtime_checkable
class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        return datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now()

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that stands still until a test moves it (``advance`` or ``set``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = as_utc(start) if start is not None else datetime.now(UTC)

    def now(self) -> datetime:
        """Return the clock's time, timezone-aware, in UTC."""
        return self._now

    def __call__(self) -> datetime:
        return self.now()

    def advance(
        self,
        delta: timedelta | None = None,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> datetime:
        """Move the clock forward (never back) and return the new time."""
        step = (delta or timedelta()) + timedelta(
            days=days, hours=hours, minutes=minutes, seconds=seconds
        )
        if step < timedelta(0):
            raise ValueError(f"a clock does not go back (advance by {step})")
        self._now += step
        return self._now

    def set(self, moment: datetime) -> None:
        """Put the clock at ``moment`` (timezone-aware; it may go back, for replay tests)."""
        self._now = as_utc(moment)

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


#: A clock fixed at one moment (a ``ManualClock`` nobody advances).
FixedClock = ManualClock


class AcceleratedClock:
    """Simulated time running ``speed`` times faster than the machine's clock.

    ``now() = start + (real_now - real_start) * speed``: at the real instant ``real_start``
    (seconds since the epoch, default: when the clock is made) the simulated time is
    ``start``. Processes given the same ``start``, ``speed`` and ``real_start`` agree on the
    simulated time, which is how ``parley simulate`` runs every service on one clock.
    ``real()`` (default ``time.time``) is injectable for tests.
    """

    def __init__(
        self,
        start: datetime,
        speed: float,
        *,
        real_start: float | None = None,
        real: Any = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, not {speed!r}")
        self.start = as_utc(start)
        self.speed = float(speed)
        self._real = real or _time.time
        self.real_start = float(real_start) if real_start is not None else float(self._real())

    def now(self) -> datetime:
        """Return the simulated time, timezone-aware, in UTC."""
        return self.start + timedelta(seconds=(self._real() - self.real_start) * self.speed)

    def __call__(self) -> datetime:
        return self.now()

    def real_seconds(self, simulated: timedelta) -> float:
        """How many real seconds a simulated interval takes on this clock."""
        return simulated.total_seconds() / self.speed

    def env(self) -> dict[str, str]:
        """The environment that makes ``clock_from_env`` in another process this same clock."""
        return {
            CLOCK_START_ENV: self.start.isoformat(),
            CLOCK_SPEED_ENV: repr(self.speed),
            CLOCK_ANCHOR_ENV: repr(self.real_start),
        }

    def __repr__(self) -> str:
        return f"AcceleratedClock(start={self.start.isoformat()}, speed={self.speed:g})"


# ------------------------------------------------------------------ the process-wide clock

#: The simulated instant at the anchor (ISO-8601 with an offset); unset: the system clock.
CLOCK_START_ENV: Final = "PARLEY_CLOCK_START"
#: How many simulated seconds pass per real second (default 1).
CLOCK_SPEED_ENV: Final = "PARLEY_CLOCK_SPEED"
#: The real instant (seconds since the epoch) at which the simulated time is the start
#: (default: when the process first reads the clock). Set it when several processes must
#: agree on the time.
CLOCK_ANCHOR_ENV: Final = "PARLEY_CLOCK_ANCHOR"


def clock_from_env(environ: dict[str, str] | None = None) -> Clock:
    """The clock the environment asks for: an ``AcceleratedClock`` when ``PARLEY_CLOCK_START``
    or ``PARLEY_CLOCK_SPEED`` is set (start default: now; speed default 1; anchor
    ``PARLEY_CLOCK_ANCHOR``, default now), else ``SystemClock()``. A bad value raises
    ``ValueError`` naming the variable."""
    env = os.environ if environ is None else environ
    raw_start, raw_speed = env.get(CLOCK_START_ENV, "").strip(), env.get(CLOCK_SPEED_ENV, "").strip()
    raw_anchor = env.get(CLOCK_ANCHOR_ENV, "").strip()
    if not raw_start and not raw_speed:
        return SystemClock()
    try:
        start = datetime.fromisoformat(raw_start) if raw_start else datetime.now(UTC)
        start = as_utc(start)
    except ValueError:
        raise ValueError(f"{CLOCK_START_ENV}={raw_start!r}: expected ISO-8601 with an offset, "
                         "e.g. 2026-03-02T09:00:00+08:00") from None
    try:
        speed = float(raw_speed) if raw_speed else 1.0
        if not speed > 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"{CLOCK_SPEED_ENV}={raw_speed!r}: expected a positive number") from None
    try:
        anchor = float(raw_anchor) if raw_anchor else None
    except ValueError:
        raise ValueError(f"{CLOCK_ANCHOR_ENV}={raw_anchor!r}: expected seconds since the epoch") from None
    return AcceleratedClock(start, speed, real_start=anchor)


_clock: Clock | None = None


def current_clock() -> Clock:
    """The process-wide clock: the one ``set_clock`` put, else ``clock_from_env()`` (read once)."""
    global _clock
    if _clock is None:
        _clock = clock_from_env()
    return _clock


def set_clock(clock: Clock | None) -> None:
    """Replace the process-wide clock (``None``: read the environment again on next use)."""
    global _clock
    _clock = clock


def now() -> datetime:
    """The current business time of this process, aware UTC (``current_clock().now()``).
    ``shared.contracts.envelope.utcnow`` is this function: every service reads it."""
    return current_clock().now()


def as_utc(moment: datetime) -> datetime:
    """Return an aware datetime in UTC; a naive one is refused (its zone cannot be known)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: give it a zone (UTC in storage)")
    return moment.astimezone(UTC)


@lru_cache(maxsize=16)
def zone(name: str = DEFAULT_TIMEZONE) -> ZoneInfo:
    """Return the ``ZoneInfo`` of an IANA zone name, with a clear error for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as "
                         f"{DEFAULT_TIMEZONE!r})") from None


def to_local(moment: datetime, tz: ZoneInfo | str = DEFAULT_TIMEZONE) -> datetime:
    """Return an aware datetime in a local zone (for display and local-time rules)."""
    return as_utc(moment).astimezone(zone(tz) if isinstance(tz, str) else tz)


# ------------------------------------------------------------------ business calendar

#: The zone the regulatory deadline is counted in. Fixed by the rule (Beijing days and the
#: State Council's holidays), not by ``PARLEY_TIMEZONE``, which only changes what people read.
REGULATORY_TIMEZONE: Final = "Asia/Shanghai"

#: Decision periods in days from receipt: ordinary, complex, especially complex
#: (《银行业保险业消费投诉处理管理办法》: 15 days; complex 30; a further 30 with senior approval).
TIERS: Final = (15, 30, 60)

#: The last representable instant of a day: the period ends at 24:00 (民法典 第二百零三条),
#: so a decision at any moment before the next day's 00:00 is on time.
END_OF_DAY: Final = time(23, 59, 59, 999_999)


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - installed with the project
        return "?"


#: Where rest days come from, for messages and ops alerts.
HOLIDAY_SOURCE: Final = f"chinesecalendar {_package_version('chinesecalendar')}"


@dataclass(frozen=True, slots=True)
class Deadline:
    """A regulatory decision deadline.

    ``received_on`` is the Beijing day of receipt (not counted); ``counted_to`` the last
    counted day, receipt day + ``tier_days`` + ``paused_days``, before any roll-over;
    ``due_date`` the Beijing day the period ends (``counted_to`` or, if that is a rest day,
    the next working day: ``rolled_over``); ``due_at`` the end of ``due_date``
    (23:59:59.999999 +08:00). ``provisional`` when a day looked at lies in a year the holiday
    package does not cover (weekends only were counted as rest days): raise an ops alert and
    compute it again once the package knows the year.
    """

    received_on: date
    tier_days: int
    counted_to: date
    due_date: date
    due_at: datetime
    rolled_over: bool
    provisional: bool
    paused_days: int = 0

    def is_past(self, now: datetime) -> bool:
        """Whether ``now`` (aware) is after the deadline, i.e. on a later Beijing day."""
        return as_utc(now) > self.due_at

    def as_json(self) -> dict[str, Any]:
        """The command's output fields: ``due_date``, ``due_at``, ``rolled_over``, ``provisional``."""
        return {
            "due_date": self.due_date.isoformat(),
            "due_at": self.due_at.isoformat(),
            "rolled_over": self.rolled_over,
            "provisional": self.provisional,
        }


def beijing_day(moment: datetime) -> date:
    """The Beijing calendar day of an aware instant (a naive one is refused)."""
    return to_local(moment, REGULATORY_TIMEZONE).date()


def end_of_day(day: date) -> datetime:
    """The last instant of a Beijing day, aware in Asia/Shanghai (+08:00)."""
    return datetime.combine(day, END_OF_DAY, tzinfo=zone(REGULATORY_TIMEZONE))


def calendar_covers(day: date) -> bool:
    """Whether the holiday package has the State Council's schedule for ``day``'s year."""
    return _covers_year(day.year)


@lru_cache(maxsize=64)
def _covers_year(year: int) -> bool:
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:  # the package's own "no data for this year"
        return False
    return True


def _working(day: date) -> tuple[bool, bool]:
    """(is a working day, known from the package); outside its years, Monday–Friday work."""
    if _covers_year(day.year):
        return bool(chinese_calendar.is_workday(day)), True
    return day.weekday() < 5, False


def is_working_day(day: date) -> bool:
    """Whether ``day`` is a working day in mainland China: not a weekend or public holiday,
    and an adjusted working Saturday/Sunday (调休) is one. For a year the holiday package does
    not cover, weekends only are rest days (see ``calendar_covers``)."""
    if isinstance(day, datetime):
        raise TypeError("is_working_day takes a date; use beijing_day(moment) for an instant")
    return _working(day)[0]


def next_working_day(day: date) -> tuple[date, bool]:
    """Return (``day`` if it is a working day, else the first working day after it;
    provisional): provisional when any day looked at is outside the package's years."""
    provisional = False
    while True:
        working, known = _working(day)
        provisional = provisional or not known
        if working:
            return day, provisional
        day += timedelta(days=1)


def _settle(received_on: date, tier_days: int, counted_to: date, paused_days: int) -> Deadline:
    due_date, provisional = next_working_day(counted_to)
    return Deadline(
        received_on=received_on,
        tier_days=tier_days,
        counted_to=counted_to,
        due_date=due_date,
        due_at=end_of_day(due_date),
        rolled_over=due_date != counted_to,
        provisional=provisional,
        paused_days=paused_days,
    )


def due(received_at: datetime, tier_days: int) -> Deadline:
    """The decision deadline of a complaint received at ``received_at`` (aware).

    The Beijing day of receipt D is not counted (民法典 第二百零一条); the period ends at the
    end of Beijing day D + ``tier_days``, or, when that is a rest day, at the end of the next
    working day (第二百零三条). ``tier_days`` is 15, 30 or 60 (``TIERS``), always counted from
    receipt. New facts restart the clock: call ``due`` again with their receipt.
    """
    if isinstance(tier_days, bool) or tier_days not in TIERS:
        raise ValueError(f"tier_days must be one of {', '.join(map(str, TIERS))}, not {tier_days!r}")
    received_on = beijing_day(received_at)
    return _settle(received_on, tier_days, received_on + timedelta(days=tier_days), 0)


def add_pause(deadline: Deadline, paused_at: datetime, resumed_at: datetime) -> Deadline:
    """Move ``deadline`` past a pause (e.g. external appraisal): paused days do not count.

    Counted like the period itself, in Beijing days: the day the clock stops still counts, the
    day it resumes does not (it is treated like a day of receipt), so the period gains
    (resume day − pause day) days; a pause begun and ended on one day moves nothing. The new
    last counted day is never before the day of resumption, and it rolls over a rest day
    again. Several pauses are added one after another.
    """
    if as_utc(resumed_at) < as_utc(paused_at):
        raise ValueError("a pause cannot end before it began")
    paused_on, resumed_on = beijing_day(paused_at), beijing_day(resumed_at)
    if paused_on < deadline.received_on:
        raise ValueError("a pause cannot begin before the complaint was received")
    if deadline.is_past(paused_at):
        raise ValueError("a deadline already past cannot be paused")
    days = (resumed_on - paused_on).days
    counted_to = max(deadline.counted_to + timedelta(days=days), resumed_on)
    return _settle(deadline.received_on, deadline.tier_days, counted_to, deadline.paused_days + days)


# ------------------------------------------------------------------ command line


class _BadLine(Exception):
    def __init__(self, problem: str, field: str | None) -> None:
        super().__init__(problem)
        self.problem, self.field = problem, field


def _deadline_of_line(text: str) -> Deadline:
    if not text.strip():
        raise _BadLine("empty line: expected a JSON object", None)
    try:
        data = json.loads(text)
    except ValueError:
        raise _BadLine("not valid JSON", None) from None
    if not isinstance(data, dict):
        raise _BadLine("expected a JSON object", None)
    raw = data.get("received_at")
    if raw is None:
        raise _BadLine("missing", "received_at")
    if not isinstance(raw, str):
        raise _BadLine("must be an ISO-8601 string with a UTC offset", "received_at")
    try:
        received_at = datetime.fromisoformat(raw)
    except ValueError:
        raise _BadLine("not an ISO-8601 date and time", "received_at") from None
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise _BadLine("needs a UTC offset (e.g. +08:00 or Z)", "received_at")
    tier = data.get("tier_days")
    if tier is None:
        raise _BadLine("missing", "tier_days")
    if isinstance(tier, bool) or not isinstance(tier, int) or tier not in TIERS:
        raise _BadLine(f"must be one of {', '.join(map(str, TIERS))}", "tier_days")
    try:
        return due(received_at, tier)
    except (ValueError, OverflowError):  # e.g. a due day past year 9999
        raise _BadLine("no deadline can be computed for this date", "received_at") from None


def run_lines(lines: Iterable[str], out: IO[str]) -> int:
    """Answer each JSON line with its deadline or an error line; return how many were bad."""
    bad = 0
    for number, text in enumerate(lines, start=1):
        try:
            result: dict[str, Any] = _deadline_of_line(text).as_json()
        except _BadLine as exc:
            bad += 1
            result = {"error": exc.problem, "field": exc.field, "line": number}
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
        out.flush()
    return bad


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.clock``: JSON lines in on stdin, one JSON line out for each."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.clock",
        description=(
            'Read JSON lines {"received_at": ISO-8601 with offset, "tier_days": 15|30|60} on '
            'stdin; write one JSON line each: {"due_date", "due_at", "rolled_over", '
            '"provisional"}, or {"error", "field", "line"} for a bad line. Exit status 1 if '
            f"any line was bad. Rest days: {HOLIDAY_SOURCE}; rules: docs/clock.md."
        ),
    )
    parser.parse_args(argv)
    return 1 if run_lines(sys.stdin, sys.stdout) else 0


if __name__ == "__main__":
    sys.exit(main())
