"""Dead letters: what a consumer could not process, kept whole with the reason.

The dead-letter record carries the original key and value bytes untouched; the reason and
the source position travel in headers (the convention Kafka Connect uses), so a replay
tool can re-publish the value exactly as it arrived. Reasons never contain input values,
which may hold personal data.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

#: Send (physical topic, key, value, headers); returns when the broker acknowledged it.
SendFn = Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[object]]

MAX_REASON_BYTES = 16_000


def dead_letter_headers(
    *,
    reason: str,
    errors: list[dict[str, str]] | None,
    error_type: str,
    consumer: str,
    source_topic: str,
    partition: int | None,
    offset: int | None,
    attempts: int,
) -> list[tuple[str, bytes]]:
    """Build the headers of a dead-letter record."""
    reason_bytes = reason.encode("utf-8")[:MAX_REASON_BYTES]
    return [
        ("dlq.reason", reason_bytes),
        ("dlq.errors", json.dumps(errors or [], ensure_ascii=False).encode()[:MAX_REASON_BYTES]),
        ("dlq.error_type", error_type.encode()),
        ("dlq.consumer", consumer.encode()),
        ("dlq.source_topic", source_topic.encode()),
        ("dlq.source_partition", str(partition if partition is not None else -1).encode()),
        ("dlq.source_offset", str(offset if offset is not None else -1).encode()),
        ("dlq.attempts", str(attempts).encode()),
        ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
    ]


@dataclass
class DeadLetter:
    """Sends records to ``<topic>.dlq`` for one consumer."""

    send: SendFn
    consumer: str
    topic_prefix: str = ""

    async def __call__(
        self,
        *,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        offset: int | None,
        reason: str,
        errors: list[dict[str, str]] | None = None,
        error_type: str = "InvalidMessage",
        attempts: int = 1,
    ) -> None:
        headers = dead_letter_headers(
            reason=reason,
            errors=errors,
            error_type=error_type,
            consumer=self.consumer,
            source_topic=topic,
            partition=partition,
            offset=offset,
            attempts=attempts,
        )
        await self.send(f"{self.topic_prefix}{topic}.dlq", key, value, headers)


def read_headers(headers: list[tuple[str, bytes]] | dict[str, bytes] | None) -> dict[str, str]:
    """Decode record headers to text (for readers of dead-letter topics)."""
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    return {k: (v or b"").decode("utf-8", "replace") for k, v in items}
