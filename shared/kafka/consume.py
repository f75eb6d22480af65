"""The consume step every agent runs: handle a message, retry what may pass, dead-letter the rest.

faust acks a message even when the agent raised, so nothing may escape this step
unhandled: a message is either handled, or (bad input, or a failure that outlived its
retries) copied whole to ``<topic>.dlq`` with the reason (or, too large for that topic,
kept in the service's dead-letter store with a reference on it: ``shared.kafka.dlq``).
Handlers must be idempotent, because Kafka redelivers.

The one failure this step lets out is ``DeadLetterFailed``: a record that could be put in
neither place. ``settle`` is what an agent runs a batch in: it retries such a batch (with
backoff, for as long as the worker runs) and, should the agent stop meanwhile, withholds
the batch's acknowledgements, so no offset is committed past a record that is nowhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pymongo.errors import AutoReconnect, ConnectionFailure, NetworkTimeout

from shared import metrics
from shared.errors import InvalidMessage
from shared.kafka.dlq import DeadLetter, DeadLetterFailed
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
                    source_headers=message.headers,
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
                    source_headers=message.headers,
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
    relay uses it to publish what the batch wrote). Never raises for a record's failure;
    raises ``DeadLetterFailed`` when a record could not be dead-lettered anywhere (after
    every record of the batch has been dealt with).
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
                source_headers=message.headers,
            )
            counts["dead_lettered"] += 1
            metrics.consumed(dead_letter.consumer, message.topic, "dead_lettered")
        except Exception as exc:  # noqa: BLE001 - a decoder's own failure is the record's, too
            log.exception("dead-lettering %s@%s/%s: the decoder failed",
                          message.topic, message.partition, message.offset)
            await dead_letter(
                topic=message.topic, key=message.key, value=message.value,
                partition=message.partition, offset=message.offset,
                reason=f"could not be decoded: {type(exc).__name__}: {str(exc)[:300]}",
                error_type=type(exc).__name__, attempts=1, source_headers=message.headers,
            )
            counts["dead_lettered"] += 1
            metrics.consumed(dead_letter.consumer, message.topic, "dead_lettered")
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
                for message, _ in decoded:
                    metrics.consumed(dead_letter.consumer, message.topic, "handled")
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
            metrics.consumed(dead_letter.consumer, message.topic, outcome)

    results = await asyncio.gather(*(one_group(g) for g in _group_by_key(decoded)),
                                   return_exceptions=True)
    for result in results:  # every group has finished; now the first failure, if any
        if isinstance(result, BaseException):
            raise result
    return counts


T = TypeVar("T")


def withhold_acks(events: Sequence[Any]) -> None:
    """Make faust never acknowledge ``events`` (faust ``Event``s), so their offsets are not
    committed (nor any later offset of their partitions).

    faust's ``take_events`` acknowledges a batch when the agent leaves it, whether it
    finished, raised or was cancelled. Marking a message as acknowledged *without* telling
    the consumer keeps its offset out of the consumer's acknowledged set: the committed
    offset stops before it, and the record is delivered again after a restart or rebalance.
    """
    for event in events:
        message = getattr(event, "message", None)
        if message is not None:
            message.acked = True


async def settle(
    events: Sequence[Any],
    run: Callable[[], Awaitable[T]],
    *,
    backoff_s: float = 1.0,
    max_backoff_s: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run one batch (``run``, e.g. ``consume_batch``) until it completes; never let faust
    acknowledge it otherwise.

    A failure (``DeadLetterFailed``: a record that is neither handled, nor on its dead-letter
    topic, nor in the dead-letter store; or any unexpected error) retries the whole batch
    with growing backoff (handlers are idempotent), for as long as the worker runs: the
    partitions wait rather than lose a record. If the agent is stopped meanwhile, the
    batch's acknowledgements are withheld (``withhold_acks``) and it is delivered again.
    """
    attempt = 0
    try:
        while True:
            attempt += 1
            try:
                return await run()
            except Exception as exc:  # noqa: BLE001 - nothing may be acknowledged unsettled
                delay = min(max_backoff_s, backoff_s * 2 ** min(attempt - 1, 16))
                log.error(  # the error's text may quote the record (a database's refusal): not logged
                    "a batch of %d could not be settled (%s%s; attempt %d); not acknowledged, "
                    "retrying in %.1fs", len(events), type(exc).__name__,
                    f": {exc}" if isinstance(exc, DeadLetterFailed) else "", attempt, delay,
                )
                await sleep(delay)
    except BaseException:
        withhold_acks(events)
        raise
