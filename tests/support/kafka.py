"""Reading topics in tests: every partition from the beginning, without a consumer group."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from shared.settings import CommonSettings
from tests.support.eventually import eventually


async def read_all(
    settings: CommonSettings,
    topic: str,
    *,
    expected: int | None = None,
    until: Callable[[list[Any]], bool] | None = None,
    timeout: float = 30,
) -> list[Any]:
    """Read a logical topic from the start until ``expected`` records or ``until`` holds.

    Returns what was read when the condition holds; raises ``AssertionError`` on time-out
    with how many records were seen. With neither condition, reads up to the end offsets.
    """
    physical = settings.kafka.topic(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions = await eventually(
            lambda: _partitions(consumer, physical), what=f"topic {physical} to exist", timeout=timeout
        )
        tps = [TopicPartition(physical, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps) if expected is None and until is None else None

        def satisfied() -> bool:
            if until is not None:
                return until(records)
            if expected is not None:
                return len(records) >= expected
            assert ends is not None
            return all(
                (consumer_positions.get(tp, 0) >= end) for tp, end in ends.items()
            )

        consumer_positions: dict[TopicPartition, int] = {}
        while True:
            if satisfied():
                return records
            if loop.time() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s reading {physical}: {len(records)} records"
                )
            batch = await consumer.getmany(timeout_ms=500)
            for tp, msgs in batch.items():
                records.extend(msgs)
                if msgs:
                    consumer_positions[tp] = msgs[-1].offset + 1
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, physical: str) -> set[int]:
    """The partitions of a topic, refreshing the client's metadata once when it knows none."""
    partitions = consumer.partitions_for_topic(physical)
    if not partitions:
        await consumer._client.force_metadata_update()  # noqa: SLF001
        partitions = consumer.partitions_for_topic(physical)
    return set(partitions or ())


async def group_caught_up(settings: CommonSettings, group: str, topic: str) -> bool:
    """Whether consumer group ``group`` has committed every partition of ``topic`` to its end.

    The barrier for "the consumer has processed everything published so far": with
    ``eventually(...)`` it proves a consumer got past a message without sleeping.
    """
    lag = await group_lag(settings, group, topic)
    return lag is not None and not lag


async def group_lag(settings: CommonSettings, group: str, topic: str) -> dict[int, tuple[int | None, int]] | None:
    """The partitions of ``topic`` that consumer group ``group`` has not committed to their
    end: ``{partition: (committed offset or None, end offset)}``; None while the topic has no
    partitions yet. Empty means caught up (what ``group_caught_up`` asks)."""
    physical = settings.kafka.topic(topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(physical, p) for p in await _partitions(consumer, physical)]
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    if not ends:
        return None
    return {
        tp.partition: (committed[tp].offset if tp in committed else None, end)
        for tp, end in ends.items()
        if end > 0 and (tp not in committed or committed[tp].offset < end)
    }


async def group_assignments(settings: CommonSettings, group: str) -> dict[str, set[tuple[str, int]]]:
    """The members of consumer group ``group`` (its full name) and the (physical topic,
    partition) pairs each holds, from the group's description (DescribeGroups)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
        [described] = response.groups  # (error, group, state, protocol type, protocol, members, ...)
        out: dict[str, set[tuple[str, int]]] = {}
        for member in described[5]:  # (member_id, [instance id,] client_id, host, metadata, assignment)
            member_id, assignment = member[0], member[-1]
            held: set[tuple[str, int]] = set()
            if assignment:
                for topic, partitions in ConsumerProtocolMemberAssignment.decode(assignment).assignment:
                    held.update((topic, p) for p in partitions)
            out[member_id] = held
        return out
    finally:
        await admin.close()
