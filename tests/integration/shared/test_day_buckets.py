"""The timers' day buckets (``shared.buckets``, issue 8) on the real database: a sweep after
the first finds what is due by an indexed day, finds the same cases as the full scan, skips
what is not due yet, and the hourly full scan still catches a case outside the window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.negotiation.models import Workspace
from services.negotiation.repository import Repository as NegotiationRepository
from services.supervision import handlers
from services.supervision.repository import Repository as SupervisionRepository
from shared.buckets import Sweeper
from shared.mongo import service_database
from shared.settings import CommonSettings
from tests.support.events import registered

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_negotiation_finds_open_cases_near_their_deadline_by_day(
    settings: CommonSettings, mongo_client: Any
) -> None:
    repo = NegotiationRepository(service_database(mongo_client, settings.mongo, "negotiation"))
    await repo.ensure_indexes()
    clock = _Clock()
    repo._deadline_sweeps = Sweeper(full_every_s=3600, monotonic=clock)
    before = NOW + timedelta(hours=24)
    assert await repo.open_near_deadline(before) == []  # the first sweep: a full scan

    due = [Workspace(case_id=f"D{i}", status="open", deadline_at=NOW + timedelta(hours=i)) for i in (-30, 2, 20)]
    later = Workspace(case_id="LATER", status="open", deadline_at=NOW + timedelta(days=5))
    agreed = Workspace(case_id="AGREED", status="agreed", deadline_at=NOW + timedelta(hours=3))
    for ws in [*due, later, agreed]:
        await repo.save(ws, 0, [])
    stored = await repo.cases.find_one({"_id": "D2"})
    assert stored is not None and stored["deadline_day"] == (NOW + timedelta(hours=2 + 8)).date().isoformat()
    assert (await repo.cases.find_one({"_id": "AGREED"}) or {}).get("deadline_day") is None

    by_day = await repo.open_near_deadline(before)  # within the hour: by day
    assert sorted(by_day) == ["D-30", "D2", "D20"]
    clock.t = 3600  # an hour on: a full scan, the same answer
    assert sorted(await repo.open_near_deadline(before)) == sorted(by_day)

    # a case due long before the window is only seen by the full scan
    old = Workspace(case_id="OLD", status="open", deadline_at=NOW - timedelta(days=40))
    await repo.save(old, 0, [])
    assert "OLD" not in await repo.open_near_deadline(before)
    clock.t = 7200
    assert "OLD" in await repo.open_near_deadline(before)

    # agreeing takes a case out of the bucket
    ws = await repo.get("D2")
    assert ws is not None
    await repo.save(ws.model_copy(update={"status": "agreed"}), ws.version, [])
    assert "D2" not in await repo.open_near_deadline(before)


async def test_supervision_finds_due_and_idle_cases_by_day(settings: CommonSettings, mongo_client: Any) -> None:
    repo = SupervisionRepository(service_database(mongo_client, settings.mongo, "supervision"))
    await repo.ensure_indexes()
    clock = _Clock()
    repo._due_sweeps = Sweeper(monotonic=clock)
    when = NOW + timedelta(days=3)
    assert await repo.cases_due_before(when, handlers.FINISHED_FROM_RANK) == []  # full scan first
    rank = handlers.STATUS_RANK["registered"]
    repo._idle_sweeps[rank] = Sweeper(monotonic=clock)
    assert await repo.idle_cases(rank, NOW) == []

    # received 15 days ago (deadline today or so), 14 days ago, and today (deadline in 15 days)
    events = [registered(f"S{d}", received_at=NOW - timedelta(days=d)) for d in (15, 14, 0)]
    await handlers.record_events(events, repo=repo)
    doc = await repo.cases.find_one({"_id": "S15"})
    assert doc is not None and doc["deadline_day"] and doc["last_event_day"]

    due = {c["_id"] for c in await repo.cases_due_before(when, handlers.FINISHED_FROM_RANK)}
    assert due == {"S15", "S14"}, "the new case is due in 15 days"
    clock.t = 3600
    assert {c["_id"] for c in await repo.cases_due_before(when, handlers.FINISHED_FROM_RANK)} == due

    idle = {c["_id"] for c in await repo.idle_cases(rank, NOW - timedelta(days=1))}
    assert idle == {"S15", "S14"}, "their last event is 14 and 15 days old"


async def test_negotiation_finds_progress_notices_due_by_day(settings: CommonSettings, mongo_client: Any) -> None:
    repo = NegotiationRepository(service_database(mongo_client, settings.mongo, "negotiation"))
    await repo.ensure_indexes()
    clock = _Clock()
    repo._progress_sweeps = Sweeper(monotonic=clock)
    assert await repo.progress_due(NOW) == []  # the first sweep: a full scan

    cases = [Workspace(case_id="P-NEW", status="awaiting_investigation"),  # never planned
             Workspace(case_id="P-DUE", status="open", progress_due_at=NOW - timedelta(hours=1)),
             Workspace(case_id="P-LATER", status="open", progress_due_at=NOW + timedelta(days=2)),
             Workspace(case_id="P-ESC", status="escalated", progress_due_at=NOW - timedelta(hours=1))]
    for ws in cases:
        await repo.save(ws, 0, [])
    by_day = sorted(await repo.progress_due(NOW))
    assert by_day == ["P-DUE", "P-NEW"]
    clock.t = 3600
    assert sorted(await repo.progress_due(NOW)) == by_day, "the full scan agrees"
