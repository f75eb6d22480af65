"""Negotiation's service spec: workspaces opened from investigation, the agents' and the
customers' API, a sweep for cases near their deadline.

Everything else (worker, API app, preparation, health, error mapping, outbox relay) is
built from this spec by ``shared.service``, the same way for every service.

- ``complaint.registered`` → ``handlers.record_registration`` (customer, text, deadline);
- ``investigation.completed`` → ``handlers.open_workspace`` (idempotent per case and revision);
- ``execution.progressed`` / ``settlement.executed`` / ``case.closed`` → ``handlers.record_progress``
  / ``record_execution`` / ``record_closure`` (the customer's view follows the case to its end:
  each step, each instalment paid or missed, the execution, the closure);
- ``case.reopened`` → ``handlers.record_reopening`` (a dissatisfied callback: the workspace
  opens again, goes to another agent, the customer is told; on the audit chain);
- a timer escalates cases near their deadline (``handlers.escalate_near_deadline``);
- a timer sends the regular progress notice of open cases (``handlers.send_progress_notices``;
  here because negotiation follows a case from registration to closure);
- outbox collection ``cases``; the API publishes what a request wrote before it answers;
- seed: the fairness reference set of past settlements (from the CFPB sample when present).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from services.negotiation import fairness, handlers
from services.negotiation.api.deps import Deps
from services.negotiation.repository import Repository
from services.negotiation.settings import Settings, get_settings
from shared.audit import chain_for
from shared.contracts.envelope import Envelope, utcnow
from shared.contracts.followup import (
    CaseClosed,
    CaseReopened,
    ExecutionProgressed,
    SettlementExecuted,
)
from shared.contracts.intake import ComplaintRegistered
from shared.contracts.investigation import InvestigationCompleted
from shared.outbox import Written
from shared.service import Runtime, ServiceSpec, Subscription, Timer, each_by_key

SERVICE = "negotiation"
log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]


def build_deps(rt: Runtime[Settings]) -> Deps:
    """Make negotiation's dependencies from the runtime."""
    return Deps(rt.settings, Repository(rt.db), rt.send)


def _repo(deps: Deps) -> Repository:
    assert deps.repo is not None
    return deps.repo


async def on_registered(deps: Deps, events: list[Envelope[ComplaintRegistered]]) -> None:
    """Record who complained, about what, and the deadline (before or after the workspace
    opens); one case's events in order, different cases concurrently."""

    async def record(env: Envelope[ComplaintRegistered]) -> None:
        await handlers.record_registration(env, repo=_repo(deps), now=utcnow())

    left = await handlers.record_registrations(events, repo=_repo(deps), now=utcnow())
    await each_by_key(left, lambda e: e.case_id, record)


async def on_completed(deps: Deps, events: list[Envelope[InvestigationCompleted]]) -> list[Written]:
    """Open (or revise) each case's workspace from investigation's finding: in bulk, then the
    one-by-one way for what the bulk write left (revisions, cases written meanwhile)."""
    repo = _repo(deps)

    async def open_one(env: Envelope[InvestigationCompleted]) -> Written:
        await handlers.open_workspace(env, repo=repo, settings=deps.settings, now=utcnow())
        return Written(repo.cases, env.case_id)

    outboxes, left = await handlers.open_workspaces(events, repo=repo, settings=deps.settings, now=utcnow())
    written = [Written(repo.cases, case_id, pending) for case_id, pending in outboxes.items()]
    return written + await each_by_key(left, lambda e: e.case_id, open_one)


async def on_progressed(deps: Deps, events: list[Envelope[ExecutionProgressed]]) -> None:
    """Keep follow-up's report of each step and instalment (the customer's view)."""

    async def record(env: Envelope[ExecutionProgressed]) -> None:
        await handlers.record_progress(env, repo=_repo(deps), now=utcnow())

    await each_by_key(events, lambda e: e.case_id, record)


async def on_executed(deps: Deps, events: list[Envelope[SettlementExecuted]]) -> None:
    """Keep follow-up's report that the agreed settlement was carried out (the customer's view)."""

    async def record(env: Envelope[SettlementExecuted]) -> None:
        await handlers.record_execution(env, repo=_repo(deps), now=utcnow())

    await each_by_key(events, lambda e: e.case_id, record)


async def on_closed(deps: Deps, events: list[Envelope[CaseClosed]]) -> None:
    """Keep the case's closure (the customer's view)."""

    async def record(env: Envelope[CaseClosed]) -> None:
        await handlers.record_closure(env, repo=_repo(deps), now=utcnow())

    await each_by_key(events, lambda e: e.case_id, record)


async def on_reopened(deps: Deps, events: list[Envelope[CaseReopened]]) -> list[Written]:
    """Reopen each case a dissatisfied callback sent back; record it on the audit chain."""
    repo = _repo(deps)

    async def reopen(env: Envelope[CaseReopened]) -> Written | None:
        ws = await handlers.record_reopening(env, repo=repo, settings=deps.settings, now=utcnow())
        if ws is None:
            return None
        reopening = ws.reopenings[-1]
        try:
            await chain_for(repo.db).append(
                who=env.producer, role="system", action="case_reopened", case_id=env.case_id, at=reopening.at,
                details={"event_id": str(env.event_id), "score": reopening.score,
                         "agreement_id": reopening.agreement_id, "previous_agent": reopening.previous_agent,
                         "agent": reopening.agent},
            )
        except Exception:  # noqa: BLE001 - the reopening stands; the log says what is missing
            log.exception("could not append the reopening of %s to the audit chain", env.case_id)
        return Written(repo.cases, env.case_id)

    return [w for w in await each_by_key(events, lambda e: e.case_id, reopen) if w is not None]


async def send_progress_notices(deps: Deps) -> list[Written]:
    """Send the regular progress notice of every open case that is due."""
    repo = _repo(deps)
    owed = await handlers.send_progress_notices(repo=repo, period_days=deps.settings.progress_notice_days,
                                                now=utcnow())
    return [Written(repo.cases, case_id) for case_id in owed]


async def escalate_near_deadline(deps: Deps) -> list[Written]:
    """Escalate cases whose deadline is near without an agreement."""
    repo = _repo(deps)
    escalated = await handlers.escalate_near_deadline(repo=repo, settings=deps.settings, now=utcnow())
    if escalated:
        log.info("escalated %d cases near their deadline", len(escalated))
    return [Written(repo.cases, case_id) for case_id in escalated]


def shared_data_dir(settings: Settings) -> Path:
    """Return the folder of the shared data sets."""
    return Path(settings.shared_data) if settings.shared_data else REPO_ROOT.parent / "shared" / "data"


async def seed_fairness(repo: Repository, settings: Settings) -> int:
    """Seed the fairness reference set once (deterministic)."""
    path = shared_data_dir(settings) / "cfpb-2023-sample.jsonl.gz"
    if path.exists():
        rates = await asyncio.to_thread(fairness.cfpb_relief_rates, path)
    else:
        log.warning("CFPB sample not found; seeding with the fallback relief rates")
        rates = fairness.FALLBACK_RELIEF
    docs = list(fairness.seed_reference(rates, settings.fairness_seed_per_cell))
    return await repo.seed_refs(docs)


async def _seed(deps: Deps, settings: Settings) -> None:
    seeded = await seed_fairness(_repo(deps), settings)
    if seeded:
        log.info("seeded %d reference settlements", seeded)


def _token_command(argv: list[str]) -> int:
    from services.negotiation.__main__ import token_command

    return token_command(argv)


SPEC: ServiceSpec[Settings, Deps] = ServiceSpec(
    name=SERVICE,
    settings=get_settings,
    deps=build_deps,
    indexes=lambda deps: _repo(deps).ensure_indexes(),
    seed=_seed,
    subscriptions=[
        Subscription("registered", ("complaint.registered",), on_registered),
        Subscription("completed", ("investigation.completed",), on_completed),
        Subscription("progressed", ("execution.progressed",), on_progressed),
        Subscription("executed", ("settlement.executed",), on_executed),
        Subscription("closed", ("case.closed",), on_closed),
        Subscription("reopened", ("case.reopened",), on_reopened),
    ],
    timers=[Timer("near-deadline", lambda s: s.sweep_interval_s, escalate_near_deadline),
            Timer("progress", lambda s: s.progress_sweep_interval_s, send_progress_notices)],
    outboxes=["cases"],
    sweep_interval_s=lambda s: s.sweep_interval_s,
    api="services.negotiation.api",
    api_title="Parley negotiation 协商沟通",
    api_description=(
        "协商沟通与解决方案制定 — the agents' API (workspaces, communication log, typed offers "
        "within authority, fairness check, approval chain, agreement, escalation with a dossier) "
        "and the customer API under /customer (status, next step, deadline and open offers in "
        "plain words; zh-CN by default, `Accept-Language: en` for English). Every endpoint but "
        "/health needs a bearer JWT."
    ),
    default_port=8003,
    commands={"token": _token_command},
)
