"""Benchmark Parley's Kafka/MongoDB plumbing against the raw clients on the same servers.

    python -m bench.plumbing [--n 5000]

Reads ``PARLEY_KAFKA_BOOTSTRAP`` / ``PARLEY_MONGO_URL`` (default: the local stack) and
writes ``bench/results/plumbing.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.kafka import Publisher, ensure_topics
from shared.mongo import make_client
from shared.outbox import outbox_document, relay
from shared.settings import CommonSettings, KafkaSettings, MongoSettings
from shared.topics import decode
from tests.support.events import registered

RESULTS = Path(__file__).resolve().parent / "results"


async def measure(fn: Callable[[], Awaitable[Any]]) -> tuple[float, int]:
    """Return (seconds, peak bytes allocated) of one run of ``fn``."""
    tracemalloc.start()
    start = time.perf_counter()
    await fn()
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak


def row(name: str, ours: tuple[float, int], raw: tuple[float, int], n: int) -> dict[str, Any]:
    return {
        "bench": name,
        "n": n,
        "ours_s": round(ours[0], 4),
        "raw_s": round(raw[0], 4),
        "time_ratio": round(ours[0] / raw[0], 3),
        "ours_peak_kib": ours[1] // 1024,
        "raw_peak_kib": raw[1] // 1024,
    }


async def main(n: int) -> list[dict[str, Any]]:
    run = uuid.uuid4().hex[:8]
    settings = CommonSettings(
        kafka=KafkaSettings(topic_prefix=f"bench{run}."), mongo=MongoSettings(db_prefix=f"bench{run}_")
    )
    await ensure_topics(settings.kafka, ["complaint.registered", "bench.raw"])
    events = [registered(f"case-{i}", number=i) for i in range(n)]
    blobs = [(e.key(), e.to_bytes()) for e in events]
    results = []

    # publish: ours vs raw, pipelined the same way (send all, then wait for all acks)
    async with Publisher(settings.kafka) as publisher:

        async def ours_publish() -> None:
            await asyncio.gather(*(publisher.publish(e) for e in events))

        ours = await measure(ours_publish)
    raw_producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await raw_producer.start()
    try:

        async def raw_publish() -> None:
            await asyncio.gather(
                *(raw_producer.send_and_wait(settings.kafka.topic("bench.raw"), v, key=k) for k, v in blobs)
            )

        raw = await measure(raw_publish)
    finally:
        await raw_producer.stop()
    results.append(row("publish", ours, raw, n))

    # decode: envelope validation vs plain JSON
    async def ours_decode() -> None:
        for _, v in blobs:
            decode("complaint.registered", v)

    async def raw_decode() -> None:
        for _, v in blobs:
            json.loads(v)

    results.append(row("decode", await measure(ours_decode), await measure(raw_decode), n))

    # outbox: one write holding state + event, then relay; vs insert then send
    client = make_client(settings.mongo)
    db = client[settings.mongo.database("bench")]
    m = min(n, 1000)
    async with Publisher(settings.kafka) as publisher:

        async def ours_outbox() -> None:
            for e in events[:m]:
                await db.ours.insert_one({"_id": e.case_id, "status": "registered", **outbox_document([e])})
                await relay(db.ours, e.case_id, publisher.send)

        async def raw_outbox() -> None:
            for k, v in blobs[:m]:
                await db.raw.insert_one({"_id": k.decode(), "status": "registered"})
                await publisher._producer.send_and_wait(settings.kafka.topic("bench.raw"), v, key=k)  # noqa: SLF001

        results.append(row("outbox", await measure(ours_outbox), await measure(raw_outbox), m))
    await client.drop_database(db.name)
    await client.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    out = asyncio.run(main(args.n))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "plumbing.json").write_text(json.dumps(out, indent=2))
    for r in out:
        print(json.dumps(r))
