"""Small aiokafka helpers for the CLI: clients that fail with what to do next, topic reads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from deploy.cli.common import kafka_down


@contextlib.asynccontextmanager
async def consumer(settings: Any) -> AsyncIterator[Any]:
    """A group-less consumer (assign + seek; commits nothing)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaConnectionError

    c = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None, enable_auto_commit=False,
                         client_id="parley-cli", request_timeout_ms=15_000)
    try:
        await c.start()
    except KafkaConnectionError:
        await c.stop()
        raise kafka_down(settings.bootstrap) from None
    try:
        yield c
    finally:
        await c.stop()


@contextlib.asynccontextmanager
async def producer(settings: Any, **options: Any) -> AsyncIterator[Any]:
    """An idempotent ``acks=all`` producer."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError

    p = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, client_id="parley-cli", acks="all",
                         enable_idempotence=True, request_timeout_ms=30_000, **options)
    try:
        await p.start()
    except KafkaConnectionError:
        await p.stop()
        raise kafka_down(settings.bootstrap) from None
    try:
        yield p
    finally:
        await p.stop()


async def read_all(c: Any, topic: str, *, start_at_ms: int | None = None) -> AsyncIterator[Any]:
    """Every record of ``topic`` present now (from ``start_at_ms`` when given), partition order."""
    from aiokafka import TopicPartition

    parts = c.partitions_for_topic(topic)
    if parts is None:
        await c._client.force_metadata_update()  # noqa: SLF001 - a fresh topic's metadata
        parts = c.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    if not tps:
        return
    c.assign(tps)
    ends = await c.end_offsets(tps)
    starts = await c.beginning_offsets(tps)
    if start_at_ms is not None:
        found = await c.offsets_for_times({tp: start_at_ms for tp in tps})
        starts = {tp: (found[tp].offset if found.get(tp) else ends[tp]) for tp in tps}
    todo = {tp for tp in tps if starts[tp] < ends[tp]}
    for tp in tps:
        c.seek(tp, starts[tp])
    while todo:
        batch = await c.getmany(*todo, timeout_ms=2000)
        for tp, records in batch.items():
            for r in records:
                if r.offset < ends[tp]:
                    yield r
            if records and records[-1].offset + 1 >= ends[tp]:
                todo.discard(tp)
        for tp in list(todo):
            if await c.position(tp) >= ends[tp]:
                todo.discard(tp)


async def read_one(c: Any, topic: str, partition: int, offset: int) -> Any | None:
    """The record at ``topic``/``partition``/``offset``, or None when there is none."""
    from aiokafka import TopicPartition

    tp = TopicPartition(topic, partition)
    parts = c.partitions_for_topic(topic)
    if parts is None:
        await c._client.force_metadata_update()  # noqa: SLF001
        parts = c.partitions_for_topic(topic)
    if not parts or partition not in parts:
        return None
    c.assign([tp])
    end = (await c.end_offsets([tp]))[tp]
    begin = (await c.beginning_offsets([tp]))[tp]
    if not begin <= offset < end:
        return None
    c.seek(tp, offset)
    for _ in range(10):
        batch = await c.getmany(tp, timeout_ms=2000)
        for r in batch.get(tp, []):
            if r.offset == offset:
                return r
            if r.offset > offset:  # compacted away or a transaction marker
                return None
    return None
