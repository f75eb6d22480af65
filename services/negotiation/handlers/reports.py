"""The regular progress notice (定期汇报): while a case is open, the customer hears where it
stands every period (default weekly, ``PARLEY_NEGOTIATION_PROGRESS_NOTICE_DAYS``; 0: off).

Negotiation sends it because it is the one service that follows a case from registration
(``complaint.registered``) through investigation, the offers, the agreement, follow-up's
execution and instalments (``settlement.executed``) to the closure (``case.closed``) or the
escalation: follow-up only knows a case once it is agreed, intake only until registration.

Periods are counted in Beijing calendar days (``shared.clock``) from the Beijing day the case
was received (the day the regulatory clock counts from): notice *k* is due at 00:00 Beijing time of that day + *k* × period. Each
case keeps the number of the last period noticed (``progress_notices``) and when the next
is due (``progress_due_at``, what the sweep queries), so a notice goes out once per case per
period however often the sweep runs, however many workers run it (the save is
version-checked: a second writer gets a conflict and sends nothing), and a sweep that missed
periods (the worker was down) sends one notice, not one per missed period. Closed and
escalated cases get none.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from typing import Protocol

from services.negotiation.errors import Conflict
from services.negotiation.handlers.common import Events, notify
from services.negotiation.handlers.ports import Store
from services.negotiation.models import Workspace
from services.negotiation.texts import customer_status, deadline_sentence, stage
from shared.clock import REGULATORY_TIMEZONE, as_utc, beijing_day, zone

log = logging.getLogger(__name__)


class ProgressStore(Store, Protocol):
    """The store, and the query of cases whose progress notice is due."""

    async def progress_due(self, now: datetime, *, limit: int = 200) -> list[str]:
        """Return ids of cases not closed or escalated whose notice is due (or never planned)."""


def _start_of(day: date) -> datetime:
    """00:00 Beijing time of ``day``, as UTC."""
    return as_utc(datetime.combine(day, time(0), tzinfo=zone(REGULATORY_TIMEZONE)))


def progress_notice(ws: Workspace, *, period_days: int, now: datetime) -> tuple[Workspace, Events] | None:
    """The workspace with its next notice planned and, when a period has passed, the notice
    owed (pure); None when nothing changes."""
    if period_days <= 0 or ws.status == "escalated" or ws.closure is not None:
        return None
    start = ws.received_at or ws.registered_at or ws.opened_at
    if start is None:
        return None
    first_day = beijing_day(start)
    period = (beijing_day(now) - first_day).days // period_days
    sent = period if period >= 1 and period > ws.progress_notices else None
    noticed = sent if sent is not None else ws.progress_notices
    next_due = _start_of(first_day + timedelta(days=(max(noticed, period) + 1) * period_days))
    if sent is None and ws.progress_due_at == next_due:
        return None
    ws = ws.model_copy(deep=True)
    ws.progress_due_at, ws.progress_notices = next_due, noticed
    if sent is None:
        return ws, []
    return ws, notify(ws, "progress", _text(ws, "zh-CN"), _text(ws, "en"), now)


def _text(ws: Workspace, lang: str) -> tuple[str, str]:
    status, step = customer_status(ws, lang)
    deadline = ""
    if ws.deadline_at is not None and stage(ws) in ("registered", "open"):
        deadline = (f"我们会在{deadline_sentence(ws.deadline_at, lang)}给您答复。" if lang != "en"
                    else f" We will answer by {deadline_sentence(ws.deadline_at, lang)}.")
    if lang != "en":
        return (f"案件 {ws.case_number} 进展通知",
                f"您的案件 {ws.case_number} 目前的进展：{status}{step}{deadline}")
    return (f"Progress of your case {ws.case_number}",
            f"Where your case {ws.case_number} stands: {status} {step}{deadline}")


async def send_progress_notices(*, repo: ProgressStore, period_days: int, now: datetime,
                                limit: int = 200) -> list[str]:
    """Plan or send the progress notice of each case that is due; return the ids that now owe
    a notice (to relay). A case changed meanwhile is left to the next sweep."""
    if period_days <= 0:
        return []
    owed: list[str] = []
    for case_id in await repo.progress_due(now, limit=limit):
        ws = await repo.get(case_id)
        change = progress_notice(ws, period_days=period_days, now=now) if ws else None
        if ws is None or change is None:
            continue
        updated, events = change
        try:
            await repo.save(updated, ws.version, events)
        except Conflict:
            continue
        if events:
            owed.append(case_id)
    if owed:
        log.info("progress notices owed for %d cases", len(owed))
    return owed
