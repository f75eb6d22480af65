"""Consumer lag from Kafka: committed offsets of every service's group and the end offsets.

The Kafka side of ``handlers.partition_lags``: one admin client (topic metadata,
``list_consumer_group_offsets`` per group) and one consumer without a group (``end_offsets``),
opened for one reading and closed after it — a reading is a handful of requests, made once a
minute by the worker's timer and on demand by the API.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import (
    DescribeGroupsRequest_v0,
    DescribeGroupsRequest_v1,
    DescribeGroupsRequest_v2,
)
from aiokafka.protocol.api import Request

from services.supervision.handlers import PartitionLag, consumer_groups, partition_lags
from shared.settings import KafkaSettings


async def read_lag(kafka: KafkaSettings) -> dict[str, list[PartitionLag]]:
    """Every service's consumer group → one row per partition of every topic it reads."""
    groups = consumer_groups(kafka.topic_prefix)
    client_id = f"parley-supervision-lag-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, client_id=client_id)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, client_id=client_id,
                                enable_auto_commit=False, group_id=None)
    await admin.start()
    try:
        await consumer.start()
        try:
            logical = sorted({t for topics in groups.values() for t in topics})
            described = await admin.describe_topics([kafka.topic(t) for t in logical])
            partitions: dict[str, list[int]] = {}
            for entry in described:
                if entry.get("error_code", 0) == 0:
                    name = str(entry["topic"]).removeprefix(kafka.topic_prefix)
                    partitions[name] = sorted(int(p["partition"]) for p in entry["partitions"])
            every = [TopicPartition(kafka.topic(t), p) for t, ps in partitions.items() for p in ps]
            ends_raw: dict[Any, int] = await consumer.end_offsets(every) if every else {}
            ends = {(tp.topic.removeprefix(kafka.topic_prefix), tp.partition): int(o) for tp, o in ends_raw.items()}

            async def one(group: str, topics: tuple[str, ...]) -> list[PartitionLag]:
                mine = [(t, p) for t in topics for p in partitions.get(t, [])]
                offsets = await _committed(admin, group, [TopicPartition(kafka.topic(t), p) for t, p in mine])
                committed = {(tp.topic.removeprefix(kafka.topic_prefix), tp.partition): int(meta.offset)
                             for tp, meta in offsets.items()}
                return partition_lags(group, mine, committed, ends)

            rows = await asyncio.gather(*(one(g, ts) for g, ts in groups.items()))
            return dict(zip(groups, rows, strict=True))
        finally:
            await consumer.stop()
    finally:
        await admin.close()


async def _committed(admin: AIOKafkaAdminClient, group: str, partitions: list[TopicPartition],
                     attempts: int = 3) -> dict[Any, Any]:
    """The group's committed offsets on ``partitions``; a retriable error (the group
    coordinator not ready yet, on a broker that never had a group) is retried briefly."""
    if not partitions:
        return {}
    for attempt in range(1, attempts + 1):
        try:
            return dict(await admin.list_consumer_group_offsets(group, partitions=partitions))
        except KafkaError as exc:
            if not exc.retriable or attempt == attempts:
                raise
            await asyncio.sleep(0.5 * attempt)
    return {}


class _DescribeGroups(Request[DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]):
    """DescribeGroups up to v2. aiokafka 0.14's own request also offers v3 but decodes its
    answer with v2's schema (no ``authorized_operations``), which fails on a broker that
    answers v3 (Kafka 4.x: "Buffer underrun decoding string")."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(self._groups)


async def read_members(kafka: KafkaSettings) -> dict[str, int]:
    """Every service's consumer group → how many members (running workers) it has now."""
    groups = list(consumer_groups(kafka.topic_prefix))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap,
                                client_id=f"parley-supervision-members-{uuid.uuid4().hex[:6]}")
    await admin.start()
    try:
        members = dict.fromkeys(groups, 0)
        by_node: dict[int, list[str]] = {}
        for group in groups:
            by_node.setdefault(await admin.find_coordinator(group), []).append(group)
        for node, mine in by_node.items():
            response = await admin._send_request(_DescribeGroups(mine), node)  # noqa: SLF001 (see _DescribeGroups)
            for described in response.groups:
                # (error_code, group_id, state, protocol_type, protocol, members)
                error_code, group_id, members_of = described[0], described[1], described[5]
                if error_code == 0 and group_id in members:
                    members[group_id] = len(members_of)
        return members
    finally:
        await admin.close()
