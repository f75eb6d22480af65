"""Replaying a dead letter: its original bytes back onto the source topic, once.

The core shared by ``parley dlq replay`` (``deploy/cli/dlq.py``) and supervision's console
(``services/supervision/console.py``). A replay re-publishes the original key and value bytes
(and, for a body kept in a database, its original headers) to the source topic with a header
``replayed_from`` = ``<dlq topic>:<partition>:<offset>`` (logical topic names).

It is idempotent, decided by the source topic itself: before sending, the source topic is read
from the dead letter's timestamp on (a replay cannot be older than its dead letter) for a
record carrying that ``replayed_from``; if one is there, nothing is sent. Callers may keep a
cache of replays made (the CLI a file, the console a collection); the topic is the truth. Two
replays of one dead letter started at the same moment can both send; that is the one gap
(consumers dedupe, e.g. intake by complaint id).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from shared.settings import KafkaSettings

DLQ_SUFFIX = ".dlq"
REPLAYED_FROM = "replayed_from"

#: makes a started client from the Kafka settings (``consumer`` / ``producer`` below, or the CLI's)
ClientFactory = Callable[..., contextlib.AbstractAsyncContextManager[Any]]
#: loads the original record kept in a database: the dead letter's headers → {key, value, headers}
StoredBody = Callable[[dict[str, str]], Awaitable[dict[str, Any]]]


def logical_dlq(topic: str) -> str:
    """``complaint.received`` or ``complaint.received.dlq`` -> ``complaint.received.dlq``."""
    return topic if topic.endswith(DLQ_SUFFIX) else topic + DLQ_SUFFIX


def marker_of(dlq_topic: str, partition: int, offset: int) -> str:
    """The ``replayed_from`` value of a replay of this dead letter."""
    return f"{logical_dlq(dlq_topic)}:{partition}:{offset}"


@contextlib.asynccontextmanager
async def consumer(settings: KafkaSettings, **options: Any) -> AsyncIterator[Any]:
    """A group-less consumer (assign + seek; commits nothing)."""
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None, enable_auto_commit=False,
                         client_id=options.pop("client_id", "parley-replay"), request_timeout_ms=15_000, **options)
    try:
        await c.start()
        yield c
    finally:
        await c.stop()


@contextlib.asynccontextmanager
async def producer(settings: KafkaSettings, **options: Any) -> AsyncIterator[Any]:
    """An idempotent ``acks=all`` producer."""
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, client_id=options.pop("client_id", "parley-replay"),
                         acks="all", enable_idempotence=True, request_timeout_ms=30_000, **options)
    try:
        await p.start()
        yield p
    finally:
        await p.stop()


async def _partitions(c: Any, topic: str) -> set[int]:
    parts = c.partitions_for_topic(topic)
    if parts is None:
        await c._client.force_metadata_update()  # noqa: SLF001 - a fresh topic's metadata
        parts = c.partitions_for_topic(topic)
    return set(parts or ())


async def read_one(c: Any, topic: str, partition: int, offset: int) -> Any | None:
    """The record at ``topic``/``partition``/``offset`` (physical name), or None when there is none."""
    from aiokafka import TopicPartition

    if partition not in await _partitions(c, topic):
        return None
    tp = TopicPartition(topic, partition)
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
            if r.offset > offset:
                return None
    return None


async def read_since(c: Any, topic: str, start_at_ms: int) -> AsyncIterator[Any]:
    """Every record of ``topic`` (physical name) present now, from ``start_at_ms`` on."""
    from aiokafka import TopicPartition

    tps = [TopicPartition(topic, p) for p in sorted(await _partitions(c, topic))]
    if not tps:
        return
    c.assign(tps)
    ends = await c.end_offsets(tps)
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


def headers_of(record: Any) -> dict[str, str]:
    from shared.kafka.dlq import read_headers

    return read_headers(list(record.headers or []))


async def replay_record(
    settings: KafkaSettings, dlq_topic: str, record: Any, *, stored_body: StoredBody | None = None,
    consumer: ClientFactory = consumer, producer: ClientFactory = producer,
) -> dict[str, Any]:
    """Re-publish the dead letter ``record`` (read from logical ``dlq_topic``) to its source topic
    unless a replay of it is already there.

    Returns ``{"status": "replayed" | "already", "marker", "topic" (logical), "partition",
    "offset"}`` — where the replay is (``found_in: "source topic"`` when it was already).
    """
    name = logical_dlq(dlq_topic)
    marker = marker_of(name, record.partition, record.offset)
    headers_in = headers_of(record)
    source = headers_in.get("dlq.source_topic") or name[: -len(DLQ_SUFFIX)]
    target = settings.topic(source)
    async with consumer(settings) as c:
        async for rec in read_since(c, target, max(0, record.timestamp - 1000)):
            if dict(rec.headers or []).get(REPLAYED_FROM) == marker.encode():
                return {"status": "already", "found_in": "source topic", "marker": marker, "topic": source,
                        "partition": rec.partition, "offset": rec.offset}
    if headers_in.get("dlq.stored_id"):
        if stored_body is None:
            raise ValueError(f"{marker}: the original is kept in {headers_in.get('dlq.stored_in')!r}, "
                             "and no reader of stored bodies was given")
        doc = await stored_body(headers_in)
        key, value = doc.get("key"), doc.get("value")
        headers = [(h["name"], bytes(h["value"])) for h in doc.get("headers") or []]
    else:
        key, value, headers = record.key, record.value, []
    headers = [(k, v) for k, v in headers if k != REPLAYED_FROM] + [(REPLAYED_FROM, marker.encode())]
    async with producer(settings, compression_type="gzip",
                        max_request_size=max(1_048_576, len(value or b"") + 65536)) as p:
        meta = await p.send_and_wait(target, key=key, value=value, headers=headers)
    return {"status": "replayed", "marker": marker, "topic": source, "partition": meta.partition,
            "offset": meta.offset}


async def replay(
    settings: KafkaSettings, dlq_topic: str, partition: int, offset: int, *,
    stored_body: StoredBody | None = None,
) -> dict[str, Any] | None:
    """Fetch the dead letter at ``dlq_topic``/``partition``/``offset`` and replay it once
    (``replay_record``); None when there is no such record."""
    name = logical_dlq(dlq_topic)
    async with consumer(settings) as c:
        record = await read_one(c, settings.topic(name), partition, offset)
    if record is None:
        return None
    return await replay_record(settings, name, record, stored_body=stored_body)
