"""Intake's faust subscriptions: decode, call a handler, route every failure via ``consume_one``.

- ``complaint.received`` (channel JSON, key = channel complaint id) → ``register_complaint``;
  bad input goes to ``complaint.received.dlq`` with the field errors and the original bytes.
- ``case.closed`` (enveloped) → ``close_case``, so later complaints about the matter are
  recognised as repeats.
- a timer publishes events that a crash left in complaint outboxes (``relay_pending``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import faust

from services.intake import handlers
from services.intake.models import decode_submission
from services.intake.repository import IntakeRepository
from services.intake.settings import Settings
from shared.errors import InvalidMessage
from shared.kafka.consume import Incoming, consume_one
from shared.kafka.faust_app import faust_dead_letter, faust_send, raw_topic
from shared.topics import decode

log = logging.getLogger(__name__)

RECEIVED = "complaint.received"
CLOSED = "case.closed"


@dataclass
class Deps:
    """What the agents need besides the app."""

    repo: IntakeRepository
    locks: handlers.CustomerLocks


def register(app: faust.App, settings: Settings, deps: Deps) -> None:
    """Declare intake's agents and timers on ``app``."""
    received = raw_topic(app, settings, RECEIVED)
    closed = raw_topic(app, settings, CLOSED)
    dead_letter = faust_dead_letter(app, settings, "intake")
    send = faust_send(app, settings)

    async def handle_received(message: Incoming) -> None:
        submission = decode_submission(message.value)
        await handlers.register_complaint(
            submission, repo=deps.repo, send=send, settings=settings, locks=deps.locks
        )

    async def handle_closed(message: Incoming) -> None:
        event = decode(CLOSED, message.value)
        if not await handlers.close_case(event, repo=deps.repo):
            if await deps.repo.find_case(event.case_id) is None:
                raise InvalidMessage("case_id is not a case intake registered")

    @app.agent(received, concurrency=settings.agent_concurrency, name="intake.register")
    async def register_complaints(stream: Any) -> None:
        async for event in stream.events():
            await consume_one(Incoming.from_faust(event, RECEIVED), handle_received, dead_letter=dead_letter)

    @app.agent(closed, name="intake.case_closed")
    async def close_cases(stream: Any) -> None:
        async for event in stream.events():
            await consume_one(Incoming.from_faust(event, CLOSED), handle_closed, dead_letter=dead_letter)

    @app.timer(interval=settings.relay_interval_s)
    async def relay_left_behind() -> None:
        try:
            older_than = datetime.now(UTC) - timedelta(seconds=settings.relay_grace_s)
            await deps.repo.relay_pending(send, older_than=older_than)
        except Exception:  # noqa: BLE001 - the next sweep tries again; nothing is lost
            log.exception("outbox sweep failed; will retry")
