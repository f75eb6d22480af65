"""Supervision's rules: the status a case is in, when to warn, what a dead letter means.

Plain functions over a repository protocol; no Kafka, faust or FastAPI here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.supervision.evaluation import facts_of
from shared.clock import HOLIDAY_SOURCE, REGULATORY_TIMEZONE, as_utc, beijing_day, to_local
from shared.contracts.envelope import Envelope
from shared.contracts.supervision import SupervisionAlert

PRODUCER = "supervision"

#: The status a case is in after each event type (events not listed leave it unchanged).
STATUS_AFTER: dict[str, str] = {
    "complaint.registered": "registered",
    "investigation.completed": "investigated",
    "negotiation.started": "negotiating",
    "settlement.proposed": "offer_open",
    "settlement.approved": "offer_open",
    "settlement.agreed": "settled",
    "negotiation.failed": "negotiation_failed",
    "case.escalated": "escalated",
    "settlement.executed": "executed",
    "followup.completed": "followed_up",
    "case.closed": "closed",
}

#: How far along the lifecycle each status is: events of different topics may arrive in
#: any order, and a case never moves back (closed stays closed). Each status has its own
#: rank, so the rank alone says the status: the store keeps the highest rank seen with one
#: ``$max`` (no read, no second conditional write) and the status is read from it.
STATUS_RANK: dict[str, int] = {
    "open": 0, "registered": 1, "investigated": 2, "negotiating": 3, "offer_open": 4,
    "negotiation_failed": 5, "settled": 6, "escalated": 7, "executed": 8,
    "followed_up": 9, "closed": 10,
}
STATUS_OF_RANK: dict[int, str] = {rank: status for status, rank in STATUS_RANK.items()}

#: Statuses in which the regulatory clock no longer runs: every rank from ``settled`` on. A case
#: leaves the clock at its first such event (``finished_at``); if that was after its deadline,
#: the breach is still raised (``check_deadlines``).
FINISHED_FROM_RANK = STATUS_RANK["settled"]
FINISHED = {s for s, rank in STATUS_RANK.items() if rank >= FINISHED_FROM_RANK}


def status_of(rank: int | None) -> str:
    """The status a stored rank stands for."""
    return STATUS_OF_RANK.get(rank or 0, "open")


@dataclass
class CaseChange:
    """What one batch of events does to one case's watch, applied as one write.

    ``timeline`` entries are added as a set (by their whole content, which an event's
    redelivery repeats exactly), the rank only rises, and the clock fields take the value of
    the batch's last event that sets them: applying the same change twice changes nothing.
    """

    case_id: str
    timeline: list[dict[str, Any]] = field(default_factory=list)
    status_rank: int | None = None
    deadline_at: datetime | None = None
    paused: bool | None = None
    case_number: str | None = None
    last_event_type: str = ""
    last_event_at: datetime | None = None
    #: the earliest event of the batch that took the case off the clock (settled onwards)
    finished_at: datetime | None = None
    #: the last deadline set in the batch is provisional (``shared.clock``: a year the holiday
    #: package does not cover)
    provisional: bool | None = None
    #: the case's story (its complaint's correlation id): the alerts a sweep raises about the
    #: case later carry it, so they are in the complaint's trace (``shared.tracing``)
    correlation_id: str = ""
    #: the evaluation report's facts the batch's events give the case (``evaluation.facts_of``)
    facts: dict[str, Any] = field(default_factory=dict)


class SupervisionRepository(Protocol):
    """What the handlers need from storage."""

    async def apply_changes(self, changes: list[CaseChange]) -> None: ...

    async def add_dead_letter(self, record: dict[str, Any]) -> bool: ...

    async def raise_alert(self, alert_id: str, envelope: Envelope[SupervisionAlert]) -> bool: ...

    async def store_alert(self, alert_id: str, envelope: Envelope[SupervisionAlert]) -> bool:
        """Keep an alert another service raised and published (no outbox); False if kept before."""
        ...

    async def cases_due_before(self, when: datetime, finished_from_rank: int) -> list[dict[str, Any]]:
        """Cases not paused whose deadline is at or before ``when`` and which are still on the
        clock: open (rank below ``finished_from_rank``), or finished but not yet settled by a
        sweep (``clock_stopped``)."""
        ...

    async def clock_stopped(self, case_id: str) -> None:
        """Mark a finished case settled by the sweep: it is not returned again."""
        ...


def status_after(event_type: str) -> str | None:
    """Return the status a case enters with ``event_type``, or None if it does not change."""
    return STATUS_AFTER.get(event_type)


#: Events that may set a case's deadline: intake's 15 days, investigation's 30 for a complex
#: case, and the new deadline when a pause for external appraisal ends.
DEADLINE_SETTERS = {"complaint.registered", "investigation.completed", "investigation.paused"}


def clock_change(envelope: Envelope[Any]) -> tuple[datetime | None, bool | None]:
    """Return (new deadline or None, paused True/False or None for no change).

    Time spent on external appraisal does not count (银行业保险业消费投诉处理管理办法): while
    investigation has a case paused, no deadline alert is raised; on resumption the deadline
    moves by the days excluded, as investigation computed it.
    """
    payload = envelope.payload
    deadline = getattr(payload, "deadline_at", None) if envelope.event_type in DEADLINE_SETTERS else None
    if envelope.event_type != "investigation.paused":
        return deadline, None
    resumed = getattr(payload, "resumed_at", None) is not None
    return (deadline if resumed else None), not resumed


def fold_events(envelopes: list[Envelope[Any]]) -> list[CaseChange]:
    """Fold a batch of events (in Kafka order) into one change per case."""
    changes: dict[str, CaseChange] = {}
    for envelope in envelopes:
        change = changes.setdefault(envelope.case_id, CaseChange(envelope.case_id))
        change.correlation_id = envelope.correlation_id
        change.timeline.append({
            "event_id": str(envelope.event_id),
            "event_type": envelope.event_type,
            "occurred_at": envelope.occurred_at,
            "producer": envelope.producer,
        })
        status = status_after(envelope.event_type)
        if status is not None:
            change.status_rank = max(change.status_rank or 0, STATUS_RANK[status])
        deadline, paused = clock_change(envelope)
        if deadline is not None:
            change.deadline_at = deadline
            change.provisional = bool(getattr(envelope.payload, "deadline_provisional", False))
        if status is not None and STATUS_RANK[status] >= FINISHED_FROM_RANK and (
                change.finished_at is None or envelope.occurred_at < change.finished_at):
            change.finished_at = envelope.occurred_at
        if paused is not None:
            change.paused = paused
        number = getattr(envelope.payload, "case_number", None)
        if number:
            change.case_number = number
        change.facts.update(facts_of(envelope.event_type, envelope.payload))
        if change.last_event_at is None or envelope.occurred_at >= change.last_event_at:
            change.last_event_type, change.last_event_at = envelope.event_type, envelope.occurred_at
    return list(changes.values())


async def record_events(envelopes: list[Envelope[Any]], *, repo: SupervisionRepository) -> int:
    """Add a batch of events to their cases' timelines, one write per case; redelivered
    events change nothing. Returns the number of cases written.

    A case whose deadline is ``provisional`` (``shared.clock``: a year the holiday package does
    not cover, weekends only counted) gets one ops alert ``deadline_provisional`` (once per case:
    the alert id names the case; a redelivery raises nothing), so someone upgrades the package
    and has the deadline computed again."""
    changes = fold_events(envelopes)
    if changes:
        await repo.apply_changes(changes)
    for change in changes:
        if change.provisional and change.deadline_at is not None:
            now = max((e.occurred_at for e in envelopes if e.case_id == change.case_id), default=change.deadline_at)
            await repo.raise_alert(
                deadline_provisional_alert_id(change.case_id),
                _case_alert(provisional_alert(change.case_number or change.case_id, change.deadline_at),
                            change.case_id, change.correlation_id, now),
            )
    return len(changes)


def _case_alert(alert: SupervisionAlert, case_id: str, correlation_id: str | None,
                now: datetime) -> Envelope[SupervisionAlert]:
    """A sweep's alert about a case, in the case's story when it is known (cases recorded
    before supervision kept ``correlation_id`` start a story of their own)."""
    return Envelope.wrap(alert, case_id=case_id, producer=PRODUCER, correlation_id=correlation_id or None,
                         occurred_at=now)


def deadline_provisional_alert_id(case_id: str) -> str:
    """The id of a case's provisional-deadline alert: raised once per case."""
    return f"deadline_provisional:{case_id}"


def provisional_alert(label: str, deadline: datetime) -> SupervisionAlert:
    """The ops alert of a provisional deadline: the holiday package lacks a year it counts."""
    local = to_local(deadline, REGULATORY_TIMEZONE)
    return SupervisionAlert(
        kind="deadline_provisional", severity="warning", due_at=deadline,
        message=(
            f"案件 {label} 的处理时限（北京时间 {local:%Y-%m-%d}）为暂定：节假日数据（{HOLIDAY_SOURCE}）"
            f"未覆盖所涉年份，仅按周末计算；请升级后重新计算 / case {label}'s deadline ({local:%Y-%m-%d} "
            f"Beijing time) is provisional: the holiday package ({HOLIDAY_SOURCE}) does not cover a year it "
            "counts, so only weekends were rest days; upgrade it and compute the deadline again"
        ),
    )


async def record_event(envelope: Envelope[Any], *, repo: SupervisionRepository) -> int:
    """Add one event to its case's timeline (``record_events`` of one)."""
    return await record_events([envelope], repo=repo)


async def record_dead_letter(
    *, source_topic: str, partition: int, offset: int, headers: dict[str, str], key: str | None,
    now: datetime, repo: SupervisionRepository,
) -> bool:
    """Record a dead letter and raise one alert for it; return False if seen before."""
    record = {
        "source_topic": headers.get("dlq.source_topic", source_topic),
        "dlq_topic": f"{source_topic}.dlq",
        "partition": partition,
        "offset": offset,
        "source_partition": _int(headers.get("dlq.source_partition")),
        "source_offset": _int(headers.get("dlq.source_offset")),
        "consumer": headers.get("dlq.consumer", "?"),
        "reason": headers.get("dlq.reason", "(no reason given)")[:2000],
        "error_type": headers.get("dlq.error_type", "?"),
        "failed_at": headers.get("dlq.failed_at", ""),
        "seen_at": now,
        # a record too large for its topic is kept in the consumer's database (shared.kafka.dlq)
        "stored_in": headers.get("dlq.stored_in") or None,
        "stored_id": headers.get("dlq.stored_id") or None,
    }
    if not await repo.add_dead_letter(record):
        return False
    alert = SupervisionAlert(
        kind="dead_letter",
        severity="warning",
        message=(
            f"{record['consumer']} 无法处理 {record['source_topic']} 上的一条消息 / could not "
            f"process a message on {record['source_topic']}: {record['reason'][:300]}"
        ),
    )
    case_id = key or f"dlq:{source_topic}"
    await repo.raise_alert(
        dead_letter_alert_id(source_topic, partition, offset),
        Envelope.wrap(alert, case_id=case_id, producer=PRODUCER, occurred_at=now),
    )
    return True


def dead_letter_alert_id(source_topic: str, partition: int, offset: int) -> str:
    """The id of the alert raised for the dead letter at ``partition``/``offset`` of ``<source_topic>.dlq``."""
    return f"dead_letter:{source_topic}:{partition}:{offset}"


def _int(text: str | None) -> int:
    try:
        return int(text or -1)
    except ValueError:
        return -1


#: Default lead times of the deadline warnings, in days before the deadline.
DEFAULT_WARNING_LEAD_DAYS: tuple[float, ...] = (3.0, 1.0)


def lead_label(lead_days: float) -> str:
    """How a lead time appears in alert ids: ``3d``, ``1d``, ``0.5d``."""
    return f"{lead_days:g}d"


def deadline_warning_alert_id(case_id: str, lead_days: float, deadline: datetime) -> str:
    """The id of a case's warning at one lead time before one deadline (its Beijing day):
    raised once; a deadline moved to another day (complex case, pause) is warned about again."""
    return f"deadline_warning:{lead_label(lead_days)}:{case_id}:{beijing_day(deadline).isoformat()}"


def deadline_breached_alert_id(case_id: str) -> str:
    """The id of a case's breach alert: raised once per case."""
    return f"deadline_breached:{case_id}"


async def check_deadlines(
    *, now: datetime, lead_days: Sequence[float] = DEFAULT_WARNING_LEAD_DAYS, repo: SupervisionRepository,
) -> int:
    """Warn at each lead time before an open case's deadline, and raise a critical alert once
    it is past; return the number of alerts raised.

    The 15-day (complex: 30, at most 60) decision deadline comes from intake's
    ``complaint.registered`` (moved by investigation for complex cases and pauses); cases
    paused for external appraisal are not on the clock.

    Breaches are breaches: a case settled, escalated or closed (``FINISHED``) leaves the clock
    at its first such event (``finished_at``). Before its deadline, it leaves without a breach
    and gets no more warnings; after it (escalated late, or registered already past its
    deadline and escalated at once) ``deadline_breached`` is raised all the same, once. Either
    way the sweep then marks the case (``clock_stopped``) so it is not read again.

    A case within ``lead_days`` of its deadline gets the warning of the shortest lead time it
    has reached (within 3 days: the 3-day warning; within 1 day: the 1-day one), each once per
    deadline (``deadline_warning_alert_id``; a case first seen 12 hours before its deadline gets
    only the 1-day warning). A deadline is past once ``now`` is after it (for ``shared.clock``'s
    deadlines: from 00:00 Beijing of the next day); then only ``deadline_breached`` is raised,
    once per case. Already-raised alerts are not raised again (the alert id is unique).
    """
    leads = sorted({float(days) for days in lead_days if days > 0})
    raised = 0
    horizon = now + timedelta(days=max(leads, default=0.0))
    for case in await repo.cases_due_before(horizon, FINISHED_FROM_RANK):
        deadline: datetime = case["deadline_at"]
        label = case.get("case_number") or case["_id"]
        local = to_local(deadline, REGULATORY_TIMEZONE)
        if (case.get("status_rank") or 0) >= FINISHED_FROM_RANK:
            raised += await _finished(case, deadline, label, now, repo)
            continue
        if deadline < now:
            if "deadline_breached" in case.get("alerts", []):
                continue
            alert_id, kind, severity = deadline_breached_alert_id(case["_id"]), "deadline_breached", "critical"
            message = (
                f"案件 {label} 已超过处理时限（北京时间 {local:%Y-%m-%d %H:%M}）/ case {label} is past "
                f"its decision deadline ({local:%Y-%m-%d %H:%M} Beijing time)"
            )
        else:
            remaining = deadline - now
            lead = next((days for days in leads if remaining <= timedelta(days=days)), None)
            if lead is None:
                continue
            alert_id, kind, severity = deadline_warning_alert_id(case["_id"], lead, deadline), "deadline_warning", "warning"
            hours = int(remaining.total_seconds() // 3600)
            message = (
                f"案件 {label} 距处理时限还有 {hours} 小时（北京时间 {local:%Y-%m-%d %H:%M}，提前 {lead:g} 天提醒）"
                f" / case {label} is due in {hours} hours ({local:%Y-%m-%d %H:%M} Beijing time; "
                f"{lead:g}-day warning)"
            )
        alert = SupervisionAlert(kind=kind, severity=severity, message=message, due_at=deadline)
        if await repo.raise_alert(alert_id, _case_alert(alert, case["_id"], case.get("correlation_id"), now)):
            raised += 1
    return raised


async def _finished(case: dict[str, Any], deadline: datetime, label: str, now: datetime,
                    repo: SupervisionRepository) -> int:
    """Settle a finished case's clock: the breach if it left the clock after its deadline."""
    stopped = case.get("finished_at")
    if stopped is not None and as_utc(stopped) > as_utc(deadline):
        if as_utc(deadline) >= as_utc(now):
            return 0  # finished "after" a deadline not yet past (clock skew): decide later
        raised = 0
        if "deadline_breached" not in case.get("alerts", []):
            local, left = to_local(deadline, REGULATORY_TIMEZONE), to_local(stopped, REGULATORY_TIMEZONE)
            status = case.get("status") or status_of(case.get("status_rank"))
            alert = SupervisionAlert(
                kind="deadline_breached", severity="critical", due_at=deadline,
                message=(
                    f"案件 {label} 超过处理时限（北京时间 {local:%Y-%m-%d %H:%M}）后才办结或升级（北京时间 "
                    f"{left:%Y-%m-%d %H:%M}，现为 {status}）/ case {label} left the clock only after its "
                    f"decision deadline ({local:%Y-%m-%d %H:%M} Beijing time): at {left:%Y-%m-%d %H:%M} "
                    f"Beijing time, now {status}"
                ),
            )
            if await repo.raise_alert(deadline_breached_alert_id(case["_id"]),
                                      _case_alert(alert, case["_id"], case.get("correlation_id"), now)):
                raised = 1
        await repo.clock_stopped(case["_id"])
        return raised
    await repo.clock_stopped(case["_id"])  # left in time (or before this was recorded): no breach
    return 0


# ------------------------------------------------------------------ alerts raised elsewhere


def is_own_alert(envelope: Envelope[Any]) -> bool:
    """Whether supervision raised this alert itself (it stores those when it raises them)."""
    return envelope.producer == PRODUCER


def foreign_alert_id(envelope: Envelope[Any]) -> str:
    """The id another service's alert is stored under: its event id (a redelivery or a
    second publication of the same event is the same alert)."""
    return f"event:{envelope.event_id}"


async def record_foreign_alerts(envelopes: list[Envelope[SupervisionAlert]], *,
                                repo: SupervisionRepository) -> int:
    """Store the alerts other services raised (follow-up's ``case_reopened``,
    ``instalment_missed``, ``execution_overdue``, ...) once each; supervision's own alerts,
    stored when raised, are skipped. Returns the number newly stored."""
    stored = 0
    for envelope in envelopes:
        if not is_own_alert(envelope) and await repo.store_alert(foreign_alert_id(envelope), envelope):
            stored += 1
    return stored


# ------------------------------------------------------------------ a person acts on an alert

#: An alert is open, then acknowledged (someone is on it), then resolved.
ALERT_STATUSES = ("open", "acknowledged", "resolved")


def alert_status(alert: dict[str, Any]) -> str:
    """The status of a stored alert: resolved, acknowledged or open."""
    if alert.get("resolved"):
        return "resolved"
    if alert.get("acknowledged"):
        return "acknowledged"
    return "open"


def action_record(*, by: str, note: str | None, now: datetime) -> dict[str, Any]:
    """Who did it, when, and what they noted."""
    return {"by": by, "at": now, "note": (note or "").strip() or None}


def acknowledge(alert: dict[str, Any], *, by: str, note: str | None, now: datetime) -> dict[str, Any] | None:
    """The fields to set when ``by`` acknowledges ``alert``, or None when there is nothing to
    change: an alert is acknowledged once (a second acknowledgement keeps the first record)
    and a resolved alert is not acknowledged afterwards."""
    if alert_status(alert) != "open":
        return None
    return {"acknowledged": action_record(by=by, note=note, now=now), "status": "acknowledged"}


def resolve(alert: dict[str, Any], *, by: str, note: str | None, now: datetime) -> dict[str, Any] | None:
    """The fields to set when ``by`` resolves ``alert``, or None when it is resolved already
    (the first resolution is kept). An open alert may be resolved directly; it then stays
    without an acknowledgement."""
    if alert_status(alert) == "resolved":
        return None
    return {"resolved": action_record(by=by, note=note, now=now), "status": "resolved"}


# ------------------------------------------------------------------ consumer lag


@dataclass(frozen=True)
class PartitionLag:
    """How far one consumer group is behind on one partition."""

    group: str
    topic: str  # logical name
    partition: int
    committed: int | None  # None: the group has committed nothing there
    end: int

    @property
    def lag(self) -> int:
        """Records after the committed offset (all of them when nothing was committed)."""
        return max(self.end - (self.committed or 0), 0)


def consumer_groups(topic_prefix: str) -> dict[str, tuple[str, ...]]:
    """Every service's consumer group (the faust app id, ``<prefix>parley-<service>``) and the
    logical topics it reads: the catalogue's consumers, and for supervision every dead-letter
    topic too."""
    from shared.topics import CATALOGUE

    reads: dict[str, list[str]] = {}
    for name, entry in CATALOGUE.items():
        for service in entry.consumers:
            reads.setdefault(service, []).append(name)
    reads.setdefault("supervision", []).extend(entry.dlq for entry in CATALOGUE.values())
    return {f"{topic_prefix}parley-{service}": tuple(topics) for service, topics in sorted(reads.items())}


def partition_lags(group: str, partitions: Sequence[tuple[str, int]],
                   committed: Mapping[tuple[str, int], int | None],
                   ends: Mapping[tuple[str, int], int]) -> list[PartitionLag]:
    """One row per (topic, partition) the group reads: committed offset (None, or a negative
    offset Kafka answers for "none", when nothing was committed), end offset, lag."""
    rows = []
    for topic, partition in sorted(partitions):
        offset = committed.get((topic, partition))
        rows.append(PartitionLag(group, topic, partition,
                                 offset if offset is not None and offset >= 0 else None,
                                 ends.get((topic, partition), 0)))
    return rows


def total_lag(rows: Sequence[PartitionLag]) -> int:
    """A group's lag over all its partitions."""
    return sum(row.lag for row in rows)


def lag_transitions(totals: dict[str, int], *, threshold: int,
                    above: set[str]) -> tuple[list[str], list[str]]:
    """Which groups went above ``threshold`` now (alert them: once per group while above) and
    which came back to it or below (they may alert again next time), given the groups that
    were ``above`` before."""
    rising = sorted(g for g, lag in totals.items() if lag > threshold and g not in above)
    falling = sorted(g for g in above if totals.get(g, 0) <= threshold)
    return rising, falling


def lag_alert_id(group: str, since: datetime) -> str:
    """The id of a group's lag alert: one per time it went above the threshold."""
    return f"consumer_lag:{group}:{as_utc(since):%Y%m%dT%H%M%SZ}"


def lag_alert(group: str, lag: int, threshold: int) -> SupervisionAlert:
    """The alert of a consumer group that fell behind."""
    return SupervisionAlert(
        kind="consumer_lag", severity="warning",
        message=(f"消费组 {group} 积压 {lag} 条消息（阈值 {threshold}）/ consumer group {group} is "
                 f"{lag} records behind (threshold {threshold})"),
    )


# ------------------------------------------------------------------ stuck cases

#: How long a case may stay in a status without any event before it is "stuck" (hours;
#: ``PARLEY_SUPERVISION_STUCK_AFTER_HOURS`` overrides, 0 turns a stage's check off). Closed
#: cases are never stuck.
DEFAULT_STUCK_AFTER_HOURS: dict[str, float] = {
    "registered": 24, "investigated": 48, "negotiating": 120, "offer_open": 168, "negotiation_failed": 48,
    "settled": 720, "escalated": 336, "executed": 168, "followed_up": 72,
}


class StuckRepository(Protocol):
    """What the stuck-case check needs from storage."""

    async def idle_cases(self, rank: int, before: datetime, limit: int = 500) -> list[dict[str, Any]]: ...

    async def mark_stuck(self, case_id: str, last_event_at: datetime) -> None: ...

    async def raise_alert(self, alert_id: str, envelope: Envelope[SupervisionAlert]) -> bool: ...


def stuck_alert_id(case_id: str, status: str, last_event_at: datetime) -> str:
    """One alert per stay in a stage: the id names the case, the status and its last event."""
    return f"case_stuck:{case_id}:{status}:{as_utc(last_event_at):%Y%m%dT%H%M%SZ}"


async def check_stuck(*, now: datetime, after_hours: Mapping[str, float], repo: StuckRepository) -> list[str]:
    """Raise ``case_stuck`` (warning) for each case that has had no event for longer than its
    status allows; once per stay (any later event clears the mark, and a case stuck again
    after moving on gets a new alert). Paused cases (external appraisal) are not stuck.
    Returns the ids of the alerts raised."""
    raised = []
    for status, hours in after_hours.items():
        if hours <= 0 or status not in STATUS_RANK or status == "closed":
            continue
        for case in await repo.idle_cases(STATUS_RANK[status], now - timedelta(hours=hours)):
            last = case["last_event_at"]
            label = case.get("case_number") or case["_id"]
            idle_h = (as_utc(now) - as_utc(last)).total_seconds() / 3600
            alert = SupervisionAlert(
                kind="case_stuck", severity="warning",
                message=(f"案件 {label} 在“{status}”阶段已 {idle_h:.1f} 小时无任何事件（上限 {hours:g} 小时）/ "
                         f"case {label} has had no event for {idle_h:.1f} hours in status {status} "
                         f"(limit {hours:g} hours)"),
            )
            alert_id = stuck_alert_id(case["_id"], status, last)
            if await repo.raise_alert(alert_id, _case_alert(alert, case["_id"], case.get("correlation_id"), now)):
                raised.append(alert_id)
            await repo.mark_stuck(case["_id"], last)
    return raised


# ------------------------------------------------------------------ service heartbeats


@dataclass(frozen=True)
class GroupPulse:
    """What Kafka says of one service's consumer group now."""

    group: str
    members: int
    committed: int  # committed offsets summed over the group's partitions
    lag: int


def heartbeat_step(state: Mapping[str, Any] | None, pulse: GroupPulse, *, now: datetime,
                   down_after_s: float, stall_after_s: float) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The group's new heartbeat state and what happened: ``("down", alert_id)`` when a group
    that had members has had none for ``down_after_s``, ``("up", prefix)`` when it has members
    again, ``("stalled", alert_id)`` when it has members and lag but has committed nothing new
    for ``stall_after_s``, ``("moving", prefix)`` when it commits again.

    The workers' heartbeat is their consumer group: a faust worker is a member while it
    runs (its consumer heartbeats to the group coordinator), and commits as it processes.
    A group never seen with members is a service not started yet, not one that stopped."""
    old = dict(state or {})
    new: dict[str, Any] = {
        "members": pulse.members, "committed": pulse.committed, "lag": pulse.lag, "checked_at": now,
        "seen_members": bool(old.get("seen_members")) or pulse.members > 0,
        "last_member_at": now if pulse.members > 0 else old.get("last_member_at"),
        "empty_since": None, "down_alert": old.get("down_alert"),
        "committed_at": old.get("committed_at") or now, "stall_alert": old.get("stall_alert"),
    }
    events: list[tuple[str, str]] = []
    group = pulse.group
    if pulse.members > 0:
        if new["down_alert"]:
            events.append(("up", f"worker_down:{group}:"))
            new["down_alert"] = None
    elif new["seen_members"]:
        since = old.get("empty_since") or now
        new["empty_since"] = since
        if not new["down_alert"] and (as_utc(now) - as_utc(since)).total_seconds() >= down_after_s:
            new["down_alert"] = f"worker_down:{group}:{as_utc(since):%Y%m%dT%H%M%SZ}"
            events.append(("down", new["down_alert"]))
    if pulse.committed != old.get("committed") or pulse.lag == 0 or not old.get("members"):
        # moving, idle, or (re)joined just now: the stall clock runs only while workers are there
        new["committed_at"] = now
        if new["stall_alert"]:
            events.append(("moving", f"worker_stalled:{group}:"))
            new["stall_alert"] = None
    elif pulse.members > 0 and not new["stall_alert"] and \
            (as_utc(now) - as_utc(new["committed_at"])).total_seconds() >= stall_after_s:
        new["stall_alert"] = f"worker_stalled:{group}:{as_utc(new['committed_at']):%Y%m%dT%H%M%SZ}"
        events.append(("stalled", new["stall_alert"]))
    return new, events


def heartbeat_alert(kind: str, pulse: GroupPulse, since: datetime | None, seconds: float) -> SupervisionAlert:
    """The alert of a service whose workers stopped (``worker_down``) or stopped committing
    (``worker_stalled``)."""
    group = pulse.group
    if kind == "down":
        return SupervisionAlert(
            kind="worker_down", severity="critical",
            message=(f"消费组 {group} 已无在线工作进程（超过 {seconds:g} 秒）/ consumer group {group} has had no "
                     f"worker for more than {seconds:g} s"))
    return SupervisionAlert(
        kind="worker_stalled", severity="critical",
        message=(f"消费组 {group} 有 {pulse.lag} 条积压，但超过 {seconds:g} 秒未提交新的偏移量 / consumer group "
                 f"{group} has {pulse.lag} records waiting but committed nothing new for more than {seconds:g} s"))
