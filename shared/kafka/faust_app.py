"""Build a service's faust app from settings, the same way for every service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from shared import tracing
from shared.kafka.batches import QuietStream
from shared.kafka.dlq import DeadLetter, DeadLetterStore, dlq_limit
from shared.kafka.producer import DeadLetterSender
from shared.settings import CommonSettings


def make_faust_app(
    service: str,
    settings: CommonSettings,
    *,
    datadir: str | Path | None = None,
    web_port: int | None = None,
    **overrides: Any,
) -> faust.App:
    """Return a faust app for ``service``: group id, broker, timeouts and store from settings.

    Tables use the in-memory store; they are rebuilt from their changelog topics on start.
    New consumer groups read from the earliest offset, so nothing published before a
    service first started is skipped. Several workers of one service on one machine
    (``settings.worker_index`` 1..N, ``PARLEY_WORKER_INDEX``) share the consumer group but
    not the data directory: worker ``k`` ≥ 2 uses ``var/faust/<app_id>-<k>``. Streams are
    ``shared.kafka.batches.QuietStream``: an idle agent's batch loop sleeps instead of ticking.
    """
    kafka = settings.kafka
    app_id = f"{kafka.topic_prefix}parley-{service}"
    suffix = f"-{settings.worker_index}" if settings.worker_index > 1 else ""
    datadir = Path(datadir or Path("var") / "faust" / f"{app_id}{suffix}")
    datadir.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "broker": [f"kafka://{h.strip()}" for h in kafka.bootstrap.split(",")],
        "store": "memory://",
        "topic_partitions": kafka.partitions,
        "topic_replication_factor": kafka.replication_factor,
        "broker_session_timeout": kafka.session_timeout_s,
        "broker_rebalance_timeout": kafka.rebalance_timeout_s,
        "broker_heartbeat_interval": kafka.heartbeat_interval_s,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "web_enabled": web_port is not None,
        "autodiscover": False,
        "datadir": str(datadir),
        "Stream": QuietStream,  # take_events without wakes while idle (shared.kafka.batches)
    }
    if web_port is not None:
        options["web_port"] = web_port
        options["web_bind"] = "127.0.0.1"
    options.update(overrides)
    return faust.App(app_id, **options)


def raw_topic(app: faust.App, settings: CommonSettings, name: str) -> Any:
    """Declare a catalogue topic on ``app`` with raw bytes keys and values."""
    return app.topic(
        settings.kafka.topic(name),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.kafka.partitions,
    )


def faust_dead_letter(app: faust.App, settings: CommonSettings, consumer: str,
                      store: DeadLetterStore | None = None) -> DeadLetter:
    """A ``DeadLetter`` for the app's agents: gzip-compressed sends on a producer of its own
    (stopped with the app), records too large for their dead-letter topic kept in ``store``
    (the service's ``dead_letter_bodies``) with a reference on the topic."""
    sender = DeadLetterSender(settings.kafka, client_id=f"{app.conf.id}-dlq")

    async def _stop_sender(sender_: Any = None, **_: Any) -> None:
        await sender.stop()

    app.on_before_shutdown.connect(_stop_sender)  # type: ignore[arg-type]  # mode types the signal narrowly
    return DeadLetter(send=sender, consumer=consumer, topic_prefix=settings.kafka.topic_prefix,
                      store=store, limit=dlq_limit(settings.kafka.message_max_bytes),
                      compressed=sender.compressed)


def faust_send(app: faust.App, settings: CommonSettings) -> Any:
    """Return ``send(topic, key, value)`` publishing to a logical topic via the app's producer.

    Suits ``shared.outbox.relay``; the record carries the W3C ``traceparent`` derived from
    the envelope in ``value`` at send time (``shared.tracing``), whichever process sends it.
    """

    async def send(topic: str, key: bytes, value: bytes) -> object:
        return await app.producer.send_and_wait(settings.kafka.topic(topic), key, value, None, None,
                                                tracing.outgoing_headers(topic, value))

    return send
