"""The evaluation report, stuck cases and heartbeats as plain rules (no I/O)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.supervision import evaluation, handlers
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.contracts.investigation import InvestigationCompleted
from shared.contracts.negotiation import CaseEscalated
from shared.contracts.supervision import SupervisionAlert
from tests.support.events import registered, settled_story

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def investigated(case_id: str, at: datetime, *, category: str = "collection_conduct",
                 cause: str = "collection_off_hours", complex_case: bool = False) -> Envelope[Any]:
    return Envelope.wrap(InvestigationCompleted(
        case_number="TS-1", category=category, finding="substantiated", root_cause=cause,
        root_cause_zh="非工作时间催收", root_cause_en="Collection off hours", complex_case=complex_case),
        case_id=case_id, producer="investigation", occurred_at=at)


def watch(events: list[Envelope[Any]], **extra: Any) -> dict[str, Any]:
    """A case's watch as the store keeps it after these events."""
    [change] = handlers.fold_events(events)
    return {"_id": change.case_id, "r": change.facts, "timeline": change.timeline,
            "deadline_at": change.deadline_at, "finished_at": change.finished_at, "alerts": [], **extra}


def settled_case(case_id: str, start: datetime, amount: str, *, score: int, agent: str = "a1") -> dict[str, Any]:
    return watch(settled_story(case_id, start, amount, score=score, agent=agent))


def test_report_from_case_facts() -> None:
    start = NOW - timedelta(days=20)
    a = settled_case("a", start, "80.00", score=5)
    b = settled_case("b", start + timedelta(hours=1), "120.50", score=2, agent="a2")
    escalated = watch([registered("c", received_at=start), investigated("c", start + timedelta(hours=20),
                                                                        category="pricing_fees", cause="fee_opaque"),
                       Envelope.wrap(CaseEscalated(case_number="TS-3", target="mediation", reason="r"), case_id="c",
                                     producer="negotiation", occurred_at=start + timedelta(days=17))])
    escalated["alerts"] = ["deadline_breached"]
    open_case = watch([registered("d", received_at=NOW - timedelta(days=1))])
    report = evaluation.build_report([a, b, escalated, open_case], start=start - timedelta(days=1), end=NOW, now=NOW,
                                     remediations=[evaluation.new_remediation(
                                         remediation_id="rem-1", root_cause="collection_off_hours", owner="催收部",
                                         action="晚八点后禁止外呼", due_date=date(2026, 12, 31), status="open",
                                         by="ops-1", now=NOW)])
    assert report["cases"] == 4
    assert report["volumes"]["channel"] == [{"key": "app", "label_zh": "App", "label_en": "App", "count": 4}]
    assert [(r["key"], r["count"]) for r in report["volumes"]["category"]] == [
        ("collection_conduct", 2), (None, 1), ("pricing_fees", 1)]
    stages = {r["stage"]: r for r in report["stage_times"]}
    assert stages["investigation"]["cases"] == 3 and stages["investigation"]["p50_hours"] == 10.0
    assert stages["investigation"]["p90_hours"] == pytest.approx(18.0)
    assert stages["negotiation"]["p50_hours"] == 18.0 and stages["total"]["cases"] == 2
    assert report["deadlines"] | {} == {"met": 2, "extended": 0, "breached": 1, "pending": 1, "decided": 3,
                                        "met_rate": 0.6667, "breached_rate": 0.3333}
    assert report["rates"]["settlement"] == {"cases": 2, "rate": 0.5}
    assert report["rates"]["escalation"] == {"cases": 1, "rate": 0.25}
    assert report["rates"]["withdrawal"] == {"cases": 0, "rate": 0.0}
    assert report["concessions"]["by_category"] == [{
        "key": "collection_conduct", "label_zh": "催收行为类", "label_en": "Collection conduct",
        "settlements": 2, "total": "200.50", "average": "100.25"}]
    by_agent = {r["key"]: r for r in report["satisfaction"]["by_agent"]}
    assert by_agent["a1"]["mean_score"] == 5 and by_agent["a2"]["satisfied_rate"] == 0.0
    [cat] = report["satisfaction"]["by_category"]
    assert cat["callbacks"] == 2 and cat["mean_score"] == 3.5 and cat["satisfied_rate"] == 0.5
    top = report["top_root_causes"]
    assert [(r["root_cause"], r["count"]) for r in top] == [("collection_off_hours", 2), ("fee_opaque", 1)]
    assert top[0]["remediations"][0]["owner"] == "催收部" and top[1]["remediations"] == []

    rows = list(csv.reader(io.StringIO(evaluation.report_csv(report))))
    assert rows[0][:3] == ["section", "dimension", "key"]
    assert ["concession", "category", "collection_conduct", "催收行为类", "Collection conduct", "total", "200.50"] in rows
    assert ["remediation", "collection_off_hours", "rem-1", "晚八点后禁止外呼", "催收部", "due 2026-12-31", "open"] in rows


def test_repeat_withdrawal_and_extension() -> None:
    start = NOW - timedelta(days=40)
    repeat = registered("r", received_at=start)
    repeat = repeat.model_copy(update={"payload": repeat.payload.model_copy(update={"is_repeat": True, "role": "repeat"})})
    case = watch([repeat, investigated("r", start + timedelta(days=2), complex_case=True),
                  Envelope.wrap(CaseClosed(case_number="TS-1", outcome="withdrawn"), case_id="r", producer="intake",
                                occurred_at=start + timedelta(days=3))])
    case["finished_at"] = start + timedelta(days=3)
    case["deadline_at"] = start + timedelta(days=30)
    report = evaluation.build_report([case], start=start, end=NOW, now=NOW)
    assert report["rates"]["repeat_complaint"]["rate"] == 1.0 and report["rates"]["withdrawal"]["cases"] == 1
    assert report["deadlines"]["extended"] == 1


def test_period_and_remediation_edits() -> None:
    start, end = evaluation.period_bounds(date(2026, 11, 1), date(2026, 11, 30), NOW)
    assert start.isoformat() == "2026-11-01T00:00:00+08:00" and end.isoformat() == "2026-12-01T00:00:00+08:00"
    default = evaluation.period_bounds(None, None, NOW)
    assert default[0].day == 1 and default[1].date() == date(2026, 11, 30)
    with pytest.raises(ValueError, match="to must not be before from"):
        evaluation.period_bounds(date(2026, 11, 2), date(2026, 11, 1), NOW)
    item = evaluation.new_remediation(remediation_id="rem-1", root_cause="x", owner="o", action="a",
                                      due_date=date(2026, 12, 1), status="open", by="u", now=NOW)
    assert evaluation.edit_remediation(item, {"owner": "o"}, by="u2", now=NOW) is None
    change = evaluation.edit_remediation(item, {"owner": "o2", "status": "done"}, by="u2", now=NOW)
    assert change is not None and change["history"]["changes"] == {"owner": "o2", "status": "done"}
    with pytest.raises(ValueError):
        evaluation.edit_remediation(item, {"status": "finished"}, by="u2", now=NOW)


def test_bar_chart_is_inline_svg_with_escaped_labels() -> None:
    svg = evaluation.bar_chart([("<b>x</b>", 3), ("y", 0)])
    assert svg.startswith("<svg") and "&lt;b&gt;" in svg and "<b>" not in svg and "http" not in svg.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert evaluation.bar_chart([]) == ""


class StuckRepo:
    def __init__(self, cases: list[dict[str, Any]]) -> None:
        self.cases = {c["_id"]: c for c in cases}
        self.alerts: dict[str, Envelope[SupervisionAlert]] = {}

    async def idle_cases(self, rank: int, before: datetime, limit: int = 500) -> list[dict[str, Any]]:
        return [c for c in self.cases.values() if c["status_rank"] == rank and c["last_event_at"] < before
                and not c.get("stuck") and not c.get("paused")]

    async def mark_stuck(self, case_id: str, last_event_at: datetime) -> None:
        if self.cases[case_id]["last_event_at"] == last_event_at:
            self.cases[case_id]["stuck"] = True

    async def raise_alert(self, alert_id: str, envelope: Envelope[SupervisionAlert]) -> bool:
        if alert_id in self.alerts:
            return False
        self.alerts[alert_id] = envelope
        return True


async def test_stuck_cases_alerted_once_per_stay() -> None:
    repo = StuckRepo([
        {"_id": "s", "status_rank": 1, "last_event_at": NOW - timedelta(hours=30)},
        {"_id": "fresh", "status_rank": 1, "last_event_at": NOW - timedelta(hours=2)},
        {"_id": "paused", "status_rank": 1, "last_event_at": NOW - timedelta(hours=30), "paused": True},
        {"_id": "closed", "status_rank": 10, "last_event_at": NOW - timedelta(days=300)},
    ])
    hours = {"registered": 24, "closed": 1}
    assert await handlers.check_stuck(now=NOW, after_hours=hours, repo=repo) == [
        "case_stuck:s:registered:20261128T060000Z"]
    assert "30.0 小时" in repo.alerts["case_stuck:s:registered:20261128T060000Z"].payload.message
    assert await handlers.check_stuck(now=NOW, after_hours=hours, repo=repo) == []
    # an event clears the mark; stuck again later: a new alert
    repo.cases["s"].update(last_event_at=NOW, stuck=False)
    later = NOW + timedelta(hours=25)
    assert sorted(await handlers.check_stuck(now=later, after_hours=hours, repo=repo)) == [
        "case_stuck:fresh:registered:20261129T100000Z", "case_stuck:s:registered:20261129T120000Z"]
    assert await handlers.check_stuck(now=later, after_hours={"registered": 0}, repo=repo) == []


def test_heartbeats() -> None:
    pulse = handlers.GroupPulse("p-parley-intake", members=0, committed=0, lag=0)
    state, events = handlers.heartbeat_step(None, pulse, now=NOW, down_after_s=60, stall_after_s=120)
    assert events == [] and not state["seen_members"]  # never started: not down
    up = handlers.GroupPulse("p-parley-intake", members=2, committed=10, lag=5)
    state, events = handlers.heartbeat_step(state, up, now=NOW, down_after_s=60, stall_after_s=120)
    assert events == [] and state["seen_members"]
    gone = handlers.GroupPulse("p-parley-intake", members=0, committed=10, lag=5)
    state, events = handlers.heartbeat_step(state, gone, now=NOW + timedelta(seconds=30), down_after_s=60,
                                            stall_after_s=120)
    assert events == []
    state, events = handlers.heartbeat_step(state, gone, now=NOW + timedelta(seconds=95), down_after_s=60,
                                            stall_after_s=120)
    assert events == [("down", "worker_down:p-parley-intake:20261129T120030Z")]
    state, events = handlers.heartbeat_step(state, gone, now=NOW + timedelta(seconds=150), down_after_s=60,
                                            stall_after_s=120)
    assert events == []  # once per episode
    # back, but not committing while records wait: stalled, then moving again
    state, events = handlers.heartbeat_step(state, up, now=NOW + timedelta(seconds=160), down_after_s=60,
                                            stall_after_s=120)
    assert events == [("up", "worker_down:p-parley-intake:")]
    state, events = handlers.heartbeat_step(state, up, now=NOW + timedelta(seconds=300), down_after_s=60,
                                            stall_after_s=120)
    assert events == [("stalled", "worker_stalled:p-parley-intake:20261129T120240Z")]
    moved = handlers.GroupPulse("p-parley-intake", members=2, committed=15, lag=0)
    state, events = handlers.heartbeat_step(state, moved, now=NOW + timedelta(seconds=310), down_after_s=60,
                                            stall_after_s=120)
    assert events == [("moving", "worker_stalled:p-parley-intake:")]
