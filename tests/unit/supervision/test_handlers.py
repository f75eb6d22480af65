"""Supervision's rules, on an in-memory repository."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

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

    async def add_to_timeline(self, envelope: Envelope[Any], status: str | None, deadline_at: datetime | None, paused: bool | None = None) -> bool:
        if str(envelope.event_id) in self.seen:
            return False
        self.seen.add(str(envelope.event_id))
        case = self.cases.setdefault(envelope.case_id, {"_id": envelope.case_id, "status": "open", "alerts": [], "timeline": []})
        case["timeline"].append(envelope.event_type)
        if status and handlers.STATUS_RANK[status] > handlers.STATUS_RANK[case["status"]]:
            case["status"] = status
        if deadline_at:
            case["deadline_at"] = deadline_at
        if paused is not None:
            case["paused"] = paused
        return True

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

    async def cases_due_before(self, when: datetime, finished: set[str]) -> list[dict[str, Any]]:
        return [
            c for c in self.cases.values()
            if c.get("deadline_at") and c["deadline_at"] <= when and c["status"] not in finished and not c.get("paused")
        ]


async def test_events_build_a_timeline_once_even_when_redelivered() -> None:
    repo = MemoryRepo()
    event = registered("c1", received_at=NOW)
    assert await handlers.record_event(event, repo=repo)
    assert not await handlers.record_event(event, repo=repo)
    assert repo.cases["c1"]["timeline"] == ["complaint.registered"]
    assert repo.cases["c1"]["status"] == "registered"
    assert repo.cases["c1"]["deadline_at"] == NOW + timedelta(days=15)


async def test_warning_before_the_deadline_then_breach_after_it_each_once() -> None:
    repo = MemoryRepo()
    await handlers.record_event(registered("c1", received_at=NOW - timedelta(days=13)), repo=repo)
    await handlers.record_event(registered("c2", received_at=NOW), repo=repo)  # due in 15 days

    assert await handlers.check_deadlines(now=NOW, warning_days=3, repo=repo) == 1
    assert await handlers.check_deadlines(now=NOW, warning_days=3, repo=repo) == 0
    [warning] = repo.alerts.values()
    assert warning.payload.kind == "deadline_warning" and warning.case_id == "c1"
    assert "48 小时" in warning.payload.message and "48 hours" in warning.payload.message

    later = NOW + timedelta(days=2, hours=1)
    assert await handlers.check_deadlines(now=later, warning_days=3, repo=repo) == 1
    assert repo.alerts["deadline_breached:c1"].payload.severity == "critical"


async def test_closed_cases_are_off_the_clock() -> None:
    repo = MemoryRepo()
    first = registered("c1", received_at=NOW - timedelta(days=20))
    await handlers.record_event(first, repo=repo)
    await handlers.record_event(
        Envelope.wrap(CaseClosed(case_number="TS-1", outcome="withdrawn"), case_id="c1", producer="followup", cause=first),
        repo=repo,
    )
    assert repo.cases["c1"]["status"] == "closed"
    assert await handlers.check_deadlines(now=NOW, warning_days=3, repo=repo) == 0


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
    assert await handlers.check_deadlines(now=NOW, warning_days=3, repo=repo) == 0
    await handlers.record_event(pause(True), repo=repo)
    assert repo.cases["c1"]["deadline_at"] == NOW + timedelta(days=11)
    assert await handlers.check_deadlines(now=NOW, warning_days=3, repo=repo) == 0
    assert await handlers.check_deadlines(now=NOW + timedelta(days=9), warning_days=3, repo=repo) == 1
