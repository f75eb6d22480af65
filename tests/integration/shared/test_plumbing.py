"""Shared plumbing on the real servers: dead letters keep the original bytes; the outbox
publishes each owed event once it is written, and again after a crash, never losing one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.kafka import DeadLetter, Publisher, ensure_topics
from shared.kafka.dlq import read_headers
from shared.mongo import claim_next_version
from shared.outbox import outbox_document, relay, relay_pending
from shared.settings import CommonSettings
from shared.topics import decode
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration


async def test_dead_letter_record_keeps_original_bytes_and_reason(settings: CommonSettings) -> None:
    await ensure_topics(settings.kafka, ["complaint.registered.dlq"])
    original = b'{"broken": \xff\xfe'
    async with Publisher(settings.kafka) as publisher:

        async def send(topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
            await publisher._producer.send_and_wait(topic, value=value, key=key, headers=headers)  # noqa: SLF001

        dlq = DeadLetter(send=send, consumer="investigation", topic_prefix=settings.kafka.topic_prefix)
        await dlq(
            topic="complaint.registered", key=b"k1", value=original, partition=0, offset=7,
            reason="value is not valid UTF-8 (byte 11)",
        )
    [record] = await read_all(settings, "complaint.registered.dlq", expected=1)
    assert record.value == original and record.key == b"k1"
    headers = read_headers(record.headers)
    assert headers["dlq.reason"] == "value is not valid UTF-8 (byte 11)"
    assert headers["dlq.source_offset"] == "7"


async def test_outbox_publishes_owed_events_once_and_sweeps_after_a_crash(
    settings: CommonSettings, mongo_client: AsyncMongoClient[Any]
) -> None:
    await ensure_topics(settings.kafka, ["case.closed"])
    cases = mongo_client[settings.mongo.database("plumbing")]["cases"]
    events = [
        Envelope.wrap(CaseClosed(case_number=f"TS-{i}", outcome="resolved"), case_id=f"c{i}", producer="test")
        for i in range(3)
    ]
    # three state changes, each with its event in the same single-document write
    for e in events:
        await cases.insert_one({"_id": e.case_id, "status": "closed", **outbox_document([e])})

    async with Publisher(settings.kafka) as publisher:
        # the writer of c0 relays at once; c1 and c2 "crash" before relaying
        assert await relay(cases, "c0", publisher.send) == 1
        assert await relay(cases, "c0", publisher.send) == 0  # nothing owed twice
        # a sweep leaves outboxes younger than its grace to their (maybe live) writers
        before = datetime.now(UTC) - timedelta(minutes=1)
        assert await relay_pending(cases, publisher.send, older_than=before) == 0
        assert await relay_pending(cases, publisher.send) == 2
        assert await relay_pending(cases, publisher.send) == 0

    records = await read_all(settings, "case.closed", expected=3)
    got = sorted(str(decode("case.closed", r.value).event_id) for r in records)
    assert got == sorted(str(e.event_id) for e in events)
    assert all(r.key == decode("case.closed", r.value).case_id.encode() for r in records)
    assert await cases.count_documents({"outbox_pending": True}) == 0



async def test_only_one_concurrent_writer_claims_a_version_and_dead_claims_expire(
    settings: CommonSettings, mongo_client: AsyncMongoClient[Any]
) -> None:
    db = mongo_client[settings.mongo.database("plumbing")]
    await db.cases.insert_one({"_id": "c1", "version": 3})
    results = await asyncio.gather(*(claim_next_version(db.claims, db.cases, "c1", 3) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]

    # a writer claimed version 4 and died before updating: after the stale period the
    # claim is taken over; before it, it still blocks
    assert not await claim_next_version(db.claims, db.cases, "c1", 3, stale_after=timedelta(minutes=5))
    assert await claim_next_version(db.claims, db.cases, "c1", 3, stale_after=timedelta(0))
    # once the document really moved on, the old claim is never stale
    await db.cases.update_one({"_id": "c1"}, {"$set": {"version": 4}})
    assert not await claim_next_version(db.claims, db.cases, "c1", 3, stale_after=timedelta(0))
