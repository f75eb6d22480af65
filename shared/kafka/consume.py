"""The consume step every agent runs: handle a message, retry what may pass, dead-letter the rest.

faust acks a message even when the agent raised, so nothing may escape this step
unhandled: a message is either handled, or (bad input, or a failure that outlived its
retries) copied whole to ``<topic>.dlq`` with the reason. Handlers must be idempotent,
because Kafka redelivers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pymongo.errors import AutoReconnect, ConnectionFailure, NetworkTimeout

from shared.errors import InvalidMessage
from shared.kafka.dlq import DeadLetter
from shared.logging import log_context

log = logging.getLogger(__name__)

Outcome = Literal["handled", "dead_lettered"]


@dataclass(frozen=True)
class Incoming:
    """One Kafka record as a handler sees it; ``topic`` is the logical (unprefixed) name."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    offset: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @classmethod
    def from_faust(cls, event: Any, topic: str) -> Incoming:
        """Build from a faust ``EventT`` read with raw key and value serializers."""
        message = event.message
        headers = message.headers or []
        if isinstance(headers, dict):
            headers = list(headers.items())
        return cls(topic, message.key, message.value, message.partition, message.offset, headers)


def is_retriable(exc: BaseException) -> bool:
    """Whether the same message may succeed later (a dependency hiccup, not bad input)."""
    if getattr(exc, "retriable", False):
        return True
    return isinstance(exc, AutoReconnect | ConnectionFailure | NetworkTimeout | TimeoutError)


async def consume_one(
    message: Incoming,
    handle: Callable[[Incoming], Awaitable[object]],
    *,
    dead_letter: DeadLetter,
    max_attempts: int = 5,
    backoff_s: float = 0.5,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Outcome:
    """Run ``handle`` on one message; return whether it was handled or dead-lettered."""
    key_text = (message.key or b"").decode("utf-8", "replace")[:64]
    with log_context(case_id=key_text or None):
        attempt = 0
        while True:
            attempt += 1
            try:
                await handle(message)
                return "handled"
            except InvalidMessage as exc:
                log.warning(
                    "dead-lettering %s@%s/%s: %s",
                    message.topic, message.partition, message.offset, exc.reason[:500],
                )
                await dead_letter(
                    topic=message.topic, key=message.key, value=message.value,
                    partition=message.partition, offset=message.offset,
                    reason=exc.reason, errors=exc.errors, attempts=attempt,
                )
                return "dead_lettered"
            except Exception as exc:  # noqa: BLE001 - every failure is routed, none is lost
                if is_retriable(exc) and attempt < max_attempts:
                    delay = backoff_s * 2 ** (attempt - 1)
                    log.warning(
                        "transient %s on %s (attempt %d/%d); retrying in %.1fs",
                        type(exc).__name__, message.topic, attempt, max_attempts, delay,
                    )
                    await sleep(delay)
                    continue
                log.exception("dead-lettering %s after %d attempt(s)", message.topic, attempt)
                reason = (
                    f"gave up after {attempt} attempts: {type(exc).__name__}"
                    if is_retriable(exc)
                    else f"processing failed: {type(exc).__name__}: {str(exc)[:300]}"
                )
                await dead_letter(
                    topic=message.topic, key=message.key, value=message.value,
                    partition=message.partition, offset=message.offset,
                    reason=reason, error_type=type(exc).__name__, attempts=attempt,
                )
                return "dead_lettered"
