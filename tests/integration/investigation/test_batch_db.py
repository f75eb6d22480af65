"""The batch handler on the real MongoDB-wire server with the real classifier: a few hundred real
registered complaints in Kafka-sized batches → exactly one ``investigation.completed`` each,
published from the outboxes the batches wrote; a replay of every batch writes and publishes
nothing; linked complaints in the same batch are taken in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.investigation import classifier, handlers
from services.investigation.records import SimulatedCoreSystems
from services.investigation.repository import RecordsRepository, Repository
from services.investigation.settings import Settings
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ComplaintRegistered
from shared.mongo import service_database
from shared.outbox import publish_written
from shared.settings import CommonSettings
from shared.topics import decode
from tests.integration.investigation.test_worker import real_complaints, registered

pytestmark = pytest.mark.integration

BATCH = 100


async def test_real_complaints_through_the_batch_handler_complete_once_each(
    settings: CommonSettings, mongo_client: Any
) -> None:
    db = service_database(mongo_client, settings.mongo, "investigation")
    repo, records = Repository(db), SimulatedCoreSystems(RecordsRepository(db))
    await repo.ensure_indexes()
    s = Settings(environment="test", kafka=settings.kafka, mongo=settings.mongo)
    categorise = classifier.load_or_train().predict
    events = [registered(i, text, lang) for i, (text, lang) in enumerate(real_complaints())]
    # two linked complaints of case 0 ride in the first batch: one merged, one with new facts
    first = events[0]

    def linked(complaint_id: str, text: str, **flags: Any) -> Envelope[ComplaintRegistered]:
        payload = first.payload.model_copy(update={"complaint_id": complaint_id, "role": "linked", "text": text, **flags})
        return Envelope.wrap(payload, case_id=first.case_id, producer="intake", occurred_at=first.occurred_at)

    linked_events = [linked("cmp-0000-b", "补充：客服还是没有回电话"),
                     linked("cmp-0000-c", "催收一天打了二十多个电话，还打给我同事", new_facts=True)]
    stream = [first, *linked_events, *events[1:]]
    sent: list[tuple[str, bytes, bytes]] = []

    async def send(topic: str, key: bytes, value: bytes) -> None:
        sent.append((topic, key, value))

    now = datetime.now(UTC)
    for start in range(0, len(stream), BATCH):
        written = await handlers.on_registered_batch(stream[start:start + BATCH], repo=repo, records=records,
                                                     categorise=categorise, settings=s, now=now)
        await publish_written(written, send)

    completed = [decode("investigation.completed", v) for t, _, v in sent if t == "investigation.completed"]
    by_case: dict[str, list[Any]] = {}
    for c in completed:
        by_case.setdefault(c.case_id, []).append(c.payload)
    assert sorted(by_case) == sorted(e.case_id for e in events)
    assert all(len(v) == 1 for k, v in by_case.items() if k != events[0].case_id)
    assert [(p.revision, p.complaint_ids) for p in by_case[events[0].case_id]] == [
        (1, ["cmp-0000"]), (2, ["cmp-0000", "cmp-0000-b", "cmp-0000-c"])]
    assert len({c.event_id for c in completed}) == len(completed)
    assert {p.finding for v in by_case.values() for p in v} == {"substantiated", "partly_substantiated", "unsubstantiated"}
    assert all(k == c.case_id.encode() for (t, k, _), c in zip([x for x in sent if x[0] == "investigation.completed"],
                                                               completed, strict=True))
    assert await db["investigations"].count_documents({}) == len(events)
    assert await db["investigations"].count_documents({"outbox_pending": True}) == 0  # all relayed and cleared
    assert await db["core_records"].count_documents({}) == len(events)  # one records document per customer
    before = {d["_id"]: (d["revision"], d["fingerprint"], d["complaint_ids"]) async for d in db["investigations"].find({})}

    # Kafka redelivers, in other batch boundaries: nothing is written or published again
    published = len(sent)
    for start in range(0, len(stream), 37):
        written = await handlers.on_registered_batch(stream[start:start + 37], repo=repo, records=records,
                                                     categorise=categorise, settings=s,
                                                     now=now + timedelta(hours=1))
        assert written == []
        await publish_written(written, send)
    assert len(sent) == published
    after = {d["_id"]: (d["revision"], d["fingerprint"], d["complaint_ids"]) async for d in db["investigations"].find({})}
    assert after == before

    # the stored findings are what the records read back from the store give
    store = RecordsRepository(db)
    async for doc in db["investigations"].find({}).limit(30):
        env = decode("complaint.registered", doc["source_event"].encode())
        recs = await store.load(env.payload.customer_id)
        assert recs is not None
        a = handlers.assess(env.payload, text="\n".join(doc["texts"]), category=doc["category"],
                            confidence=doc["confidence"], records=recs, settings=s, now=now)
        assert handlers.fingerprint(a) == doc["fingerprint"], doc["_id"]
