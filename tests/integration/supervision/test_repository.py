"""Supervision's store on the real FerretDB: one write per case per batch, idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from services.supervision import handlers
from services.supervision.repository import Repository
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.settings import CommonSettings
from tests.support.events import registered

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


async def test_a_redelivered_batch_changes_nothing_and_status_never_moves_back(
    mongo_client: AsyncMongoClient[Any], settings: CommonSettings
) -> None:
    repo = Repository(mongo_client[f"{settings.mongo.db_prefix}supervision"])
    first = registered("c1", received_at=NOW)
    closed = Envelope.wrap(CaseClosed(case_number="TS-1", outcome="resolved"), case_id="c1",
                           producer="followup", cause=first)
    other = registered("c2", received_at=NOW - timedelta(days=20))

    assert await handlers.record_events([first, other], repo=repo) == 2
    assert await handlers.record_events([closed, first], repo=repo) == 1  # `first` redelivered
    await handlers.record_events([first, other, closed], repo=repo)  # the whole story again

    c1 = await repo.case("c1")
    assert c1 is not None
    assert [e["event_type"] for e in c1["timeline"]] == ["complaint.registered", "case.closed"]
    raw = await repo.cases.find_one({"_id": "c1"})
    assert raw is not None and len(raw["timeline"]) == 2  # stored once, not deduplicated on read
    assert c1["status"] == "closed" and c1["deadline_at"].replace(tzinfo=UTC) == NOW + timedelta(days=15)

    await handlers.record_events([first], repo=repo)  # an old event arrives late
    c1 = await repo.case("c1")
    assert c1 is not None and c1["status"] == "closed"
    assert await repo.status_counts() == {"closed": 1, "registered": 1}

    # c2 is past its deadline and open; c1 is closed and off the clock
    due = await repo.cases_due_before(NOW, handlers.FINISHED_FROM_RANK)
    assert [d["_id"] for d in due] == ["c2"] and due[0]["status"] == "registered"
