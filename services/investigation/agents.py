"""Investigation's faust subscriptions: ``complaint.registered`` in, and a sweep for paused cases.

Every message goes through ``consume_one``: malformed events go to
``complaint.registered.dlq`` with the reason, transient failures (database, broker) are
retried with a bound. After each write the case's outbox is relayed, so
``investigation.completed`` / ``investigation.paused`` / ``customer.notified`` are published
at least once, keyed by case id.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from services.investigation import handlers
from services.investigation.repository import RecordsRepository, Repository
from services.investigation.settings import Settings
from shared.contracts.envelope import utcnow
from shared.kafka.consume import Incoming, consume_one
from shared.kafka.faust_app import faust_dead_letter, faust_send, raw_topic
from shared.outbox import SWEEP_GRACE, relay, relay_pending
from shared.topics import decode

log = logging.getLogger(__name__)


def register(app: faust.App, settings: Settings, *, repo: Repository, records: RecordsRepository,
             categorise: handlers.Categoriser, clock: Any = utcnow) -> None:
    """Declare investigation's agent and timer on ``app``."""
    dead_letter = faust_dead_letter(app, settings, "investigation")
    send = faust_send(app, settings)

    async def on_registered(message: Incoming) -> None:
        env = decode("complaint.registered", message.value)
        outcome = await handlers.on_registered(env, categorise=categorise, store=records, repo=repo,
                                               settings=settings, now=clock())
        log.info("complaint %s: %s", env.payload.complaint_id, outcome)
        await relay(repo.investigations, env.case_id, send)

    @app.agent(raw_topic(app, settings, "complaint.registered"), name="investigation.registered")
    async def registered(stream: Any) -> None:
        async for event in stream.events():
            await consume_one(Incoming.from_faust(event, "complaint.registered"), on_registered,
                              dead_letter=dead_letter)

    @app.timer(settings.sweep_interval_s)
    async def sweep() -> None:
        try:
            for doc in await repo.paused():  # the appraisal record says when it is done
                if await handlers.resume_paused(doc, categorise=categorise, store=records, repo=repo,
                                                settings=settings, now=clock()):
                    await relay(repo.investigations, doc["_id"], send)
            await relay_pending(repo.investigations, send, grace=SWEEP_GRACE)
        except Exception:  # noqa: BLE001 - the sweep runs again; nothing is lost meanwhile
            log.exception("sweep failed; trying again next round")
