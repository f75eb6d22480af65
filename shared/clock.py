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
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_TIMEZONE",
    "Clock",
    "FixedClock",
    "ManualClock",
    "SystemClock",
    "as_utc",
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
