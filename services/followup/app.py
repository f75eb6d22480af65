"""Follow-up's service spec: agreed settlements and escalations in, a sweep for overdue steps.

Everything else (worker, API app, preparation, health, error mapping, outbox relay) is
built from this spec by ``shared.service``, the same way for every service.

- ``settlement.agreed`` → ``handlers.plan_execution`` (idempotent: one execution per case);
- ``case.escalated`` → ``handlers.record_escalation``;
- a timer marks overdue steps (``handlers.overdue_steps``) and publishes the alerts;
- outbox collection ``executions``.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.followup import handlers
from services.followup.errors import Conflict
from services.followup.repository import Repository
from services.followup.settings import Settings, get_settings
from shared.contracts.envelope import Envelope, utcnow
from shared.contracts.negotiation import CaseEscalated, SettlementAgreed
from shared.outbox import Written
from shared.service import Runtime, ServiceSpec, Subscription, Timer

SERVICE = "followup"


@dataclass
class Deps:
    """Follow-up's store and settings."""

    repo: Repository
    settings: Settings


def build_deps(rt: Runtime[Settings]) -> Deps:
    """Make follow-up's dependencies from the runtime."""
    return Deps(Repository(rt.db), rt.settings)


async def on_agreed(deps: Deps, events: list[Envelope[SettlementAgreed]]) -> None:
    """Plan the execution of each agreed settlement (a redelivery finds it planned)."""
    for event in events:
        execution = handlers.plan_execution(event, now=utcnow(), tz=deps.settings.timezone)
        await deps.repo.create(execution, [])


async def on_escalated(deps: Deps, events: list[Envelope[CaseEscalated]]) -> None:
    """Record each escalation (a redelivery finds it recorded)."""
    for event in events:
        await deps.repo.create(handlers.record_escalation(event), [])


async def mark_overdue(deps: Deps) -> list[Written]:
    """Mark overdue steps of open executions; return what was written (alerts to publish)."""
    now, written = utcnow(), []
    for execution in await deps.repo.open_executions():
        updated, events = handlers.overdue_steps(execution, now=now)
        if events:
            try:
                await deps.repo.save(updated, events)
            except Conflict:
                continue  # changed meanwhile; the next sweep looks again
            written.append(Written(deps.repo.executions, execution.case_id))
    return written


SPEC: ServiceSpec[Settings, Deps] = ServiceSpec(
    name=SERVICE,
    settings=get_settings,
    deps=build_deps,
    indexes=lambda deps: deps.repo.ensure_indexes(),
    subscriptions=[
        Subscription("agreed", ("settlement.agreed",), on_agreed),
        Subscription("escalated", ("case.escalated",), on_escalated),
    ],
    timers=[Timer("overdue", lambda s: s.sweep_interval_s, mark_overdue)],
    outboxes=["executions"],
    sweep_interval_s=lambda s: s.sweep_interval_s,
    api="services.followup.api",
    api_title="Parley follow-up 施行与监督",
    api_description="施行与监督、回访 — carry out agreed settlements and call the customer back.",
    default_port=8004,
)
