"""Build a service's faust app from settings, the same way for every service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from shared.kafka.dlq import DeadLetter
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
    service first started is skipped.
    """
    kafka = settings.kafka
    app_id = f"{kafka.topic_prefix}parley-{service}"
    datadir = Path(datadir or Path("var") / "faust" / app_id)
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


def faust_dead_letter(app: faust.App, settings: CommonSettings, consumer: str) -> DeadLetter:
    """A ``DeadLetter`` that sends through the app's own producer."""

    async def send(topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> object:
        return await app.producer.send_and_wait(topic, key, value, None, None, headers)

    return DeadLetter(send=send, consumer=consumer, topic_prefix=settings.kafka.topic_prefix)


def faust_send(app: faust.App, settings: CommonSettings) -> Any:
    """Return ``send(topic, key, value)`` publishing to a logical topic via the app's producer.

    Suits ``shared.outbox.relay``; envelope headers are not needed by any consumer.
    """

    async def send(topic: str, key: bytes, value: bytes) -> object:
        return await app.producer.send_and_wait(settings.kafka.topic(topic), key, value, None, None, None)

    return send
