"""faust subscriptions of negotiation: decode, call a handler, relay the outbox, route failures.

* ``complaint.registered`` → ``handlers.record_registration`` (customer, text, deadline).
* ``investigation.completed`` → ``handlers.open_workspace`` (idempotent per case).
* a timer relays outboxes left by crashed writers and escalates cases near their deadline.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust

from services.negotiation import handlers
from services.negotiation.repository import Repository
from services.negotiation.settings import Settings
from shared.kafka.consume import Incoming, consume_one
from shared.kafka.faust_app import faust_dead_letter, faust_send, raw_topic
from shared.mongo import make_client, service_database
from shared.topics import decode, decode_json

log = logging.getLogger(__name__)

CONSUMER = "negotiation"


class WorkerDeps:
    """The repository, created on first use inside the worker's event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._repo: Repository | None = None

    async def repo(self) -> Repository:
        if self._repo is None:
            client = make_client(self.settings.mongo)
            repo = Repository(service_database(client, self.settings.mongo, "negotiation"))
            await repo.ensure_indexes()
            self._repo = repo
        return self._repo


def register(app: faust.App, settings: Settings, deps: WorkerDeps) -> None:
    """Declare negotiation's agents and timer on ``app``."""
    registered = raw_topic(app, settings, "complaint.registered")
    completed = raw_topic(app, settings, "investigation.completed")
    dead_letter = faust_dead_letter(app, settings, CONSUMER)
    send = faust_send(app, settings)

    async def on_registered(msg: Incoming) -> None:
        env = decode("complaint.registered", msg.value)
        await handlers.record_registration(env, repo=await deps.repo(), now=datetime.now(UTC))

    async def on_completed(msg: Incoming) -> None:
        env = decode("investigation.completed", msg.value)
        raw: dict[str, Any] = decode_json(msg.value).get("payload") or {}
        repo = await deps.repo()
        await handlers.open_workspace(env, raw, repo=repo, settings=settings, now=datetime.now(UTC))
        await repo.relay(env.case_id, send)

    @app.agent(registered, name="negotiation-complaint-registered")
    async def complaint_registered(stream: Any) -> None:
        async for event in stream.events():
            await consume_one(Incoming.from_faust(event, "complaint.registered"), on_registered,
                              dead_letter=dead_letter)

    @app.agent(completed, name="negotiation-investigation-completed")
    async def investigation_completed(stream: Any) -> None:
        async for event in stream.events():
            await consume_one(Incoming.from_faust(event, "investigation.completed"), on_completed,
                              dead_letter=dead_letter)

    @app.timer(interval=settings.sweep_interval_s)
    async def sweep() -> None:
        try:
            repo = await deps.repo()
            await repo.relay_pending(send)
            escalated = await handlers.escalate_near_deadline(repo=repo, settings=settings, now=datetime.now(UTC))
            for case_id in escalated:
                await repo.relay(case_id, send)
            if escalated:
                log.info("escalated %d cases near their deadline", len(escalated))
        except Exception:  # noqa: BLE001 - the next tick tries again
            log.exception("sweep failed; retrying on the next tick")
