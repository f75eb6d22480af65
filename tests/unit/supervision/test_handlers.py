"""Supervision's rules, on an in-memory repository."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.supervision import handlers
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.contracts.supervision import SupervisionAlert
from tests.support.events import registered

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class MemoryRepo:
    def __init__(self) -> None:
        self.cases: dict[str, dict[str, Any]] = {}
        self.seen: set[str] = set()
        self.dead: set[tuple[str, int, int]] = set()
        self.alerts: dict[str, Envelope[SupervisionAlert]] = {}

    async def apply_changes(self, changes: list[handlers.CaseChange]) -> None:
        # the store's semantics: entries added as a set, the rank only rises
        for change in changes:
            case = self.cases.setdefault(change.case_id, {"_id": change.case_id, "status_rank": 0, "alerts": [], "timeline": []})
            for entry in change.timeline:
                if entry not in case["timeline"]:
                    case["timeline"].append(entry)
            case["status_rank"] = max(case["status_rank"], change.status_rank or 0)
            case["status"] = handlers.status_of(case["status_rank"])
            if change.deadline_at:
                case["deadline_at"] = change.deadline_at
            if change.paused is not None:
                case["paused"] = change.paused
            if change.provisional is not None:
                case["deadline_provisional"] = change.provisional
            if change.correlation_id:
                case["correlation_id"] = change.correlation_id
            if change.finished_at is not None:
                case["finished_at"] = min(case.get("finished_at") or change.finished_at, change.finished_at)

    async def add_dead_letter(self, record: dict[str, Any]) -> bool:
        key = (record["dlq_topic"], record["partition"], record["offset"])
        if key in self.dead:
            return False
        self.dead.add(key)
        return True

    async def raise_alert(self, alert_id: str, envelope: Envelope[SupervisionAlert]) -> bool:
        if alert_id in self.alerts:
            return False
        self.alerts[alert_id] = envelope
        if envelope.case_id in self.cases:
            self.cases[envelope.case_id]["alerts"].append(envelope.payload.kind)
        return True

    async def cases_due_before(self, when: datetime, finished_from_rank: int) -> list[dict[str, Any]]:
        return [
            c for c in self.cases.values()
            if c.get("deadline_at") and c["deadline_at"] <= when and not c.get("clock_stopped")
            and not c.get("paused")
        ]

    async def clock_stopped(self, case_id: str) -> None:
        self.cases[case_id]["clock_stopped"] = True


async def test_events_build_a_timeline_once_even_when_redelivered() -> None:
    repo = MemoryRepo()
    event = registered("c1", received_at=NOW)
    await handlers.record_event(event, repo=repo)
    await handlers.record_events([event, event], repo=repo)  # redelivered, alone and in a batch
    assert [e["event_type"] for e in repo.cases["c1"]["timeline"]] == ["complaint.registered"]
    assert repo.cases["c1"]["status"] == "registered"
    assert repo.cases["c1"]["deadline_at"] == NOW + timedelta(days=15)


async def test_warning_before_the_deadline_then_breach_after_it_each_once() -> None:
    repo = MemoryRepo()
    await handlers.record_event(registered("c1", received_at=NOW - timedelta(days=13)), repo=repo)
    await handlers.record_event(registered("c2", received_at=NOW), repo=repo)  # due in 15 days

    assert await handlers.check_deadlines(now=NOW, lead_days=(3,), repo=repo) == 1
    assert await handlers.check_deadlines(now=NOW, lead_days=(3,), repo=repo) == 0
    [warning] = repo.alerts.values()
    assert warning.payload.kind == "deadline_warning" and warning.case_id == "c1"
    assert "48 小时" in warning.payload.message and "48 hours" in warning.payload.message

    later = NOW + timedelta(days=2, hours=1)
    assert await handlers.check_deadlines(now=later, lead_days=(3,), repo=repo) == 1
    assert repo.alerts["deadline_breached:c1"].payload.severity == "critical"


async def test_a_sweeps_alerts_about_a_case_are_in_the_cases_story() -> None:
    """Raised by a timer, with no event as their cause, the deadline alerts still carry the
    case's correlation id (the complaint's trace, shared.tracing)."""
    repo = MemoryRepo()
    event = registered("c1", received_at=NOW - timedelta(days=13))
    await handlers.record_event(event, repo=repo)
    await handlers.check_deadlines(now=NOW, lead_days=(3,), repo=repo)
    await handlers.check_deadlines(now=NOW + timedelta(days=3), lead_days=(3,), repo=repo)
    assert [a.payload.kind for a in repo.alerts.values()] == ["deadline_warning", "deadline_breached"]
    assert {a.correlation_id for a in repo.alerts.values()} == {event.correlation_id}


async def test_cases_closed_in_time_are_off_the_clock_and_closed_late_ones_are_breaches() -> None:
    repo = MemoryRepo()
    first = registered("c1", received_at=NOW - timedelta(days=13))  # due in 2 days
    await handlers.record_event(first, repo=repo)
    await handlers.record_event(
        Envelope.wrap(CaseClosed(case_number="TS-1", outcome="withdrawn"), case_id="c1", producer="followup",
                      cause=first, occurred_at=NOW),
        repo=repo,
    )
    assert repo.cases["c1"]["status"] == "closed"
    assert await handlers.check_deadlines(now=NOW, lead_days=(3,), repo=repo) == 0
    assert await handlers.check_deadlines(now=NOW + timedelta(days=3), lead_days=(3,), repo=repo) == 0
    # closed five days after its deadline: the breach stands
    late = registered("c2", received_at=NOW - timedelta(days=20))
    await handlers.record_event(late, repo=repo)
    await handlers.record_event(
        Envelope.wrap(CaseClosed(case_number="TS-2", outcome="withdrawn"), case_id="c2", producer="followup",
                      cause=late, occurred_at=NOW),
        repo=repo,
    )
    assert await handlers.check_deadlines(now=NOW, lead_days=(3,), repo=repo) == 1
    assert list(repo.alerts) == ["deadline_breached:c2"]


async def test_a_dead_letter_raises_one_alert_naming_consumer_and_reason() -> None:
    repo = MemoryRepo()
    headers = {"dlq.consumer": "intake", "dlq.reason": "customer.phone: String should match pattern", "dlq.source_topic": "complaint.received"}
    kwargs = dict(source_topic="complaint.received", partition=1, offset=9, headers=headers, key="app-1", now=NOW, repo=repo)
    assert await handlers.record_dead_letter(**kwargs)  # type: ignore[arg-type]
    assert not await handlers.record_dead_letter(**kwargs)  # type: ignore[arg-type]
    [alert] = repo.alerts.values()
    assert alert.payload.kind == "dead_letter"
    assert "intake" in alert.payload.message and "customer.phone" in alert.payload.message


async def test_a_case_never_moves_back_when_topics_arrive_out_of_order() -> None:
    from shared.contracts.followup import FollowupCompleted

    repo = MemoryRepo()
    first = registered("c1", received_at=NOW)
    await handlers.record_event(first, repo=repo)
    await handlers.record_event(
        Envelope.wrap(CaseClosed(case_number="TS-1", outcome="resolved"), case_id="c1", producer="followup", cause=first),
        repo=repo,
    )
    await handlers.record_event(
        Envelope.wrap(FollowupCompleted(case_number="TS-1", satisfied=True), case_id="c1", producer="followup", cause=first),
        repo=repo,
    )
    assert repo.cases["c1"]["status"] == "closed"


def test_a_batch_folds_into_one_change_per_case_with_the_highest_status_and_last_deadline() -> None:
    first = registered("c1", received_at=NOW)
    closed = Envelope.wrap(CaseClosed(case_number="TS-1", outcome="resolved"), case_id="c1", producer="followup", cause=first)
    other = registered("c2", received_at=NOW - timedelta(days=1))
    changes = {c.case_id: c for c in handlers.fold_events([closed, other, first])}
    assert set(changes) == {"c1", "c2"}
    c1 = changes["c1"]
    assert [e["event_type"] for e in c1.timeline] == ["case.closed", "complaint.registered"]
    assert handlers.status_of(c1.status_rank) == "closed"  # out of order, still closed
    assert c1.deadline_at == NOW + timedelta(days=15) and c1.case_number
    assert handlers.status_of(changes["c2"].status_rank) == "registered"


def test_every_status_has_its_own_rank_and_finished_ones_are_settled_onwards() -> None:
    assert len(set(handlers.STATUS_RANK.values())) == len(handlers.STATUS_RANK)
    assert handlers.FINISHED == {"settled", "escalated", "executed", "followed_up", "closed"}
    assert all(handlers.status_of(rank) == status for status, rank in handlers.STATUS_RANK.items())


def test_status_mapping_covers_the_lifecycle() -> None:
    assert handlers.status_after("complaint.registered") == "registered"
    assert handlers.status_after("settlement.agreed") == "settled"
    assert handlers.status_after("case.escalated") == "escalated"
    assert handlers.status_after("customer.notified") is None


async def test_no_deadline_alert_while_paused_for_appraisal_and_the_deadline_moves_on_resume() -> None:
    from shared.contracts.investigation import InvestigationPaused

    repo = MemoryRepo()
    first = registered("c1", received_at=NOW - timedelta(days=14))
    await handlers.record_event(first, repo=repo)

    def pause(resumed: bool) -> Envelope[Any]:
        return Envelope.wrap(
            InvestigationPaused(
                case_number="TS-1", pause_id="p1", reason_code="external_appraisal",
                reason_zh="送外部鉴定", reason_en="sent for external appraisal",
                paused_at=NOW - timedelta(days=10),
                resumed_at=NOW if resumed else None,
                days_excluded=10 if resumed else None,
                deadline_at=first.payload.deadline_at + timedelta(days=10) if resumed else None,
            ),
            case_id="c1", producer="investigation", cause=first,
        )

    await handlers.record_event(pause(False), repo=repo)
    assert await handlers.check_deadlines(now=NOW, lead_days=(3,), repo=repo) == 0
    await handlers.record_event(pause(True), repo=repo)
    assert repo.cases["c1"]["deadline_at"] == NOW + timedelta(days=11)
    assert await handlers.check_deadlines(now=NOW, lead_days=(3,), repo=repo) == 0
    assert await handlers.check_deadlines(now=NOW + timedelta(days=9), lead_days=(3,), repo=repo) == 1


async def test_warnings_at_each_lead_time_then_one_breach_each_raised_once() -> None:
    from shared.clock import due

    repo = MemoryRepo()
    # received 30 Sep 2025 in Beijing: due at the end of 15 Oct 2025, Beijing time (shared.clock)
    deadline = due(datetime(2025, 9, 30, 10, tzinfo=UTC), 15)
    event = registered("c1", received_at=datetime(2025, 9, 30, 2, tzinfo=UTC))
    await handlers.record_event(event, repo=repo)
    repo.cases["c1"]["deadline_at"] = deadline.due_at
    start = deadline.due_at - timedelta(days=5)

    async def sweep(now: datetime) -> int:
        return await handlers.check_deadlines(now=now, repo=repo)  # the default leads: 3 and 1 day

    assert await sweep(start) == 0
    three = deadline.due_at - timedelta(days=2, hours=12)
    assert await sweep(three) == 1 and await sweep(three + timedelta(hours=1)) == 0
    one = deadline.due_at - timedelta(hours=20)
    assert await sweep(one) == 1 and await sweep(one + timedelta(hours=1)) == 0
    assert await sweep(deadline.due_at) == 0  # 23:59:59.999999 Beijing on the last day: not past yet
    next_day = datetime(2025, 10, 16, 0, 0, tzinfo=deadline.due_at.tzinfo)
    assert await sweep(next_day) == 1 and await sweep(next_day + timedelta(days=1)) == 0
    assert sorted(repo.alerts) == [
        "deadline_breached:c1", "deadline_warning:1d:c1:2025-10-15", "deadline_warning:3d:c1:2025-10-15",
    ]
    warn3, warn1 = repo.alerts["deadline_warning:3d:c1:2025-10-15"], repo.alerts["deadline_warning:1d:c1:2025-10-15"]
    assert warn3.payload.severity == warn1.payload.severity == "warning"
    assert "3-day warning" in warn3.payload.message and "提前 3 天" in warn3.payload.message
    assert "1-day warning" in warn1.payload.message and "2025-10-15 23:59 Beijing time" in warn1.payload.message
    assert warn1.payload.due_at == deadline.due_at
    assert repo.alerts["deadline_breached:c1"].payload.severity == "critical"


async def test_a_case_first_seen_late_gets_only_the_nearest_warning() -> None:
    repo = MemoryRepo()
    await handlers.record_event(registered("c1", received_at=NOW - timedelta(days=14, hours=12)), repo=repo)
    assert await handlers.check_deadlines(now=NOW, lead_days=(3, 1), repo=repo) == 1
    [alert_id] = repo.alerts
    assert alert_id.startswith("deadline_warning:1d:c1:")
    # a case past its deadline when first swept gets the breach only, no warnings
    await handlers.record_event(registered("c2", received_at=NOW - timedelta(days=16)), repo=repo)
    assert await handlers.check_deadlines(now=NOW, lead_days=(3, 1), repo=repo) == 1
    assert "deadline_breached:c2" in repo.alerts and not any(a.startswith("deadline_warning:3d:c2") for a in repo.alerts)


async def test_a_deadline_moved_to_another_day_is_warned_about_again() -> None:
    repo = MemoryRepo()
    first = registered("c1", received_at=NOW - timedelta(days=13))  # due in 2 days
    await handlers.record_event(first, repo=repo)
    assert await handlers.check_deadlines(now=NOW, lead_days=(3, 1), repo=repo) == 1
    # the clock restarts (new facts) with a later deadline: its warnings come again, once
    await handlers.record_event(registered("c1", received_at=NOW - timedelta(days=13), deadline_days=17), repo=repo)
    assert await handlers.check_deadlines(now=NOW + timedelta(days=2), lead_days=(3, 1), repo=repo) == 1
    assert await handlers.check_deadlines(now=NOW + timedelta(days=2), lead_days=(3, 1), repo=repo) == 0
    assert len([a for a in repo.alerts if a.startswith("deadline_warning:3d:c1:")]) == 2


async def test_no_lead_times_means_breaches_only() -> None:
    repo = MemoryRepo()
    await handlers.record_event(registered("c1", received_at=NOW - timedelta(days=14)), repo=repo)
    assert await handlers.check_deadlines(now=NOW, lead_days=(), repo=repo) == 0
    assert await handlers.check_deadlines(now=NOW + timedelta(days=2), lead_days=(), repo=repo) == 1
    assert list(repo.alerts) == ["deadline_breached:c1"]


def test_lead_times_come_from_one_setting_with_the_old_one_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.supervision.settings import Settings

    for var in ("PARLEY_SUPERVISION_WARNING_LEAD_DAYS", "PARLEY_SUPERVISION_WARNING_DAYS"):
        monkeypatch.delenv(var, raising=False)
    assert Settings().warning_lead_days == [3.0, 1.0]
    monkeypatch.setenv("PARLEY_SUPERVISION_WARNING_DAYS", "5")  # the older single lead time
    assert Settings().warning_lead_days == [5.0]
    monkeypatch.setenv("PARLEY_SUPERVISION_WARNING_LEAD_DAYS", "1, 7,2")
    assert Settings().warning_lead_days == [7.0, 2.0, 1.0]
    monkeypatch.setenv("PARLEY_SUPERVISION_WARNING_LEAD_DAYS", "[2, 0.5]")
    assert Settings().warning_lead_days == [2.0, 0.5]
    monkeypatch.setenv("PARLEY_SUPERVISION_WARNING_LEAD_DAYS", "3,0")
    with pytest.raises(ValidationError, match="more than 0"):
        Settings()


async def test_a_dead_letter_kept_in_the_database_is_recorded_with_where_it_is() -> None:
    recorded: list[dict[str, Any]] = []

    class Recording(MemoryRepo):
        async def add_dead_letter(self, record: dict[str, Any]) -> bool:
            recorded.append(record)
            return await super().add_dead_letter(record)

    headers = {"dlq.consumer": "intake", "dlq.reason": "text: too long", "dlq.stored_in": "intake.dead_letter_bodies",
               "dlq.stored_id": "complaint.received:0:17"}
    await handlers.record_dead_letter(source_topic="complaint.received", partition=0, offset=3, headers=headers,
                                      key="big-1", now=NOW, repo=Recording())
    assert recorded[0]["stored_in"] == "intake.dead_letter_bodies"
    assert recorded[0]["stored_id"] == "complaint.received:0:17"


# ------------------------------------------------------------------ breaches are breaches (issue 12)


def _escalated(first: Envelope[Any], at: datetime) -> Envelope[Any]:
    from shared.contracts.negotiation import CaseEscalated

    return Envelope.wrap(CaseEscalated(case_number="TS-1", target="mediation", reason="r", dossier_ref="DS-1"),
                         case_id=first.case_id, producer="negotiation", cause=first, occurred_at=at)


def _agreed(first: Envelope[Any], at: datetime) -> Envelope[Any]:
    from tests.support.events import agreed

    env = agreed(first.case_id)
    return env.model_copy(update={"occurred_at": at})


async def test_a_case_registered_past_its_deadline_and_escalated_at_once_is_a_breach_once() -> None:
    repo = MemoryRepo()
    late = registered("c1", received_at=NOW - timedelta(days=20))  # due 5 days ago
    await handlers.record_events([late, _escalated(late, NOW - timedelta(minutes=5))], repo=repo)
    assert repo.cases["c1"]["status"] == "escalated"
    assert await handlers.check_deadlines(now=NOW, lead_days=(3, 1), repo=repo) == 1
    alert = repo.alerts["deadline_breached:c1"].payload
    assert alert.kind == "deadline_breached" and alert.severity == "critical"
    assert "left the clock only after its decision deadline" in alert.message and "escalated" in alert.message
    # once: the case is settled by the sweep and never read again
    assert repo.cases["c1"]["clock_stopped"]
    assert await handlers.check_deadlines(now=NOW + timedelta(days=1), lead_days=(3, 1), repo=repo) == 0
    assert list(repo.alerts) == ["deadline_breached:c1"]


async def test_escalated_after_the_deadline_passed_is_a_breach_even_if_first_swept_later() -> None:
    repo = MemoryRepo()
    first = registered("c1", received_at=NOW - timedelta(days=16))  # due a day ago
    await handlers.record_event(first, repo=repo)
    await handlers.record_event(_escalated(first, NOW - timedelta(hours=1)), repo=repo)  # never swept while open
    assert await handlers.check_deadlines(now=NOW, lead_days=(), repo=repo) == 1
    assert "deadline_breached:c1" in repo.alerts


async def test_a_breach_raised_while_open_is_not_raised_again_when_the_case_is_escalated() -> None:
    repo = MemoryRepo()
    first = registered("c1", received_at=NOW - timedelta(days=16))
    await handlers.record_event(first, repo=repo)
    assert await handlers.check_deadlines(now=NOW, lead_days=(), repo=repo) == 1
    await handlers.record_event(_escalated(first, NOW + timedelta(hours=1)), repo=repo)
    assert await handlers.check_deadlines(now=NOW + timedelta(hours=2), lead_days=(), repo=repo) == 0
    assert list(repo.alerts) == ["deadline_breached:c1"] and repo.cases["c1"]["clock_stopped"]


async def test_escalated_or_settled_before_the_deadline_leaves_the_clock_without_a_breach() -> None:
    repo = MemoryRepo()
    a = registered("c1", received_at=NOW - timedelta(days=10))  # due in 5 days
    b = registered("c2", received_at=NOW - timedelta(days=10))
    await handlers.record_events([a, b], repo=repo)
    await handlers.record_events([_escalated(a, NOW), _agreed(b, NOW)], repo=repo)
    assert (repo.cases["c1"]["status"], repo.cases["c2"]["status"]) == ("escalated", "settled")
    for later in (NOW + timedelta(days=4, hours=12), NOW + timedelta(days=6), NOW + timedelta(days=30)):
        assert await handlers.check_deadlines(now=later, lead_days=(3, 1), repo=repo) == 0
    assert repo.alerts == {}
    assert repo.cases["c1"]["clock_stopped"] and repo.cases["c2"]["clock_stopped"]


async def test_the_first_event_that_finished_the_case_decides_whatever_the_order() -> None:
    repo = MemoryRepo()
    first = registered("c1", received_at=NOW - timedelta(days=10))  # due in 5 days
    closed = Envelope.wrap(CaseClosed(case_number="TS-1", outcome="resolved"), case_id="c1", producer="followup",
                           cause=first, occurred_at=NOW + timedelta(days=20))
    # closure (after the deadline) arrives before the agreement (in time): the agreement decides
    await handlers.record_events([first, closed], repo=repo)
    await handlers.record_events([_agreed(first, NOW)], repo=repo)
    assert repo.cases["c1"]["finished_at"] == NOW
    assert await handlers.check_deadlines(now=NOW + timedelta(days=21), lead_days=(), repo=repo) == 0


async def test_a_provisional_deadline_raises_one_ops_alert_per_case() -> None:
    from shared.clock import due
    from shared.contracts.investigation import InvestigationCompleted

    repo = MemoryRepo()
    received = datetime(2031, 9, 16, 2, 0, tzinfo=UTC)  # 2031: not in the holiday package
    deadline = due(received, 15)
    assert deadline.provisional
    env = registered("c1", received_at=received)
    env = env.model_copy(update={"payload": env.payload.model_copy(
        update={"deadline_at": deadline.due_at, "deadline_provisional": True, "deadline_tier": 15})})
    await handlers.record_events([env], repo=repo)
    await handlers.record_events([env], repo=repo)  # redelivered
    completed = Envelope.wrap(InvestigationCompleted(
        case_number="TS-1", category="other", finding="unsubstantiated", deadline_at=due(received, 30).due_at,
        deadline_provisional=True, deadline_tier=30), case_id="c1", producer="investigation", cause=env)
    await handlers.record_events([completed], repo=repo)  # a new provisional deadline: still one alert
    assert list(repo.alerts) == ["deadline_provisional:c1"]
    alert = repo.alerts["deadline_provisional:c1"].payload
    assert alert.kind == "deadline_provisional" and alert.severity == "warning"
    assert "2031-10-01" in alert.message and "provisional" in alert.message and "chinesecalendar" in alert.message
    assert repo.cases["c1"]["deadline_provisional"] is True
    # a deadline the package covers raises nothing
    await handlers.record_events([registered("c2", received_at=NOW)], repo=repo)
    assert list(repo.alerts) == ["deadline_provisional:c1"]
