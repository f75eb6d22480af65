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


#: Decode one record into what a handler takes; raises ``InvalidMessage`` for bad input.
Decoder = Callable[[Incoming], Any]
#: Handle a batch of decoded items (in their Kafka order); returns what it wrote, if anything.
BatchHandler = Callable[[list[Any]], Awaitable[Any]]


def _group_by_key(pairs: list[tuple[Incoming, Any]]) -> list[list[tuple[Incoming, Any]]]:
    groups: dict[bytes | None, list[tuple[Incoming, Any]]] = {}
    for pair in pairs:
        groups.setdefault(pair[0].key, []).append(pair)
    return list(groups.values())


async def consume_batch(
    messages: list[Incoming],
    decode: Decoder,
    handle: BatchHandler,
    *,
    dead_letter: DeadLetter,
    max_attempts: int = 5,
    backoff_s: float = 0.5,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_result: Callable[[Any], Awaitable[object]] | None = None,
) -> dict[Outcome, int]:
    """Decode and handle a batch; dead-letter bad records; isolate a failing record.

    1. Each record is decoded; one that fails its contract goes to ``<topic>.dlq`` at once.
    2. The decoded items are handled as one batch (bulk reads and writes in the handler).
       A retriable failure retries the whole batch with backoff (handlers are idempotent).
    3. If the batch still fails, it is split: each record is handled on its own through
       ``consume_one`` (same-key records in order, different keys concurrently), so only
       the record at fault is retried to its bound and dead-lettered; the rest go through.

    ``on_result`` receives what each successful ``handle`` call returned (the outbox
    relay uses it to publish what the batch wrote). Never raises for a record's failure.
    """
    counts: dict[Outcome, int] = {"handled": 0, "dead_lettered": 0}
    decoded: list[tuple[Incoming, Any]] = []
    for message in messages:
        try:
            decoded.append((message, decode(message)))
        except InvalidMessage as exc:
            log.warning(
                "dead-lettering %s@%s/%s: %s",
                message.topic, message.partition, message.offset, exc.reason[:500],
            )
            await dead_letter(
                topic=message.topic, key=message.key, value=message.value,
                partition=message.partition, offset=message.offset,
                reason=exc.reason, errors=exc.errors, attempts=1,
            )
            counts["dead_lettered"] += 1
    if not decoded:
        return counts

    async def run(items: list[Any]) -> None:
        result = await handle(items)
        if on_result is not None:
            await on_result(result)

    if len(decoded) > 1:
        attempt = 0
        while True:
            attempt += 1
            try:
                await run([item for _, item in decoded])
                counts["handled"] += len(decoded)
                return counts
            except Exception as exc:  # noqa: BLE001 - routed below, record by record
                if is_retriable(exc) and attempt < max_attempts:
                    delay = backoff_s * 2 ** (attempt - 1)
                    log.warning(
                        "transient %s on a batch of %d from %s (attempt %d/%d); retrying in %.1fs",
                        type(exc).__name__, len(decoded), decoded[0][0].topic, attempt,
                        max_attempts, delay,
                    )
                    await sleep(delay)
                    continue
                log.warning(
                    "batch of %d from %s failed (%s); handling its records one by one",
                    len(decoded), decoded[0][0].topic, type(exc).__name__,
                )
                break

    def alone(item: Any) -> Callable[[Incoming], Awaitable[None]]:
        async def handle_one(_: Incoming) -> None:
            await run([item])

        return handle_one

    async def one_group(group: list[tuple[Incoming, Any]]) -> None:
        for message, item in group:
            outcome = await consume_one(
                message, alone(item), dead_letter=dead_letter,
                max_attempts=max_attempts, backoff_s=backoff_s, sleep=sleep,
            )
            counts[outcome] += 1

    await asyncio.gather(*(one_group(g) for g in _group_by_key(decoded)))
    return counts
