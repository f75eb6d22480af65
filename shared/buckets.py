"""Day buckets: timers that find "what is due" by equality on an indexed day, not by a range.

FerretDB v1 pushes only equality filters down to its backend (docs/stack.md): a timer's
``{"deadline_at": {"$lte": when}}`` reads and decodes every document of the collection on
every sweep, so its cost grows with the cases stored (at 50,000 workspaces a sweep every few
seconds would take most of a core). A document that a timer looks for also carries the
Beijing day of its moment (``deadline_day: "2026-12-14"``), indexed; the timer asks for each
day of a short window up to the day it needs (equality, served by the index and its GIN
companion) and filters the exact moment in Python. Documents older than the window — a
service that was down for weeks, a case saved with a deadline long past — are caught by a
full scan that every ``Sweeper`` makes on its first sweep and then once an hour, so nothing
is missed and the scan's cost is spread over an hour instead of every sweep.
On MongoDB the same equality queries use ordinary indexes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.clock import beijing_day

#: days before the target day a bucketed sweep still asks for
LOOKBACK_DAYS = 14
#: seconds between the full scans that catch what the window misses
FULL_SCAN_EVERY_S = 3600.0


def day_of(moment: datetime | None) -> str | None:
    """The Beijing calendar day of ``moment`` as ``YYYY-MM-DD`` (None for None)."""
    return None if moment is None else beijing_day(moment).isoformat()


def days_up_to(moment: datetime, lookback_days: int = LOOKBACK_DAYS) -> list[str]:
    """The bucket names from ``lookback_days`` before the Beijing day of ``moment`` to that day."""
    last = beijing_day(moment)
    return [(last - timedelta(days=n)).isoformat() for n in range(lookback_days, -1, -1)]


def aware(moment: datetime) -> datetime:
    """A stored instant as an aware UTC datetime (a client without ``tz_aware`` reads naive UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Sweeper:
    """Whether a sweep may use the day buckets or must scan in full this time.

    The first sweep of a process scans in full, then one every ``full_every_s`` seconds.
    """

    def __init__(self, full_every_s: float = FULL_SCAN_EVERY_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.full_every_s = full_every_s
        self._monotonic = monotonic
        self._last_full: float | None = None

    def full_scan_due(self) -> bool:
        """True (and noted) when this sweep should scan in full."""
        now = self._monotonic()
        if self._last_full is None or now - self._last_full >= self.full_every_s:
            self._last_full = now
            return True
        return False


async def find_by_days(collection: Any, day_field: str, days: Iterable[str], query: dict[str, Any],
                       projection: dict[str, Any] | None, is_due: Callable[[dict[str, Any]], bool],
                       limit: int) -> list[dict[str, Any]]:
    """The documents of these day buckets (``{day_field: day, **query}``, one indexed equality
    each) that ``is_due`` keeps, up to ``limit``, in the order of ``days``."""
    found: list[dict[str, Any]] = []
    for day in days:
        async for doc in collection.find({day_field: day, **query}, projection):
            if is_due(doc):
                found.append(doc)
                if len(found) >= limit:
                    return found
    return found
