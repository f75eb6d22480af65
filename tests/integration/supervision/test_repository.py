"""Supervision's store on the real FerretDB: one write per case per batch, in bulk, idempotent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient, monitoring

from services.supervision import handlers
from services.supervision.repository import DUPLICATE_KEY, Repository
from shared.buckets import day_of
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.outbox import UPDATES_PER_COMMAND
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


class _Updates(monitoring.CommandListener):
    """The ``update`` commands a client sent to ``cases`` and their replies."""

    def __init__(self) -> None:
        self.sent: list[int] = []  # updates per command
        self.replies: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update" and event.command.get("update") == "cases":
            self.sent.append(len(event.command["updates"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name == "update":
            self.replies.append(dict(event.reply))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _listening_repo(settings: CommonSettings, name: str) -> tuple[AsyncMongoClient[Any], Repository, _Updates]:
    listener = _Updates()
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.mongo.url, tz_aware=True, event_listeners=[listener])
    return client, Repository(client[f"{settings.mongo.db_prefix}{name}"]), listener


async def test_a_batch_of_cases_goes_in_bulk_commands_and_keeps_the_upsert_semantics(
    mongo_client: AsyncMongoClient[Any], settings: CommonSettings
) -> None:
    from shared.contracts.negotiation import CaseEscalated

    client, repo, updates = _listening_repo(settings, "supervision_bulk")
    try:
        ids = [f"bulk-{i:03d}" for i in range(120)]
        first = [registered(c, received_at=NOW - timedelta(days=i % 20), number=i) for i, c in enumerate(ids)]
        await repo.apply_changes(handlers.fold_events(first))
        assert updates.sent == [25, 25, 25, 25, 20]  # 120 upserts in 5 commands, not 120
        docs = {d["_id"]: d async for d in repo.cases.find({})}
        assert sorted(docs) == ids
        for i, c in enumerate(ids):
            doc, event = docs[c], first[i]
            assert [e["event_id"] for e in doc["timeline"]] == [str(event.event_id)]
            # FerretDB v1 drops the empty ``alerts`` of ``$setOnInsert`` (MongoDB keeps it)
            assert doc["status_rank"] == handlers.STATUS_RANK["registered"] and doc.get("alerts", []) == []
            assert doc["case_number"] == event.payload.case_number
            assert doc["deadline_at"] == event.payload.deadline_at
            assert doc["deadline_day"] == day_of(event.payload.deadline_at)
            assert doc["last_event_day"] == day_of(event.occurred_at)
            assert doc["correlation_id"] == event.correlation_id and "finished_at" not in doc

        await repo.cases.update_many({}, {"$set": {"stuck": True}})
        await repo.apply_changes(handlers.fold_events(first))  # the batch redelivered
        again = {d["_id"]: d async for d in repo.cases.find({})}
        assert all("stuck" not in d for d in again.values())  # an event clears the stuck mark
        assert again == docs  # nothing else changed

        def escalated(event: Envelope[Any], at: datetime) -> Envelope[Any]:
            return Envelope.wrap(CaseEscalated(case_number=event.payload.case_number, target="mediation", reason="r",
                                               dossier_ref="DS"), case_id=event.case_id, producer="negotiation",
                                 cause=event, occurred_at=at)

        later = [escalated(e, NOW + timedelta(hours=1)) for e in first]
        # a second batch: the escalations, and half of the registrations once more (late, rank lower)
        await repo.apply_changes(handlers.fold_events([*later, *first[::2]]))
        # a third: later escalations of the same cases — finished_at keeps the earliest
        await repo.apply_changes(handlers.fold_events([escalated(e, NOW + timedelta(days=1)) for e in first]))
        final = {d["_id"]: d async for d in repo.cases.find({})}
        assert len(final) == 120
        for i, c in enumerate(ids):
            doc = final[c]
            assert len(doc["timeline"]) == 3, c
            assert doc["timeline"][0]["event_id"] == str(first[i].event_id)
            assert doc["timeline"][1]["event_id"] == str(later[i].event_id)
            assert doc["status_rank"] == handlers.STATUS_RANK["escalated"]  # $max: the late registration did not lower it
            assert doc["finished_at"] == NOW + timedelta(hours=1)  # $min
            assert doc["last_event_at"] == NOW + timedelta(days=1)
            assert doc["deadline_at"] == first[i].payload.deadline_at
        assert all(n <= UPDATES_PER_COMMAND for n in updates.sent)
    finally:
        await client.close()


async def test_writers_racing_on_new_cases_lose_no_update(
    mongo_client: AsyncMongoClient[Any], settings: CommonSettings
) -> None:
    """FerretDB v1's upsert is a find, then an insert: of two writers upserting one new ``_id``
    at once, one gets a duplicate key and FerretDB ends its command there, unordered or not.
    The updates after the failed one must still be written (sent again)."""
    client, repo, updates = _listening_repo(settings, "supervision_race")
    rivals = Repository(mongo_client[f"{settings.mongo.db_prefix}supervision_race"])
    raced = 0
    try:
        for trial in range(40):
            contested = registered(f"race-{trial}", received_at=NOW)
            own = [registered(f"race-{trial}-{k}", received_at=NOW) for k in range(24)]
            before = len(updates.replies)
            await asyncio.gather(repo.apply_changes(handlers.fold_events([contested, *own])),
                                 *(rivals.apply_changes(handlers.fold_events([contested])) for _ in range(6)))
            raced += sum(1 for r in updates.replies[before:]
                         if any(e["code"] == DUPLICATE_KEY for e in r.get("writeErrors", [])))
            docs = {d["_id"]: d async for d in repo.cases.find({"_id": {"$regex": f"^race-{trial}-"}})}
            assert sorted(docs) == sorted(e.case_id for e in own)  # every case after the contested one
            assert all(d["timeline"][0]["event_id"] == str(e.event_id) for d, e in
                       zip((docs[e.case_id] for e in own), own, strict=True))
            contested_doc = await repo.cases.find_one({"_id": f"race-{trial}"})
            assert contested_doc is not None and len(contested_doc["timeline"]) == 1
            if raced >= 2 and trial >= 4:
                break
        assert raced, "the writers never raced on a new case (no duplicate key): the retry was not exercised"

        # a redelivered batch of 120 new cases applied twice at once: one result, no error
        batch = [registered(f"twice-{i}", received_at=NOW, number=i) for i in range(120)]
        await asyncio.gather(repo.apply_changes(handlers.fold_events(batch)),
                             rivals.apply_changes(handlers.fold_events(batch)))
        twice = [d async for d in repo.cases.find({"_id": {"$regex": "^twice-"}})]
        assert len(twice) == 120 and all(len(d["timeline"]) == 1 for d in twice)
    finally:
        await client.close()


async def test_two_changes_of_one_case_in_one_call_apply_in_order(
    mongo_client: AsyncMongoClient[Any], settings: CommonSettings
) -> None:
    repo = Repository(mongo_client[f"{settings.mongo.db_prefix}supervision_order"])
    early, late = registered("twice", received_at=NOW), registered("twice", received_at=NOW + timedelta(days=1))
    others = handlers.fold_events([registered(f"o{i}", received_at=NOW) for i in range(30)])
    # fold_events makes one change per case; a caller passing two must see them applied in order
    await repo.apply_changes([*handlers.fold_events([early]), *others, *handlers.fold_events([late])])
    doc = await repo.cases.find_one({"_id": "twice"})
    assert doc is not None and len(doc["timeline"]) == 2
    assert doc["deadline_at"] == late.payload.deadline_at and doc["last_event_at"] == late.occurred_at
    assert await repo.cases.count_documents({}) == 31
