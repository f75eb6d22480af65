"""Follow-up's service spec: agreed settlements and escalations in, a sweep for overdue steps.

Everything else (worker, API app, preparation, health, error mapping, outbox relay) is
built from this spec by ``shared.service``, the same way for every service.

- ``settlement.agreed`` → ``handlers.plan_execution`` (idempotent: one execution per case; a
  new agreement for a reopened case replaces its plan, ``handlers.replan``);
- ``case.escalated`` → ``handlers.record_escalation`` (or ``escalated_after_reopening``);
- a timer marks overdue steps and missed instalments (``handlers.overdue_steps``), publishes
  the alerts and the customers' reminders, and puts each on the audit chain;
- outbox collection ``executions``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.followup import handlers
from services.followup.errors import Conflict
from services.followup.models import Execution
from services.followup.repository import Repository
from services.followup.settings import Settings, get_settings
from shared.audit import chain_for
from shared.contracts.envelope import Envelope, utcnow
from shared.contracts.negotiation import CaseEscalated, SettlementAgreed
from shared.outbox import Written
from shared.service import Runtime, ServiceSpec, Subscription, Timer

SERVICE = "followup"
log = logging.getLogger(__name__)


@dataclass
class Deps:
    """Follow-up's store and settings."""

    repo: Repository
    settings: Settings


def build_deps(rt: Runtime[Settings]) -> Deps:
    """Make follow-up's dependencies from the runtime."""
    return Deps(Repository(rt.db), rt.settings)


#: Who the audit chain names for what the worker does on its own.
WORKER = "followup-worker"


async def on_agreed(deps: Deps, events: list[Envelope[SettlementAgreed]]) -> None:
    """Plan the execution of each agreed settlement (a redelivery finds it planned; a new
    agreement for a reopened case replaces the plan)."""
    for event in events:
        now = utcnow()
        execution = handlers.plan_execution(event, now=now, tz=deps.settings.timezone)
        if await deps.repo.create(execution, []):
            continue
        for _ in range(3):  # a step completed meanwhile: read again
            existing = await deps.repo.get(event.case_id)
            replanned = handlers.replan(existing, event, now=now, tz=deps.settings.timezone) if existing else None
            if replanned is None:
                break
            try:
                saved = await deps.repo.save(replanned, [])
            except Conflict:
                continue
            await _audit(deps, "plan_replaced", saved, agreement_id=saved.agreement_id)
            break


async def on_escalated(deps: Deps, events: list[Envelope[CaseEscalated]]) -> None:
    """Record each escalation (a redelivery finds it recorded)."""
    for event in events:
        if await deps.repo.create(handlers.record_escalation(event), []):
            continue
        existing = await deps.repo.get(event.case_id)
        left = handlers.escalated_after_reopening(existing, event) if existing else None
        if left is not None:
            saved = await deps.repo.save(left, [])
            await _audit(deps, "escalated_after_reopening", saved, target=event.payload.target)


async def _audit(deps: Deps, action: str, execution: Execution, **details: str | None) -> None:
    """Put a change the worker made on the audit chain (logged, not raised, when it fails)."""
    try:
        await chain_for(deps.repo.db).append(
            who=WORKER, role="system", action=action, case_id=execution.case_id,
            details={"status": execution.status, "version": execution.version, **details},
        )
    except Exception:  # noqa: BLE001 - the change stands; the log says what is missing
        log.exception("could not append %s for case %s to the audit chain", action, execution.case_id)


async def mark_overdue(deps: Deps) -> list[Written]:
    """Mark overdue steps of open executions; return what was written (alerts to publish)."""
    now, written = utcnow(), []
    for execution in await deps.repo.open_executions():
        updated, events = handlers.overdue_steps(execution, now=now)
        if events:
            try:
                saved = await deps.repo.save(updated, events)
            except Conflict:
                continue  # changed meanwhile; the next sweep looks again
            late = [s.step_id for s, before in zip(saved.steps, execution.steps, strict=True) if s.status != before.status]
            await _audit(deps, "steps_past_due", saved, steps=",".join(late)[:300])
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
