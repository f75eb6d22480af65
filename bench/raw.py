"""The raw baselines: what the bare clients get from the same servers, in the same run.

aiokafka producing and consuming real complaint bytes on a topic of our own; PyMongo's
``AsyncMongoClient`` upserting single documents, inserting in bulk and reading by ``_id``
in a database of our own. Each function is capped by time as well as by count and returns
plain numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from bench.observe import assignable, now, percentile

PRODUCER_OPTIONS: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 5}


class RawKafka:
    """A producer and an assigned (group-less) consumer on one topic."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_OPTIONS)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
            fetch_max_wait_ms=20, max_partition_fetch_bytes=4 << 20,
        )

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        parts = await assignable(self.bootstrap, [self.topic])
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)

    async def stop(self) -> None:
        await self.producer.stop()
        await self.consumer.stop()

    async def _drain(self, arrivals: dict[bytes, float], expected: int, deadline: float) -> None:
        while len(arrivals) < expected and now() < deadline:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=10_000)
            t = now()
            for records in batches.values():
                for rec in records:
                    if rec.key is not None:
                        arrivals.setdefault(rec.key, t)

    async def throughput(self, values: list[bytes], n: int, cap_s: float, tag: str) -> dict[str, Any]:
        """Send ``n`` messages as fast as the producer takes them; time until all are consumed."""
        arrivals: dict[bytes, float] = {}
        keys = [f"{tag}-{i}".encode() for i in range(n)]
        await self.consumer.seek_to_end()  # skip what an earlier, capped test left unread
        t0 = now()
        deadline = t0 + cap_s
        drain = asyncio.create_task(self._drain(arrivals, n, deadline))
        futures = []
        for i, key in enumerate(keys):
            if now() > deadline:
                break
            futures.append(await self.producer.send(self.topic, values[i % len(values)], key=key))
        sent = len(futures)
        await asyncio.wait(futures, timeout=max(0.1, deadline - now()))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(drain), max(0.1, deadline - now()))
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain
        got = [arrivals[k] for k in keys[:sent] if k in arrivals]
        elapsed = (max(got) - t0) if got else cap_s
        return {"sent": sent, "consumed": len(got), "seconds": round(elapsed, 3),
                "msgs_per_s": round(len(got) / elapsed, 1) if elapsed > 0 else 0.0,
                "capped": len(got) < n}

    async def latency(self, values: list[bytes], rate: float, seconds: float, tag: str) -> dict[str, Any]:
        """Send at a steady ``rate`` for ``seconds``; produce→consume latency of each message."""
        n = max(1, int(rate * seconds))
        sent_at: dict[bytes, float] = {}
        arrivals: dict[bytes, float] = {}
        await self.consumer.seek_to_end()
        t0 = now()
        drain = asyncio.create_task(self._drain(arrivals, n, t0 + seconds + 10))
        for i in range(n):
            delay = t0 + i / rate - now()
            if delay > 0:
                await asyncio.sleep(delay)
            key = f"{tag}-{i}".encode()
            sent_at[key] = now()
            await self.producer.send(self.topic, values[i % len(values)], key=key)
        await self.producer.flush()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(drain, 10)
        lat = [(arrivals[k] - t) if k in arrivals else float("inf") for k, t in sent_at.items()]
        return {"rate": rate, "n": n, "p50_ms": round(percentile(lat, 50) * 1000, 2),
                "p99_ms": round(percentile(lat, 99) * 1000, 2)}


async def upserts(client: AsyncMongoClient[Any], db: str, docs: list[dict[str, Any]], n: int, cap_s: float, tag: str) -> dict[str, Any]:
    """One document per round trip: ``update_one({_id}, {$set}, upsert=True)``, one at a time."""
    coll = client[db][f"upsert_{tag}"]
    await coll.insert_one({"_id": "warm"})  # the collection exists before the clock starts
    done = 0
    t0 = now()
    while done < n and now() - t0 < cap_s:
        await coll.update_one({"_id": f"{tag}-{done}"}, {"$set": docs[done % len(docs)]}, upsert=True)
        done += 1
    elapsed = now() - t0
    await coll.drop()
    return {"n": done, "seconds": round(elapsed, 3), "per_s": round(done / elapsed, 1), "capped": done < n}


async def bulk_inserts(client: AsyncMongoClient[Any], db: str, docs: list[dict[str, Any]], n: int, cap_s: float,
                       tag: str, batch: int = 500) -> dict[str, Any]:
    """``insert_many`` in batches of ``batch`` documents (unordered), one batch at a time."""
    coll = client[db][f"bulk_{tag}"]
    await coll.insert_one({"_id": "warm"})
    done = 0
    t0 = now()
    while done < n and now() - t0 < cap_s:
        size = min(batch, n - done)
        await coll.insert_many(
            [{**docs[(done + j) % len(docs)], "_id": f"{tag}-{done + j}"} for j in range(size)], ordered=False
        )
        done += size
    elapsed = now() - t0
    await coll.drop()
    return {"n": done, "batch": batch, "seconds": round(elapsed, 3), "per_s": round(done / elapsed, 1),
            "capped": done < n}


async def find_ones(client: AsyncMongoClient[Any], db: str, coll_name: str, ids: list[str], clients: int,
                    seconds: float) -> dict[str, Any]:
    """``find_one({_id})`` from ``clients`` concurrent tasks for ``seconds``; latency of each."""
    coll = client[db][coll_name]
    lat: list[float] = []
    missing = 0
    stop_at = now() + seconds

    async def one(seed: int) -> None:
        nonlocal missing
        rnd = random.Random(seed)
        while now() < stop_at:
            t = now()
            doc = await coll.find_one({"_id": rnd.choice(ids)})
            lat.append(now() - t)
            if doc is None:
                missing += 1

    t0 = now()
    await asyncio.gather(*(one(i) for i in range(clients)))
    elapsed = now() - t0
    return {"clients": clients, "n": len(lat), "per_s": round(len(lat) / elapsed, 1), "missing": missing,
            "p50_ms": round(percentile(lat, 50) * 1000, 2), "p99_ms": round(percentile(lat, 99) * 1000, 2),
            "latencies": lat}
