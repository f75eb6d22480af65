"""Helpers for intake's integration tests: complaint builders, batch producing, hostile inputs."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.settings import CommonSettings


def complaint(
    n: int,
    *,
    text: str = "你们的催收电话一天打了二十多次，还打给我的同事和家人，严重影响我的工作。",
    channel: str = "app",
    customer_id: str | None = None,
    product: str = "consumer_loan",
    received_at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A valid complaint submission, distinct per ``n`` (its own customer unless told)."""
    received = received_at or datetime.now(UTC) - timedelta(hours=1)
    body: dict[str, Any] = {
        "channel_complaint_id": f"C{n:07d}",
        "channel": channel,
        "received_at": received.isoformat(),
        "customer": {
            "customer_id": customer_id or f"CUST{n:07d}",
            "name": "张小明",
            "phone": f"139{n:08d}"[:11],
            "id_number": f"11010119900307{n % 10000:04d}"[:17] + "X",
        },
        "product": product,
        "text": text,
        "amount_disputed": "1280.50",
        "demand": "停止骚扰，减免罚息",
        "attachments": [{"ref": f"s3://evidence/C{n:07d}/call-log.png"}],
    }
    body.update(extra)
    return body


def encode(body: dict[str, Any]) -> bytes:
    """JSON bytes as a channel sends them."""
    return json.dumps(body, ensure_ascii=False).encode()


async def produce(
    settings: CommonSettings, topic: str, records: list[tuple[bytes | None, bytes | None]]
) -> None:
    """Send records in batches (not one round trip each) and wait for every acknowledgement."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap, acks="all", enable_idempotence=True,
        linger_ms=20, max_request_size=1_048_576,
    )
    await producer.start()
    try:
        physical = settings.kafka.topic(topic)
        futures = [await producer.send(physical, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def hostile_kinds() -> list[tuple[str, bytes | None, str]]:
    """Bad inputs as (name, raw value, what the error must name: a field, or words of the reason)."""
    good = complaint(0)
    raw = encode(good)

    def with_(**changes: Any) -> bytes:
        return encode({**good, **changes})

    def without(name: str) -> bytes:
        return encode({k: v for k, v in good.items() if k != name})

    future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    return [
        ("broken json", b'{"channel": "app", "text": ', "not valid JSON"),
        ("truncated json", raw[: len(raw) // 2], "not valid JSON"),
        ("invalid utf-8 byte", raw[:40] + b"\xff\xfe" + raw[40:], "not valid UTF-8"),
        ("gbk bytes", with_(text="PLACEHOLDER").replace(b"PLACEHOLDER", "催收".encode("gbk")), "not valid UTF-8"),
        ("text is a number", with_(text=42), "text"),
        ("customer is a string", with_(customer="C1"), "customer"),
        ("amount is a list", with_(amount_disputed=[1, 2]), "amount_disputed"),
        ("missing customer", without("customer"), "customer"),
        ("missing text", without("text"), "text"),
        ("missing received_at", without("received_at"), "received_at"),
        ("empty object", b"{}", "channel_complaint_id"),
        ("oversized text", with_(text="投" * 300_000), "text"),
        ("$where as id", with_(channel_complaint_id={"$where": "sleep(10000)"}), "channel_complaint_id"),
        ("$where in id string", with_(channel_complaint_id="$where:1"), "channel_complaint_id"),
        ("$where at top level", with_(**{"$where": "this.text.length > 0"}), "$where"),
        ("$gt as customer id", with_(customer={**good["customer"], "customer_id": {"$gt": ""}}), "customer.customer_id"),
        ("huge float amount", raw.replace(b'"amount_disputed": "1280.50"', b'"amount_disputed": 1e400'), "amount_disputed"),
        ("huge integer amount", with_(amount_disputed=10**40), "amount_disputed"),
        ("integer beyond parser limit", raw.replace(b'"amount_disputed": "1280.50"', b'"amount_disputed": ' + b"9" * 5000), "not usable JSON"),
        ("NaN amount", raw.replace(b'"amount_disputed": "1280.50"', b'"amount_disputed": NaN'), "amount_disputed"),
        ("future date", with_(received_at=future), "received_at"),
        ("naive date", with_(received_at="2026-11-01T08:00:00"), "received_at"),
        ("unknown channel", with_(channel="carrier_pigeon"), "channel"),
        ("array root", b"[1, 2, 3]", "JSON object"),
        ("no value", None, "no value"),
    ]
