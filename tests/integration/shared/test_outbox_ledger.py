"""The batch ledger on the real MongoDB-wire server: a batch's new documents' events live in
its ledger entries, and publishing deletes them (the documents are not written again); a batch
that died before publishing is published by a redelivery or by the sweep, once; documents
updated since keep their own outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.contracts.envelope import Envelope
from shared.contracts.supervision import SupervisionAlert
from shared.outbox import (
    LEDGER_COLLECTION,
    Written,
    batch_token,
    ledger_document,
    open_ledger,
    outbox_fields,
    publish_written,
    relay_ledgers,
    relay_pending,
)
from shared.settings import CommonSettings

pytestmark = pytest.mark.integration


def _alert(case_id: str, message: str) -> Envelope[Any]:
    return Envelope.wrap(SupervisionAlert(kind="test", severity="warning", message=message),
                         case_id=case_id, producer="test")


class Sent:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    async def __call__(self, topic: str, key: bytes, value: bytes) -> None:
        payload = Envelope[SupervisionAlert].model_validate_json(value).payload
        self.messages.append((key.decode(), payload.message))


async def _insert_batch(col: Any, n: int, tag: str) -> tuple[str, list[dict[str, Any]]]:
    with batch_token() as token:
        docs = [{"_id": f"{tag}{i}", **ledger_document([_alert(f"k{tag}{i}", f"{tag}{i}-a"),
                                                      _alert(f"k{tag}{i}", f"{tag}{i}-b")])}
                for i in range(n)]
    await col.insert_many(await open_ledger(col, docs))
    return token, docs


async def test_a_published_batch_closes_its_one_ledger_entry_and_leaves_its_documents_alone(
    settings: CommonSettings, mongo_client: AsyncMongoClient[Any]
) -> None:
    db = mongo_client[settings.mongo.database("ledger")]
    col = db["docs"]
    token, docs = await _insert_batch(col, 250, "n")
    assert all(d["ledger_batch"] == token and not d["outbox_pending"] for d in docs)
    # the events are in the ledger (two entries of at most 200 documents), not in the documents
    assert await db[LEDGER_COLLECTION].count_documents({}) == 2
    stored = await col.find_one({"_id": "n3"})
    assert stored is not None and "outbox_ledger" not in stored and stored["outbox"] == {}

    send = Sent()
    count = await publish_written(
        [Written(col, d["_id"], d["outbox_ledger"], ledger=d["ledger_batch"]) for d in docs], send)
    assert count == 500
    for i in range(250):  # each document's events in the order written
        mine = [m for k, m in send.messages if k == f"kn{i}"]
        assert mine == [f"n{i}-a", f"n{i}-b"]
    assert await db[LEDGER_COLLECTION].count_documents({}) == 0
    # nothing pending anywhere: neither the sweep nor a redelivery publishes the batch again
    again = Sent()
    assert await relay_ledgers(db, again) == 0
    assert await relay_pending(col, again) == 0
    assert await publish_written([Written(col, None, None, ledger=token)], again) == 0
    assert again.messages == []
    after = await col.find_one({"_id": "n3"})
    assert after == stored  # published without writing the document again


async def test_a_batch_that_died_before_publishing_is_published_once_by_the_sweep_or_a_redelivery(
    settings: CommonSettings, mongo_client: AsyncMongoClient[Any]
) -> None:
    db = mongo_client[settings.mongo.database("ledger")]
    col = db["docs"]
    dead_token, _ = await _insert_batch(col, 5, "d")      # the writer died after its insert
    swept_token, _ = await _insert_batch(col, 3, "s")     # another one, left to the sweep
    # one of the dead batch's documents was updated since, with an event of its own
    await col.update_one({"_id": "d2"}, {"$set": {"status": "x", **outbox_fields([_alert("kd2", "d2-late")])}})

    young = Sent()  # entries younger than the grace are left to their (maybe live) writers
    assert await relay_ledgers(db, young, grace=timedelta(minutes=5)) == 0 and young.messages == []

    redelivery = Sent()  # the batch is redelivered: the handler finds its documents registered
    assert await publish_written([Written(col, None, None, ledger=dead_token)] * 2, redelivery) == 10
    assert sorted(m for _, m in redelivery.messages) == sorted(f"d{i}-{x}" for i in range(5) for x in "ab")

    sweep = Sent()
    assert await relay_ledgers(db, sweep) == 6
    assert sorted(m for _, m in sweep.messages) == sorted(f"s{i}-{x}" for i in range(3) for x in "ab")
    assert await db[LEDGER_COLLECTION].count_documents({}) == 0

    # the update's own event is the ordinary outbox's, published once by its sweep
    late = Sent()
    assert await relay_pending(col, late) == 1 and late.messages == [("kd2", "d2-late")]
    assert await relay_ledgers(db, late) == 0 and await relay_pending(col, late) == 0


async def test_an_entry_whose_documents_were_never_inserted_is_closed_empty(
    settings: CommonSettings, mongo_client: AsyncMongoClient[Any]
) -> None:
    db = mongo_client[settings.mongo.database("ledger")]
    col = db["docs"]
    with batch_token():
        docs = [{"_id": "x1", **ledger_document([_alert("kx", "never")])}]
    await open_ledger(col, docs)  # the writer died between the entries and the insert (or is slow)
    send = Sent()
    # young: its writer may still be inserting, so the batch stays open
    assert await relay_ledgers(db, send) == 0 and send.messages == []
    assert await db[LEDGER_COLLECTION].count_documents({}) == 1
    # older than the sweep's grace: the writer is gone, the documents never came: closed, nothing sent
    await db[LEDGER_COLLECTION].update_many({}, {"$set": {"at": datetime.now(UTC) - timedelta(minutes=2)}})
    assert await relay_ledgers(db, send) == 0 and send.messages == []
    assert await db[LEDGER_COLLECTION].count_documents({}) == 0


async def test_a_batch_still_being_inserted_is_not_closed_by_another_worker(
    settings: CommonSettings, mongo_client: AsyncMongoClient[Any]
) -> None:
    """A rebalance hands a live writer's complaints to another worker: that one publishes what
    it finds but leaves the batch open, so the writer's late documents still go out."""
    db = mongo_client[settings.mongo.database("ledger")]
    col = db["docs"]
    with batch_token() as token:
        docs = [{"_id": f"p{i}", **ledger_document([_alert(f"kp{i}", f"p{i}")])} for i in range(4)]
    to_insert = await open_ledger(col, docs)
    await col.insert_many(to_insert[:2])  # the writer's first chunk
    other = Sent()  # the other worker's redelivery of the first two
    assert await publish_written([Written(col, None, None, ledger=token)], other) == 2
    assert await db[LEDGER_COLLECTION].count_documents({}) == 1  # still open
    await col.insert_many(to_insert[2:])  # the writer's second chunk, then it dies
    later = Sent()  # its own batch redelivered: every document is there now, so it closes
    assert await publish_written([Written(col, None, None, ledger=token)], later) == 4
    assert sorted(m for _, m in other.messages) == ["p0", "p1"]
    # (p0 and p1 were acknowledged in this process already: not sent twice from it)
    assert sorted(m for _, m in later.messages) == ["p2", "p3"]
    assert await db[LEDGER_COLLECTION].count_documents({}) == 0
