"""A complaint gzip-compressed at its source to fit the broker, ~5 MB uncompressed and refused
by intake's contract, is not lost (issue 10): its dead letter is on ``complaint.received.dlq``
whole, or — too large for that topic — kept byte for byte in intake's own database with a
reference on the topic; and the worker goes on to the next good complaint.

Real intake worker process, real broker and database. Three oversized complaints go to one
partition ahead of a good one:

- *compressible*: 5 MB of repeated text, ~10 KB compressed — the issue's case; its copy,
  sent compressed, fits the topic whole;
- *refused*: ~5 MB that compress to ~400 KB: under the worker's own limit
  (``PARLEY_KAFKA_MESSAGE_MAX_BYTES`` 600,000 less headroom), so it is sent, but the DLQ topic
  was created with ``max.message.bytes`` 300,000 and the broker refuses it: the fallback;
- *too large*: ~5 MB that compress to ~700 KB: over the worker's limit, so it is stored
  without being sent (the check before sending).
"""

from __future__ import annotations

import base64
import json
import random
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.intake.repository import IntakeRepository
from shared.crypto import is_sealed
from shared.kafka import ensure_topics
from shared.kafka.dlq import DEAD_LETTER_COLLECTION, read_headers, read_stored_body
from shared.mongo import service_database
from shared.settings import CommonSettings
from tests.integration.intake.support import complaint, encode
from tests.support.eventually import eventually
from tests.support.kafka import read_all
from tests.support.processes import WORKER_READY, running_service, service_env

pytestmark = pytest.mark.integration

SIZE = 5 * 1024 * 1024


def _oversized(n: int, noise_bytes: int) -> bytes:
    """A complaint of about ``SIZE`` bytes whose text carries ``noise_bytes`` of incompressible text."""
    noise = base64.b64encode(random.Random(n).randbytes(noise_bytes))[:noise_bytes].decode()
    body = complaint(n, text="")
    filler = SIZE - len(encode(body)) - len(noise)
    body["text"] = noise + ("催收电话一天打了二十多次" * (filler // 30 + 1))[: filler // 3]
    return encode(body)


async def _produce_gzip(settings: CommonSettings, records: list[tuple[bytes, bytes]]) -> None:
    """Send each record gzip-compressed, one batch each, all to partition 0 in this order."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap, acks="all", enable_idempotence=True,
        compression_type="gzip", max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(settings.kafka.topic("complaint.received"), value,
                                         key=key, partition=0)
    finally:
        await producer.stop()


async def test_an_oversized_dead_letter_is_on_the_dlq_or_stored_and_the_worker_goes_on(
    settings: CommonSettings, mongo_client: Any, tmp_path: Path
) -> None:
    compressible = _oversized(1, 0)
    refused = _oversized(2, 540_000)
    too_large = _oversized(3, 920_000)
    good = complaint(4)
    for value in (compressible, refused, too_large):
        assert len(value) > 4_900_000 and json.loads(value)["channel_complaint_id"]
    assert len(zlib.compress(compressible)) < 100_000
    assert 320_000 < len(zlib.compress(refused)) < 500_000
    assert 580_000 < len(zlib.compress(too_large)) < 1_000_000

    await ensure_topics(settings.kafka, ["complaint.received.dlq"], configs={"max.message.bytes": "300000"})
    await ensure_topics(settings.kafka)
    env = service_env(settings, PARLEY_KAFKA_MESSAGE_MAX_BYTES="600000",
                      PARLEY_INTAKE_RELAY_INTERVAL_S="3")
    sent = {b"C0000001": compressible, b"C0000002": refused, b"C0000003": too_large}
    with running_service("services.intake", ["worker", "-l", "info"], env, tmp_path / "worker.log",
                         ready_text=WORKER_READY, timeout=180) as worker:
        await _produce_gzip(settings, [*sent.items(), (b"C0000004", encode(good))])

        repo = IntakeRepository(service_database(mongo_client, settings.mongo, "intake"))
        registered = await eventually(lambda: repo.find_complaint("app:C0000004"), timeout=120,
                                      what="the good complaint behind the oversized ones registered")
        assert registered["case_id"]
        records = await read_all(settings, "complaint.received.dlq", expected=3, timeout=60)
        assert worker.proc.poll() is None, worker.log_text()[-3000:]

    by_key = {r.key: r for r in records}
    assert len(records) == 3 and set(by_key) == set(sent), [(r.key, len(r.value or b"")) for r in records]
    store = service_database(mongo_client, settings.mongo, "intake")[DEAD_LETTER_COLLECTION]
    paths = {}
    for key, original in sent.items():
        record = by_key[key]
        headers = read_headers(record.headers)
        assert headers["dlq.source_topic"] == "complaint.received"
        assert headers["dlq.consumer"] == "intake"
        assert "text" in headers["dlq.reason"]
        if "dlq.stored_id" not in headers:  # whole on the topic
            assert record.value == original
            paths[key] = "whole"
            continue
        assert record.value == b""
        assert headers["dlq.stored_in"] == f"{settings.mongo.database('intake')}/{DEAD_LETTER_COLLECTION}"
        assert headers["dlq.stored_id"] == (
            f"complaint.received:0:{headers['dlq.source_offset']}"
        )
        assert headers["dlq.original_bytes"] == str(len(original))
        doc = await read_stored_body(store, headers["dlq.stored_id"], reader="test", purpose="check the body")
        assert doc is not None, headers
        assert doc["value"] == original and doc["key"] == key  # byte for byte
        kept = await store.find_one({"_id": headers["dlq.stored_id"]})  # at rest: sealed (shared.crypto)
        assert kept["kid"] and (kept["value"] is None or is_sealed(kept["value"])), kept["_id"]
        for n in range(int(kept.get("value_parts") or 0)):
            assert is_sealed((await store.find_one({"_id": f"{kept['_id']}#{n}"}))["data"])
        paths[key] = headers["dlq.stored_reason"]
    assert paths[b"C0000001"] == "whole"  # compressed, the complaint fits whole
    assert "MessageSizeTooLarge" in paths[b"C0000002"] or "TooLarge" in paths[b"C0000002"], paths
    assert "do not fit" in paths[b"C0000003"], paths
