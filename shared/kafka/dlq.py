"""Dead letters: what a consumer could not process, kept whole with the reason.

The dead-letter record carries the original key and value bytes untouched; the reason and
the source position travel in headers (the convention Kafka Connect uses), so a replay
tool can re-publish the value exactly as it arrived. Reasons never contain input values,
which may hold personal data.

**A record too large for its dead-letter topic.** A record may reach a consumer because it
was compressed at its source (a 5 MB complaint gzipped to 40 KB fits the broker's
``message.max.bytes``), while its dead-letter copy is a new record that must fit again.
Dead letters are sent gzip-compressed (the broker checks the compressed batch), which lets
most such records through whole. When the copy still cannot fit — judged before sending
(``dlq_would_fit`` against ``KafkaSettings.message_max_bytes`` less ``HEADROOM_BYTES``), or
refused by the producer or the broker for its size — the original key, value and headers
are kept in the consuming service's own database (collection ``dead_letter_bodies``,
``_id`` = ``<topic>:<partition>:<offset>``, an idempotent insert) and the dead-letter topic
gets a reference: an empty value with the usual ``dlq.*`` headers plus ``dlq.stored_in``
(``<database>/<collection>``), ``dlq.stored_id``, ``dlq.stored_reason`` and
``dlq.original_bytes``. ``read_stored_body`` gives the bytes back.

A dead letter's body is the raw complaint, personal data and all, so the store seals it
(``shared.crypto``): ``value`` (or each part's ``data``) is an ``enc:v1:<kid>:...`` token
bound to its field and document ``_id``, and each document records its key id in ``kid``.
``read_stored_body`` opens it, and records who read it and why (``shared.originals``,
``original_reads`` in the same database). ``python -m shared.crypto rotate --db <service db>
--collection dead_letter_bodies --fields value,data`` re-encrypts under a new key.

If the record can be put in neither place, ``DeadLetter`` raises (``DeadLetterFailed``, or
the send's or the store's own error after its retries): the consume step must then not
acknowledge the batch (see ``shared.kafka.consume.settle``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.crypto import KeyRing, default_keyring, is_sealed
from shared.originals import record_read

log = logging.getLogger(__name__)

#: Send (physical topic, key, value, headers); returns when the broker acknowledged it.
SendFn = Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[object]]

MAX_REASON_BYTES = 16_000

#: Kafka's default ``message.max.bytes`` (the broker's limit on a record batch).
KAFKA_MESSAGE_MAX_BYTES = 1_048_588
#: Room kept below the broker's limit for what the estimate does not count exactly.
HEADROOM_BYTES = 64 * 1024
#: Bytes a record batch of one record adds around its key, value and headers (batch
#: header 61 bytes, record framing and varints; rounded up).
RECORD_OVERHEAD_BYTES = 128
#: The collection, in the consuming service's own database, holding bodies too large to send.
DEAD_LETTER_COLLECTION = "dead_letter_bodies"
#: Largest part of a stored body in one document (a MongoDB document holds at most 16 MiB).
STORE_CHUNK_BYTES = 4 * 1024 * 1024
#: Largest key copied onto a reference record (a longer one stays in the store only).
MAX_REFERENCE_KEY_BYTES = 1024


class DeadLetterFailed(Exception):
    """A record could be put neither on its dead-letter topic nor in the dead-letter store.

    Whoever consumed it must not acknowledge it: its offset may not be committed.
    """


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


# ------------------------------------------------------------------ the size decision


def dlq_limit(message_max_bytes: int = KAFKA_MESSAGE_MAX_BYTES) -> int:
    """The largest dead-letter record we try to send: the broker's limit less headroom."""
    headroom = min(HEADROOM_BYTES, message_max_bytes // 8)
    return message_max_bytes - headroom


def record_bytes(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """About how many bytes one uncompressed record takes in a batch (a slight overestimate)."""
    size = RECORD_OVERHEAD_BYTES + len(key or b"") + len(value or b"")
    for name, data in headers:
        size += len(name.encode()) + len(data or b"") + 10
    return size


def compressed_bytes(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """About how many bytes the record takes in a gzip-compressed batch.

    zlib at level 6 (the producer uses gzip at level 9, which compresses at least about as
    well) over the whole record, plus gzip's framing and the batch header, which stays
    uncompressed.
    """
    raw = b"".join(
        [key or b"", value or b"", *(name.encode() + (data or b"") for name, data in headers)]
    )
    return RECORD_OVERHEAD_BYTES + 32 + len(zlib.compress(raw, 6))


def dlq_would_fit(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    *,
    limit: int,
    compressed: bool,
) -> bool:
    """Whether a dead-letter record of this key, value and headers fits in ``limit`` bytes.

    A record that fits uncompressed fits; otherwise, when the sender compresses, the
    compressed estimate decides (computed only for records over the limit, so the common
    small dead letter costs nothing).
    """
    if record_bytes(key, value, headers) <= limit:
        return True
    if not compressed:
        return False
    return compressed_bytes(key, value, headers) <= limit


def is_too_large(exc: BaseException) -> bool:
    """Whether a send failed because the record is too large (producer or broker said so)."""
    from aiokafka.errors import (
        MessageSizeTooLargeError,
        RecordListTooLargeError,
        RecordTooLargeError,
    )

    return isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError | RecordTooLargeError)


# ------------------------------------------------------------------ the store


def stored_id(topic: str, partition: int | None, offset: int | None) -> str:
    """The store's ``_id`` of a record: ``<topic>:<partition>:<offset>`` (logical topic)."""
    return f"{topic}:{partition if partition is not None else -1}:{offset if offset is not None else -1}"


class DeadLetterStore(Protocol):
    """Where bodies too large for a dead-letter topic are kept."""

    async def put(self, doc_id: str, document: dict[str, Any]) -> str:
        """Keep ``document`` under ``doc_id`` (idempotent); return ``<database>/<collection>``."""
        ...


#: The sealed fields of a stored dead letter: the main document's ``value``, a part's ``data``.
SEALED_FIELDS = ("value", "data")


@dataclass
class MongoDeadLetterStore:
    """A ``DeadLetterStore`` on a collection of the service's own database.

    ``collection`` returns the collection (the worker makes its database client inside its
    event loop, on first use; pass ``lambda: coll`` for one at hand). A body larger than
    ``STORE_CHUNK_BYTES`` is split into ``<_id>#<n>`` part documents, written before the
    main document, so the main document's presence means the body is complete. Inserts
    are idempotent: a document already there (the same record dead-lettered again after a
    redelivery) is left as it is. Bodies are sealed with ``keyring`` (default: the
    process's, ``shared.crypto.default_keyring``), each part on its own.
    """

    collection: Callable[[], Any]
    keyring: KeyRing | None = None

    async def put(self, doc_id: str, document: dict[str, Any]) -> str:
        from pymongo.errors import DuplicateKeyError

        ring = self.keyring or default_keyring()
        coll = self.collection()
        value: bytes = document.get("value") or b""
        main = dict(document)
        if len(value) > STORE_CHUNK_BYTES:
            parts = [value[i:i + STORE_CHUNK_BYTES] for i in range(0, len(value), STORE_CHUNK_BYTES)]
            for n, part in enumerate(parts):
                part_id = f"{doc_id}#{n}"
                try:
                    await coll.insert_one({"_id": part_id, "of": doc_id, "n": n, "kid": ring.active,
                                           "data": ring.seal(part, field="data", doc_id=part_id)})
                except DuplicateKeyError:
                    pass
            main["value"] = None
            main["value_parts"] = len(parts)
        elif document.get("value") is not None:
            main["value"] = ring.seal(value, field="value", doc_id=doc_id)
        try:
            await coll.insert_one({"_id": doc_id, **main, "kid": ring.active})
        except DuplicateKeyError:
            pass
        return f"{coll.database.name}/{coll.name}"


def _opened(ring: KeyRing, doc: dict[str, Any], name: str) -> bytes:
    value = doc[name]
    if is_sealed(value):
        return ring.open(value, field=name, doc_id=doc["_id"])
    return bytes(value)  # stored before bodies were sealed


async def read_stored_body(
    collection: Any, doc_id: str, *, reader: str, purpose: str, keyring: KeyRing | None = None
) -> dict[str, Any] | None:
    """The stored document of a dead letter with its whole ``value`` (opened, parts joined), or None.

    The read is recorded first (``shared.originals.record_read``: ``reader``, ``purpose``,
    in ``original_reads`` of the same database); a read that cannot be recorded fails.
    """
    ring = keyring or default_keyring()
    doc: dict[str, Any] | None = await collection.find_one({"_id": doc_id})
    await record_read(collection.database, reader=reader, purpose=purpose,
                      collection=collection.name, record_id=doc_id, fields=["key", "value", "headers"],
                      found=doc is not None)
    if doc is None:
        return None
    parts = doc.get("value_parts")
    if parts:
        chunks = []
        for n in range(int(parts)):
            part = await collection.find_one({"_id": f"{doc_id}#{n}"})
            if part is None:
                raise LookupError(f"part {n} of the stored dead letter {doc_id} is missing")
            chunks.append(_opened(ring, part, "data"))
        doc["value"] = b"".join(chunks)
    elif doc.get("value") is not None:
        doc["value"] = _opened(ring, doc, "value")
    if doc.get("key") is not None:
        doc["key"] = bytes(doc["key"])
    return doc


# ------------------------------------------------------------------ the sender


@dataclass
class DeadLetter:
    """Sends records to ``<topic>.dlq`` for one consumer.

    ``compressed`` says whether ``send`` compresses (gzip); ``limit`` is the largest record
    it may send (``dlq_limit(settings.kafka.message_max_bytes)``). With a ``store``, a
    record that cannot fit is kept there and referenced on the topic; without one, such a
    record raises ``DeadLetterFailed``. Failures to send or store are retried
    ``attempts`` times; then the last error is raised. Either way the record is in neither
    place, and the caller must not acknowledge it.
    """

    send: SendFn
    consumer: str
    topic_prefix: str = ""
    store: DeadLetterStore | None = None
    limit: int = field(default_factory=dlq_limit)
    compressed: bool = False
    attempts: int = 3
    backoff_s: float = 0.5
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

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
        source_headers: Sequence[tuple[str, bytes]] = (),
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
        dlq_topic = f"{self.topic_prefix}{topic}.dlq"
        why_stored: str | None = None
        if dlq_would_fit(key, value, headers, limit=self.limit, compressed=self.compressed):
            try:
                await self._retrying("send", lambda: self.send(dlq_topic, key, value, headers))
                return
            except _TooLarge as exc:
                why_stored = f"refused for its size: {type(exc.cause).__name__}"
        else:
            why_stored = (
                f"{record_bytes(key, value, headers)} bytes do not fit the dead-letter topic "
                f"(limit {self.limit}{', compressed' if self.compressed else ''})"
            )
        await self._store_and_reference(
            dlq_topic, topic=topic, key=key, value=value, partition=partition, offset=offset,
            headers=headers, source_headers=source_headers, why=why_stored,
        )

    async def _store_and_reference(
        self, dlq_topic: str, *, topic: str, key: bytes | None, value: bytes | None,
        partition: int | None, offset: int | None, headers: list[tuple[str, bytes]],
        source_headers: Sequence[tuple[str, bytes]], why: str,
    ) -> None:
        store = self.store
        where = f"{topic}@{partition}/{offset}"
        if store is None:
            raise DeadLetterFailed(f"{where}: {why}, and there is no dead-letter store")
        doc_id = stored_id(topic, partition, offset)
        document: dict[str, Any] = {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": key,
            "value": value,
            # documents, not pairs: FerretDB v1 refuses arrays inside arrays
            "headers": [{"name": name, "value": data} for name, data in source_headers],
            "dlq_headers": [{"name": name, "value": data} for name, data in headers],
            "size": len(value or b""),
            "why": why,
            "consumer": self.consumer,
            "stored_at": datetime.now(UTC),
        }
        stored_in = await self._retrying("store", lambda: store.put(doc_id, document))
        log.warning("dead letter %s kept in %s as %s: %s", where, stored_in, doc_id, why)
        reference = [
            *headers,
            ("dlq.stored_in", str(stored_in).encode()),
            ("dlq.stored_id", doc_id.encode()),
            ("dlq.stored_reason", why.encode()[:MAX_REASON_BYTES]),
            ("dlq.original_bytes", str(len(value or b"")).encode()),
        ]
        ref_key = key if key is not None and len(key) <= MAX_REFERENCE_KEY_BYTES else None
        try:
            await self._retrying("send the reference", lambda: self.send(dlq_topic, ref_key, b"", reference))
        except _TooLarge as exc:
            raise DeadLetterFailed(f"{where}: even its reference was too large") from exc.cause

    async def _retrying(self, what: str, step: Callable[[], Awaitable[Any]]) -> Any:
        for attempt in range(1, self.attempts + 1):
            try:
                return await step()
            except Exception as exc:  # noqa: BLE001 - size errors are routed, the rest retried
                if is_too_large(exc):
                    raise _TooLarge(exc) from exc
                if attempt >= self.attempts:
                    log.error("could not %s a dead letter after %d attempts: %s",
                              what, attempt, type(exc).__name__)
                    raise
                delay = self.backoff_s * 2 ** (attempt - 1)
                log.warning("could not %s a dead letter (%s, attempt %d/%d); retrying in %.1fs",
                            what, type(exc).__name__, attempt, self.attempts, delay)
                await self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


class _TooLarge(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def read_headers(headers: list[tuple[str, bytes]] | dict[str, bytes] | None) -> dict[str, str]:
    """Decode record headers to text (for readers of dead-letter topics)."""
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    return {k: (v or b"").decode("utf-8", "replace") for k, v in items}
