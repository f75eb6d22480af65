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


async def test_breaches_after_finishing_and_provisional_deadlines_on_the_real_store(
    mongo_client: AsyncMongoClient[Any], settings: CommonSettings
) -> None:
    from shared.contracts.negotiation import CaseEscalated

    repo = Repository(mongo_client[f"{settings.mongo.db_prefix}supervision_clock"])
    late = registered("late", received_at=NOW - timedelta(days=20))  # due 5 days before NOW
    in_time = registered("ok", received_at=NOW - timedelta(days=10))  # due 5 days after NOW

    def escalated(first: Envelope[Any], at: datetime) -> Envelope[Any]:
        return Envelope.wrap(CaseEscalated(case_number="TS-1", target="mediation", reason="r", dossier_ref="DS"),
                             case_id=first.case_id, producer="negotiation", cause=first, occurred_at=at)

    await handlers.record_events([late, in_time, escalated(late, NOW), escalated(in_time, NOW)], repo=repo)
    await handlers.record_events([escalated(late, NOW + timedelta(days=1))], repo=repo)  # a later one: $min keeps NOW
    raw = await repo.cases.find_one({"_id": "late"})
    assert raw is not None and raw["finished_at"].replace(tzinfo=UTC) == NOW

    assert await handlers.check_deadlines(now=NOW + timedelta(hours=1), lead_days=(3, 1), repo=repo) == 1
    assert await handlers.check_deadlines(now=NOW + timedelta(days=6), lead_days=(3, 1), repo=repo) == 0
    alerts = await repo.list_alerts(None, 10)
    assert [a["_id"] for a in alerts] == ["deadline_breached:late"]
    assert await repo.cases_due_before(NOW + timedelta(days=30), handlers.FINISHED_FROM_RANK) == []
