"""Publish enveloped events: keyed by case, acknowledged by all in-sync replicas, idempotent."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaProducer

from shared import tracing
from shared.contracts.envelope import Envelope
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)


def event_headers(envelope: Envelope[Any]) -> list[tuple[str, bytes]]:
    """Headers that let a reader route or trace an event without parsing it (with the W3C
    ``traceparent`` of its story, ``shared.tracing``)."""
    return [
        ("event_type", envelope.event_type.encode()),
        ("event_id", str(envelope.event_id).encode()),
        ("correlation_id", envelope.correlation_id.encode()),
        ("schema_version", str(envelope.schema_version).encode()),
        *tracing.envelope_headers(envelope),
    ]


class Publisher:
    """An aiokafka producer that sends envelopes to the topic named by their event type."""

    def __init__(self, settings: KafkaSettings, *, client_id: str = "parley") -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=30_000,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def publish(self, envelope: Envelope[Any]) -> None:
        """Send one event and wait until the broker has acknowledged it."""
        await self._producer.send_and_wait(
            self.settings.topic(envelope.event_type),
            value=envelope.to_bytes(),
            key=envelope.key(),
            headers=event_headers(envelope),
        )

    async def send_raw(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Send bytes to a logical topic as they are (channel ingress, dead letters)."""
        await self._producer.send_and_wait(
            self.settings.topic(topic), value=value, key=key, headers=headers or []
        )

    async def send(self, topic: str, key: bytes, value: bytes) -> object:
        """``send(topic, key, value)`` for ``shared.outbox.relay``; the record carries the
        ``traceparent`` of the envelope in ``value`` (``shared.tracing``)."""
        return await self._producer.send_and_wait(self.settings.topic(topic), value=value, key=key,
                                                  headers=tracing.outgoing_headers(topic, value))


#: The producer's own cap on one uncompressed record for dead letters. The broker checks
#: the compressed batch against its ``message.max.bytes``; aiokafka checks the record
#: *before* compression against ``max_request_size``, so a 5 MB record that gzips to 50 KB
#: needs a cap above 5 MB here. ``shared.kafka.dlq`` decides beforehand what may be sent.
DEAD_LETTER_MAX_RECORD_BYTES = 256 * 1024 * 1024


class DeadLetterSender:
    """``send(topic, key, value, headers)`` for ``shared.kafka.dlq.DeadLetter``: gzip-compressed.

    Its own idempotent ``acks=all`` producer, made on first use (inside the running event
    loop) and stopped by ``stop``; compression makes most records that were compressed at
    their source fit on their dead-letter topic whole.
    """

    compressed = True

    def __init__(self, settings: KafkaSettings, *, client_id: str = "parley-dlq") -> None:
        self.settings = settings
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock: Any = None

    async def _started(self) -> AIOKafkaProducer:
        import asyncio

        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.bootstrap,
                    client_id=self.client_id,
                    acks="all",
                    enable_idempotence=True,
                    compression_type="gzip",
                    max_request_size=DEAD_LETTER_MAX_RECORD_BYTES,
                    request_timeout_ms=30_000,
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def __call__(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> object:
        producer = await self._started()
        return await producer.send_and_wait(topic, value=value, key=key, headers=headers)

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
