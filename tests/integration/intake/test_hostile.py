"""Hostile input on Kafka: 50 bad messages land in the DLQ byte for byte, valid traffic flows on."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from services.intake.repository import IntakeRepository
from services.intake.settings import Settings
from shared.kafka.dlq import read_headers
from tests.integration.intake.support import complaint, encode, hostile_kinds, produce
from tests.support.eventually import eventually
from tests.support.kafka import read_all
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration


async def test_fifty_hostile_messages_are_dead_lettered_while_valid_ones_register(
    intake_settings: Settings, repo: IntakeRepository, processes: Callable[..., ServiceProcess]
) -> None:
    kinds = hostile_kinds()
    hostile = {f"H{i:03d}".encode(): kinds[i % len(kinds)] for i in range(50)}
    records: list[tuple[bytes | None, bytes | None]] = []
    valid = 0
    for i, (key, (_name, raw, _expected)) in enumerate(hostile.items()):
        records.append((key, raw))
        for j in range(2):  # two valid complaints after every bad one
            body = complaint(1000 + 2 * i + j)
            records.append((body["channel_complaint_id"].encode(), encode(body)))
            valid += 1
    processes("worker")
    await produce(intake_settings, "complaint.received", records)

    dead = await read_all(intake_settings, "complaint.received.dlq", expected=50, timeout=120)

    async def all_valid_registered() -> bool:
        # the complaint records are written last in a batch (after the cases they join)
        return await repo.complaints.count_documents({}) == valid

    await eventually(all_valid_registered, timeout=120, what=f"{valid} cases")
    assert len(dead) == 50
    for record in dead:
        name, raw, expected = hostile[record.key]
        assert record.value == raw, f"{name}: the DLQ must keep the original bytes"
        headers = read_headers(record.headers)
        assert headers["dlq.source_topic"] == "complaint.received"
        assert headers["dlq.consumer"] == "intake" and headers["dlq.error_type"] == "InvalidMessage"
        errors = json.loads(headers["dlq.errors"])
        named = {e["field"] for e in errors}
        assert expected in named or expected in headers["dlq.reason"], (name, headers)
        assert "张小明" not in headers["dlq.reason"] and "139" not in headers["dlq.errors"]
    assert await repo.cases.count_documents({}) == valid


async def test_a_five_megabyte_complaint_cannot_even_be_produced(
    intake_settings: Settings, repo: IntakeRepository
) -> None:
    """Kafka's default message limit (~1 MB) stops a 5 MB complaint at the channel's producer."""
    body = encode(complaint(1, text="长" * (5 * 1024 * 1024 // 3)))
    assert len(body) > 5_000_000
    producer = AIOKafkaProducer(bootstrap_servers=intake_settings.kafka.bootstrap)
    await producer.start()
    try:
        with pytest.raises(MessageSizeTooLargeError):
            await producer.send_and_wait(intake_settings.kafka.topic("complaint.received"), body, key=b"C1")
    finally:
        await producer.stop()
