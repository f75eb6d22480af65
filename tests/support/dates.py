"""Dates relative to today (Beijing, the process clock) for tests whose outcome depends on it.

A plan's first due date must lie after today and within a year (``negotiation.plan``), and
follow-up counts an instalment past its due day as missed: a fixed date such as 2027-01-31
would turn a passing test into a failing one on the day it goes by.
"""

from __future__ import annotations

import calendar
from datetime import date

from shared.clock import beijing_day, now


def today() -> date:
    """Today in Beijing, as the services' clock says."""
    return beijing_day(now())


def next_january_31(after: date | None = None) -> date:
    """The first 31 January after ``after`` (default today): a month end whose next month is
    shorter, for the month-end rules of a plan, and always within a year."""
    after = after or today()
    jan31 = date(after.year, 1, 31)
    return jan31 if jan31 > after else date(after.year + 1, 1, 31)


def end_of_february(year: int) -> date:
    """28 or 29 February of ``year``."""
    return date(year, 2, calendar.monthrange(year, 2)[1])
