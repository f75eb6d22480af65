"""Follow-up's faust subscriptions: agreed settlements, escalations, and a sweep for overdue steps."""

from __future__ import annotations

import logging
from typing import Any

import faust

from services.followup import handlers
from services.followup.errors import Conflict
from services.followup.repository import Repository
from services.followup.settings import Settings
from shared.contracts.envelope import utcnow
from shared.kafka.consume import Incoming, consume_one
from shared.kafka.faust_app import faust_dead_letter, faust_send, raw_topic
from shared.outbox import SWEEP_GRACE, relay, relay_pending
from shared.topics import decode

log = logging.getLogger(__name__)


def register(app: faust.App, settings: Settings, *, repo: Repository) -> None:
    """Declare follow-up's agents and timer on ``app``."""
    dead_letter = faust_dead_letter(app, settings, "followup")
    send = faust_send(app, settings)

    async def on_agreed(message: Incoming) -> None:
        event = decode("settlement.agreed", message.value)
        execution = handlers.plan_execution(event, now=utcnow(), tz=settings.timezone)
        await repo.create(execution, [])  # False on redelivery: nothing more to do

    async def on_escalated(message: Incoming) -> None:
        event = decode("case.escalated", message.value)
        await repo.create(handlers.record_escalation(event), [])

    @app.agent(raw_topic(app, settings, "settlement.agreed"), name="followup.agreed")
    async def agreed(stream: Any) -> None:
        async for event in stream.events():
            await consume_one(Incoming.from_faust(event, "settlement.agreed"), on_agreed, dead_letter=dead_letter)

    @app.agent(raw_topic(app, settings, "case.escalated"), name="followup.escalated")
    async def escalated(stream: Any) -> None:
        async for event in stream.events():
            await consume_one(Incoming.from_faust(event, "case.escalated"), on_escalated, dead_letter=dead_letter)

    @app.timer(settings.sweep_interval_s)
    async def sweep() -> None:
        now = utcnow()
        for execution in await repo.open_executions():
            updated, events = handlers.overdue_steps(execution, now=now)
            if events:
                try:
                    await repo.save(updated, events)
                except Conflict:
                    continue  # changed meanwhile; the next sweep looks again
                await relay(repo.executions, execution.case_id, send)
        await relay_pending(repo.executions, send, grace=SWEEP_GRACE)
