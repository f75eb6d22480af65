"""Supervision's service spec: every enveloped topic, every dead-letter topic, a deadline sweep.

Everything else (worker, API app, preparation, health, error mapping, outbox relay) is
built from this spec by ``shared.service``, the same way for every service.

- every catalogue topic with an envelope but ``supervision.alert`` →
  ``handlers.record_events`` (batches of up to 500 events gathered for up to 0.5 s; one
  upsert per case per batch, sent in bulk); an unreadable event is left to the topic's owner, who
  dead-letters it, and supervision sees it on the ``.dlq`` topic;
- ``supervision.alert`` → ``handlers.record_foreign_alerts``: alerts other services raised are
  stored once (by event id); its own (producer ``supervision``) are stored when raised;
- every ``<topic>.dlq`` → ``handlers.record_dead_letter`` (never dead-letters a dead letter);
- a timer checks deadlines (``handlers.check_deadlines``) and raises alerts;
- a timer raises ``case_stuck`` for cases with no event in their stage for too long
  (``handlers.check_stuck``);
- a timer reads every consumer group's lag (``lag.read_lag``), sets the lag gauges and raises
  ``consumer_lag`` once per group while it is above the threshold (resolved when it is back);
  the same timer reads each group's members (``lag.read_members``): the services' heartbeats
  (``worker_down``, ``worker_stalled``; ``handlers.heartbeat_step``);
- outbox collection ``alerts``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from services.supervision import handlers
from services.supervision.repository import Repository
from services.supervision.settings import Settings, get_settings
from shared import metrics
from shared.clock import REGULATORY_TIMEZONE, beijing_day, zone
from shared.contracts.envelope import Envelope, utcnow
from shared.errors import InvalidMessage
from shared.kafka.consume import Incoming
from shared.kafka.dlq import read_headers
from shared.outbox import Written
from shared.service import Runtime, ServiceSpec, Subscription, Timer
from shared.topics import CATALOGUE, DLQ_SUFFIX, decode

log = logging.getLogger(__name__)

SERVICE = "supervision"

#: Topics whose events go on case timelines (alerts are kept on their own).
WATCHED = tuple(n for n, s in CATALOGUE.items() if s.payload is not None and n != "supervision.alert")
#: Every dead-letter topic of the catalogue.
DEAD_LETTERS = tuple(CATALOGUE[n].dlq for n in CATALOGUE)


@dataclass
class Deps:
    """Supervision's store and settings."""

    repo: Repository
    settings: Settings


def build_deps(rt: Runtime[Settings]) -> Deps:
    """Make supervision's dependencies from the runtime."""
    return Deps(Repository(rt.db), rt.settings)


def _decode_watched(message: Incoming) -> Envelope[Any] | None:
    try:
        return decode(message.topic, message.value)
    except InvalidMessage as exc:
        # the topic's owner dead-letters it; supervision sees it on the .dlq topic
        log.info("unreadable event on %s left to its owner: %s", message.topic, exc.reason[:200])
        return None


async def on_events(deps: Deps, events: list[Envelope[Any] | None]) -> None:
    """Record a batch of events on their cases' timelines: one idempotent write per case."""
    await handlers.record_events([e for e in events if e is not None], repo=deps.repo)


async def on_alerts(deps: Deps, alerts: list[Envelope[Any]]) -> None:
    """Keep the alerts other services raised, once each."""
    await handlers.record_foreign_alerts(alerts, repo=deps.repo)


async def on_dead_letters(deps: Deps, messages: list[Incoming]) -> list[Written]:
    """Record each dead letter once and raise its alert; return the alerts written."""
    written = []
    for message in messages:
        source = message.topic.removesuffix(DLQ_SUFFIX)
        new = await handlers.record_dead_letter(
            source_topic=source,
            partition=message.partition or 0,
            offset=message.offset or 0,
            headers=read_headers(message.headers),
            key=(message.key or b"").decode("utf-8", "replace")[:64] or None,
            now=utcnow(),
            repo=deps.repo,
        )
        if new:
            alert_id = handlers.dead_letter_alert_id(source, message.partition or 0, message.offset or 0)
            written.append(Written(deps.repo.alerts, alert_id))
    return written


class _Recording:
    """The repository, noting the alerts raised through it (so the timer publishes them at
    once instead of leaving them to the outbox sweep)."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self.raised: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    async def raise_alert(self, alert_id: str, envelope: Envelope[Any]) -> bool:
        new = await self._repo.raise_alert(alert_id, envelope)
        if new:
            self.raised.append(alert_id)
        return new


async def check_deadlines(deps: Deps) -> list[Written]:
    """Raise warnings and breaches for cases near or past their deadline; return the alerts
    written, for the runtime to publish."""
    repo = _Recording(deps.repo)
    raised = await handlers.check_deadlines(
        now=utcnow(), lead_days=deps.settings.warning_lead_days, repo=repo  # type: ignore[arg-type]
    )
    if raised:
        log.info("deadline sweep raised %d alerts", raised)
    return [Written(deps.repo.alerts, alert_id) for alert_id in repo.raised]


async def check_lag(deps: Deps) -> list[Written]:
    """Read every consumer group's lag, set the gauges, refresh the deadline gauges, and raise
    ``consumer_lag`` for each group that went above the threshold; return the alerts written."""
    from services.supervision.lag import read_lag

    now = utcnow()
    lags = await read_lag(deps.settings.kafka)
    set_lag_gauges(lags)
    await set_deadline_gauges(deps.repo, now)
    threshold = deps.settings.lag_alert_threshold
    totals = {group: handlers.total_lag(rows) for group, rows in lags.items()}
    rising, falling = handlers.lag_transitions(totals, threshold=threshold, above=set(await deps.repo.lag_above()))
    written = []
    for group in rising:
        await deps.repo.set_lag_above(group, now)
        alert_id = handlers.lag_alert_id(group, now)
        envelope = Envelope.wrap(handlers.lag_alert(group, totals[group], threshold), case_id=f"lag:{group}",
                                 producer=handlers.PRODUCER, occurred_at=now)
        if await deps.repo.raise_alert(alert_id, envelope):
            written.append(Written(deps.repo.alerts, alert_id))
    for group in falling:
        await deps.repo.set_lag_above(group, None)
        await deps.repo.resolve_open_alerts(f"consumer_lag:{group}:", handlers.PRODUCER,
                                            "积压已回落到阈值以下 / back at or below the threshold", now)
    written += await check_heartbeats(deps, lags, now)
    return written


async def check_heartbeats(deps: Deps, lags: dict[str, list[handlers.PartitionLag]], now: datetime) -> list[Written]:
    """Each service's heartbeat is its consumer group: members (running workers) and commits.
    Raise ``worker_down`` / ``worker_stalled`` once per episode, resolve them when it ends."""
    from services.supervision.lag import read_members

    members = await read_members(deps.settings.kafka)
    states = await deps.repo.heartbeat_states()
    written = []
    s = deps.settings
    for group, rows in lags.items():
        pulse = handlers.GroupPulse(group, members.get(group, 0),
                                    sum(r.committed or 0 for r in rows), handlers.total_lag(rows))
        state, events = handlers.heartbeat_step(states.get(group), pulse, now=now,
                                                down_after_s=s.heartbeat_down_after_s,
                                                stall_after_s=s.heartbeat_stall_after_s)
        await deps.repo.save_heartbeat(group, state)
        metrics.WORKERS.labels(group).set(pulse.members)
        for what, alert_id in events:
            if what in ("up", "moving"):
                await deps.repo.resolve_open_alerts(alert_id, handlers.PRODUCER,
                                                    "工作进程已恢复 / the workers are back", now)
                continue
            seconds = s.heartbeat_down_after_s if what == "down" else s.heartbeat_stall_after_s
            envelope = Envelope.wrap(handlers.heartbeat_alert(what, pulse, None, seconds),
                                     case_id=f"heartbeat:{group}", producer=handlers.PRODUCER, occurred_at=now)
            if await deps.repo.raise_alert(alert_id, envelope):
                written.append(Written(deps.repo.alerts, alert_id))
    return written


async def check_stuck(deps: Deps) -> list[Written]:
    """Resolve ``case_stuck`` alerts of cases that moved on; raise it for cases with no event in
    their stage for longer than it allows."""
    now = utcnow()
    # a stuck case that has had an event since is not stuck any more: supervision resolves it
    await deps.repo.resolve_alert_ids(await deps.repo.moved_on_stuck_alerts(), handlers.PRODUCER,
                                      "案件已有新事件 / the case moved on", now)
    raised = await handlers.check_stuck(now=now, after_hours=deps.settings.stuck_after_hours, repo=deps.repo)
    if raised:
        log.info("stuck-case sweep raised %d alerts", len(raised))
    return [Written(deps.repo.alerts, alert_id) for alert_id in raised]


def set_lag_gauges(lags: dict[str, list[handlers.PartitionLag]]) -> None:
    """``parley_consumer_lag{group, topic}``: the lag summed over a topic's partitions."""
    for group, rows in lags.items():
        per_topic: dict[str, int] = {}
        for row in rows:
            per_topic[row.topic] = per_topic.get(row.topic, 0) + row.lag
        for topic, lag in per_topic.items():
            metrics.CONSUMER_LAG.labels(group, topic).set(lag)


async def set_deadline_gauges(repo: Repository, now: datetime) -> None:
    """Cases due today (Beijing day), cases breached, alerts by status."""
    start = datetime.combine(beijing_day(now), time(0), tzinfo=zone(REGULATORY_TIMEZONE))
    counts = await repo.deadline_counts(start, start + timedelta(days=1), handlers.FINISHED_FROM_RANK)
    metrics.CASES_DUE_TODAY.set(counts["due_today"])
    metrics.DEADLINES_BREACHED.set(counts["breached"])
    for status, n in (await repo.alert_status_counts()).items():
        metrics.ALERTS_BY_STATUS.labels(status).set(n)


SPEC: ServiceSpec[Settings, Deps] = ServiceSpec(
    name=SERVICE,
    settings=get_settings,
    deps=build_deps,
    indexes=lambda deps: deps.repo.ensure_indexes(),
    subscriptions=[
        # a monitor: half a second more to gather up to 500 events, so more of a case's events
        # fold into its one write and more cases share a bulk command
        Subscription("watch", WATCHED, on_events, decode=_decode_watched, batch_size=500, within_s=0.5),
        Subscription("alerts", ("supervision.alert",), on_alerts),
        Subscription("dead-letters", DEAD_LETTERS, on_dead_letters, decode=lambda m: m,
                     dead_letter=False),
    ],
    timers=[Timer("deadlines", lambda s: s.sweep_interval_s, check_deadlines),
            Timer("stuck", lambda s: s.sweep_interval_s, check_stuck),
            Timer("lag", lambda s: s.lag_interval_s, check_lag)],
    outboxes=["alerts"],
    sweep_interval_s=lambda s: s.sweep_interval_s,
    api="services.supervision.api",
    api_title="Parley supervision 监督",
    api_description="案件时限、告警与死信 — deadlines, alerts and dead letters across every stream.",
    default_port=8005,
)
