"""Reading topics in tests: every partition from the beginning, without a consumer group."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.settings import CommonSettings


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
        partitions = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not partitions:
            partitions = consumer.partitions_for_topic(physical)
            if not partitions:
                await consumer._client.force_metadata_update()  # noqa: SLF001
                partitions = consumer.partitions_for_topic(physical)
            if not partitions:
                if loop.time() > deadline:
                    raise AssertionError(f"topic {physical} does not exist")
                await asyncio.sleep(0.2)
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
