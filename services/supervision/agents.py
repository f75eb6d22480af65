"""Supervision's faust subscriptions: every enveloped topic, every dead-letter topic, a timer."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import faust

from services.supervision import handlers
from services.supervision.repository import Repository
from services.supervision.settings import Settings
from shared.contracts.envelope import utcnow
from shared.errors import InvalidMessage
from shared.kafka.consume import Incoming, consume_one
from shared.kafka.dlq import read_headers
from shared.kafka.faust_app import faust_dead_letter, faust_send
from shared.outbox import SWEEP_GRACE, relay_pending
from shared.topics import CATALOGUE, DLQ_SUFFIX, decode

log = logging.getLogger(__name__)

#: Topics whose events supervision watches (it does not watch its own alerts).
WATCHED = [n for n, s in CATALOGUE.items() if s.payload is not None and n != "supervision.alert"]


def register(app: faust.App, settings: Settings, *, repo: Repository, clock: Any = utcnow) -> None:
    """Declare supervision's agents and timer on ``app``."""
    prefix = settings.kafka.topic_prefix
    watched = app.topic(
        *[settings.kafka.topic(n) for n in WATCHED], key_serializer="raw", value_serializer="raw"
    )
    dead_letters = app.topic(
        *[settings.kafka.topic(CATALOGUE[n].dlq) for n in CATALOGUE],
        key_serializer="raw",
        value_serializer="raw",
    )
    dead_letter = faust_dead_letter(app, settings, "supervision")
    send = faust_send(app, settings)

    async def on_event(message: Incoming) -> None:
        try:
            envelope = decode(message.topic, message.value)
        except InvalidMessage as exc:
            # the topic's owner dead-letters it; supervision sees it on the .dlq topic
            log.info("unreadable event on %s left to its owner: %s", message.topic, exc.reason[:200])
            return
        await handlers.record_event(envelope, repo=repo)

    async def on_dead_letter(message: Incoming) -> None:
        source = message.topic.removesuffix(DLQ_SUFFIX)
        new = await handlers.record_dead_letter(
            source_topic=source,
            partition=message.partition or 0,
            offset=message.offset or 0,
            headers=read_headers(message.headers),
            key=(message.key or b"").decode("utf-8", "replace")[:64] or None,
            now=clock(),
            repo=repo,
        )
        if new:
            await relay_pending(repo.alerts, send)

    @app.agent(watched, name="supervision.watch")
    async def watch(stream: Any) -> None:
        async for event in stream.events():
            topic = event.message.topic.removeprefix(prefix)
            await consume_one(Incoming.from_faust(event, topic), on_event, dead_letter=dead_letter)

    @app.agent(dead_letters, name="supervision.dead_letters")
    async def dead(stream: Any) -> None:
        async for event in stream.events():
            topic = event.message.topic.removeprefix(prefix)
            # a failure here must not create a dead letter of a dead letter: log and go on
            try:
                await on_dead_letter(Incoming.from_faust(event, topic))
            except Exception:  # noqa: BLE001 - the record stays in Kafka; logged once here
                log.exception("could not record a dead letter from %s", topic)

    @app.timer(settings.sweep_interval_s)
    async def sweep() -> None:
        now: datetime = clock()
        raised = await handlers.check_deadlines(now=now, warning_days=settings.warning_days, repo=repo)
        published = await relay_pending(repo.alerts, send, grace=SWEEP_GRACE)
        if raised or published:
            log.info("deadline sweep raised %d alerts, published %d", raised, published)
