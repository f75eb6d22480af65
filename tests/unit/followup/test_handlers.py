"""Follow-up's rules: steps from terms, execution, callback, overdue detection."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.followup import handlers
from services.followup.errors import Conflict, NotFound
from shared import topics
from shared.contracts.envelope import Envelope
from shared.contracts.negotiation import SettlementAgreed
from tests.support import events as support

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)  # the handlers' clock, injected
FIRST_DUE = date(2026, 12, 29)  # a month after NOW: the default plan's first instalment


def agreed(case_id: str, **kw: Any) -> Envelope[SettlementAgreed]:
    """The support event with its plan fixed relative to NOW (not to the machine's today)."""
    return support.agreed(case_id, first_due=FIRST_DUE, **kw)


def test_each_term_becomes_a_step_and_each_instalment_a_customer_step() -> None:
    execution = handlers.plan_execution(agreed("c1"), now=NOW, tz="Asia/Shanghai")
    kinds = [(s.kind, s.owner) for s in execution.steps]
    assert kinds == [
        ("fee_waiver", "institution"), ("instalment_plan", "institution"),
        ("instalment", "customer"), ("instalment", "customer"), ("instalment", "customer"),
    ]
    waiver = execution.steps[0]
    assert waiver.amount == Decimal("80.00") and waiver.due_at == NOW + timedelta(days=2)
    first = execution.steps[2]
    assert first.amount == Decimal("300.00")
    # due at the end of the local due day: 2026-12-29 23:59:59 +08:00
    assert first.due_at.astimezone(UTC) == datetime(2026, 12, 29, 15, 59, 59, tzinfo=UTC)


def test_executed_only_when_every_institution_step_is_done() -> None:
    execution = handlers.plan_execution(agreed("c1"), now=NOW, tz="Asia/Shanghai")
    after_one, events = handlers.complete_step(execution, "s1", by="ops1", evidence_ref="WV-1", now=NOW)
    assert [e.event_type for e in events] == ["execution.progressed"] and after_one.status == "executing"
    after_two, events = handlers.complete_step(after_one, "s2", by="ops1", evidence_ref="PLAN-1", now=NOW)
    # the institution's part is done; three instalments are still to be paid: monitoring
    assert after_two.status == "monitoring" and after_two.executed_at == NOW
    assert [e.event_type for e in events] == ["execution.progressed", "settlement.executed", "customer.notified"]
    assert events[2].causation_id == str(events[1].event_id)
    # doing it again changes nothing and publishes nothing
    again, events = handlers.complete_step(after_two, "s2", by="ops1", evidence_ref=None, now=NOW)
    assert again is after_two and events == []


def test_unknown_step_and_escalated_case_are_refused() -> None:
    execution = handlers.plan_execution(agreed("c1"), now=NOW, tz="Asia/Shanghai")
    with pytest.raises(NotFound):
        handlers.complete_step(execution, "s9", by="x", evidence_ref=None, now=NOW)
    escalated = execution.model_copy(update={"status": "escalated"})
    with pytest.raises(Conflict):
        handlers.complete_step(escalated, "s1", by="x", evidence_ref=None, now=NOW)


def test_callback_closes_when_satisfied_and_reopens_when_not() -> None:
    execution = handlers.plan_execution(agreed("c1", terms=[{"kind": "apology", "text": "抱歉"}]), now=NOW, tz="UTC")
    with pytest.raises(Conflict):
        handlers.record_callback(execution, satisfied=True, score=5, comment="", by="cs1", now=NOW)
    executed, _ = handlers.complete_step(execution, "s1", by="ops", evidence_ref="L-1", now=NOW)

    closed, events = handlers.record_callback(executed, satisfied=True, score=5, comment="", by="cs1", now=NOW)
    assert closed.status == "closed"
    assert [e.event_type for e in events] == ["followup.completed", "case.closed", "customer.notified"]
    assert events[1].payload.outcome == "resolved" and events[1].causation_id == str(events[0].event_id)

    reopened, events = handlers.record_callback(executed, satisfied=False, score=2, comment="还没到账", by="cs1", now=NOW)
    assert reopened.status == "reopened" and reopened.reopened_at == NOW
    assert [e.event_type for e in events] == ["followup.completed", "case.reopened", "supervision.alert"]
    assert events[0].payload.reopen is True and events[0].payload.score == 2
    assert events[1].payload.reasons == "还没到账" and events[1].payload.score == 2
    assert events[1].causation_id == str(events[0].event_id)
    assert events[2].payload.kind == "case_reopened"
    # a reopened case waits for negotiation: no second callback, nothing to carry out meanwhile
    with pytest.raises(Conflict):
        handlers.record_callback(reopened, satisfied=True, score=5, comment="", by="cs1", now=NOW)


def test_overdue_steps_are_flagged_once() -> None:
    execution = handlers.plan_execution(agreed("c1"), now=NOW, tz="Asia/Shanghai")
    later = NOW + timedelta(days=31)  # waiver and plan overdue, first instalment missed
    flagged, events = handlers.overdue_steps(execution, now=later)
    assert [s.status for s in flagged.steps] == ["overdue", "overdue", "missed", "pending", "pending"]
    alerts = [e for e in events if e.event_type == "supervision.alert"]
    assert sorted(e.payload.kind for e in alerts) == ["execution_overdue", "execution_overdue", "instalment_missed"]
    # the customer is told of the missed instalment (and only of that), after the alert
    [notice] = [e for e in events if e.event_type == "customer.notified"]
    assert notice.payload.kind == "reminder" and "第 1 期还款" in notice.payload.body and "300.00" in notice.payload.body
    missed_alert = next(e for e in alerts if e.payload.kind == "instalment_missed")
    assert notice.causation_id == str(missed_alert.event_id)
    _, again = handlers.overdue_steps(flagged, now=later)
    assert again == []


def test_steps_read_the_typed_terms_and_the_money_each_moves() -> None:
    event = agreed("c2", terms=[
        # a percentage waiver as negotiation publishes it: the computed amount rides along
        {"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "500.00", "waiver_amount": "150.00", "waiver_pct": "30"},
        # the first cut published a percentage waiver without it: the amount is worked out
        {"kind": "fee_waiver", "fee": "penalty_interest", "fee_amount": "120.00", "waiver_pct": "100"},
        {"kind": "interest_reduction", "from_rate_pct": "18", "to_rate_pct": "12", "reduction_amount": "240.00"},
        {"kind": "deferral", "months": 3},
        {"kind": "refund", "amount": "35.50"},
        {"kind": "compensation", "amount": "100.00"},
        {"kind": "credit_report_correction", "description": "更正逾期记录"},
    ])
    execution = handlers.plan_execution(event, now=NOW, tz="Asia/Shanghai")
    assert [(s.kind, s.amount) for s in execution.steps] == [
        ("fee_waiver", Decimal("150.00")), ("fee_waiver", Decimal("120.00")),
        ("interest_reduction", Decimal("240.00")), ("deferral", None), ("refund", Decimal("35.50")),
        ("compensation", Decimal("100.00")), ("credit_report_correction", None),
    ]
    assert [s.due_at - NOW for s in execution.steps] == [timedelta(days=d) for d in (2, 2, 3, 3, 5, 5, 5)]
    assert execution.steps[6].title_zh == "提交征信异议更正申请"


def test_the_same_steps_come_from_the_event_as_it_travels() -> None:
    event = agreed("c3")
    from_wire = topics.decode("settlement.agreed", event.to_bytes())
    assert handlers.plan_execution(from_wire, now=NOW, tz="Asia/Shanghai") == handlers.plan_execution(
        event, now=NOW, tz="Asia/Shanghai")


def test_an_agreement_without_terms_gets_one_step() -> None:
    execution = handlers.plan_execution(agreed("c4", terms=[]), now=NOW, tz="UTC")
    [step] = execution.steps
    assert (step.step_id, step.kind, step.owner, step.amount) == ("s1", "agreement", "institution", None)
    assert step.title_en == "carry out the agreement term" and step.due_at == NOW + timedelta(days=5)


def _paid(execution: handlers.Execution, *step_ids: str) -> tuple[handlers.Execution, list[str]]:
    kinds: list[str] = []
    for step_id in step_ids:
        execution, events = handlers.complete_step(execution, step_id, by="ops1", evidence_ref=f"P-{step_id}", now=NOW)
        kinds += [e.event_type for e in events]
    return execution, kinds


def test_a_case_with_open_instalments_stays_monitoring_until_the_last_is_paid() -> None:
    execution = handlers.plan_execution(agreed("c5"), now=NOW, tz="Asia/Shanghai")
    monitoring, kinds = _paid(execution, "s1", "s2")
    assert monitoring.status == "monitoring"
    assert kinds == ["execution.progressed", "execution.progressed", "settlement.executed", "customer.notified"]
    assert len(handlers.open_instalments(monitoring)) == 3

    # satisfied at the callback: the closure waits for the instalments
    satisfied, events = handlers.record_callback(monitoring, satisfied=True, score=5, comment="", by="cs1", now=NOW)
    assert satisfied.status == "monitoring"
    assert [e.event_type for e in events] == ["followup.completed", "customer.notified"]
    assert "3 期" in events[1].payload.body

    two_paid, kinds = _paid(satisfied, "s2-i1", "s2-i2")
    assert two_paid.status == "monitoring" and "case.closed" not in kinds
    # each instalment acknowledged: the customer's notice, and progress for their view of the case
    assert kinds == ["execution.progressed", "customer.notified"] * 2
    closed, kinds = _paid(two_paid, "s2-i3")
    assert closed.status == "closed"
    assert kinds == ["execution.progressed", "customer.notified", "case.closed", "customer.notified"]
    # closed is closed: nothing more to carry out
    with pytest.raises(Conflict):
        handlers.complete_step(closed, "s2-i3", by="ops1", evidence_ref=None, now=NOW)


def test_instalments_paid_before_the_callback_leave_it_executed_then_closed() -> None:
    execution = handlers.plan_execution(agreed("c6"), now=NOW, tz="Asia/Shanghai")
    paid, kinds = _paid(execution, "s2-i1", "s2-i2", "s2-i3", "s1")
    assert paid.status == "executing"  # the plan is not set up yet (s2)
    paid, kinds = _paid(paid, "s2")
    assert paid.status == "executed"
    assert kinds == ["execution.progressed", "settlement.executed", "customer.notified"]
    closed, events = handlers.record_callback(paid, satisfied=True, score=4, comment="", by="cs1", now=NOW)
    assert closed.status == "closed"
    assert [e.event_type for e in events] == ["followup.completed", "case.closed", "customer.notified"]


def test_a_missed_instalment_paid_late_still_counts() -> None:
    execution = handlers.plan_execution(agreed("c7"), now=NOW, tz="Asia/Shanghai")
    done, _ = _paid(execution, "s1", "s2")
    late, _ = handlers.overdue_steps(done, now=NOW + timedelta(days=31))
    assert [s.status for s in late.steps if s.owner == "customer"] == ["missed", "pending", "pending"]
    assert len(handlers.open_instalments(late)) == 3
    paid, _ = _paid(late, "s2-i1")
    assert [s.status for s in paid.steps if s.owner == "customer"] == ["done", "pending", "pending"]


def test_a_dissatisfied_callback_with_open_instalments_reopens_and_says_how_many_are_left() -> None:
    execution = handlers.plan_execution(agreed("c8"), now=NOW, tz="Asia/Shanghai")
    done, _ = _paid(execution, "s1", "s2", "s2-i1")
    reopened, events = handlers.record_callback(
        done, satisfied=False, score=1, comment="电话 13812345678 一直打不通", by="cs2", now=NOW)
    payload = events[1].payload
    assert payload.open_instalments == 2 and payload.agreement_id == "agr-c8"
    assert "13812345678" not in payload.reasons and "138****5678" in payload.reasons


def test_a_new_agreement_replaces_the_plan_of_a_reopened_case_only() -> None:
    execution = handlers.plan_execution(agreed("c9"), now=NOW, tz="Asia/Shanghai")
    done, _ = _paid(execution, "s1", "s2")
    assert handlers.replan(done, agreed("c9"), now=NOW, tz="Asia/Shanghai") is None  # not reopened
    reopened, _ = handlers.record_callback(done, satisfied=False, score=2, comment="no", by="cs1", now=NOW)
    reopened = reopened.model_copy(update={"version": 4})
    assert handlers.replan(reopened, agreed("c9"), now=NOW, tz="Asia/Shanghai") is None  # the same agreement
    new = agreed("c9", terms=[{"kind": "refund", "amount": "50.00"}])
    new.payload.__dict__["agreement_id"] = "agr-c9-2"
    replanned = handlers.replan(reopened, new, now=NOW, tz="Asia/Shanghai")
    assert replanned is not None
    assert replanned.status == "executing" and replanned.agreement_id == "agr-c9-2"
    assert replanned.previous_agreement_ids == ["agr-c9"] and replanned.version == 4
    assert [s.kind for s in replanned.steps] == ["refund"] and replanned.reopened_at == NOW


def test_events_of_requests_and_timers_stay_in_the_complaints_story() -> None:
    """A step completed, a callback or a sweep has no event as its cause, yet what it publishes
    keeps the agreement's correlation id (the complaint's trace, shared.tracing)."""
    event = agreed("c1", terms=[{"kind": "apology", "text": "抱歉"}])
    execution = handlers.plan_execution(event, now=NOW, tz="UTC")
    assert execution.correlation_id == event.correlation_id
    executed, events = handlers.complete_step(execution, "s1", by="ops", evidence_ref="L-1", now=NOW)
    closed, more = handlers.record_callback(executed, satisfied=True, score=5, comment="", by="cs1", now=NOW)
    late, alerts = handlers.overdue_steps(execution, now=NOW + timedelta(days=30))
    published = events + more + alerts
    assert {e.event_type for e in published} >= {"settlement.executed", "case.closed", "supervision.alert"}
    assert {e.correlation_id for e in published} == {event.correlation_id}


def test_each_step_and_instalment_is_an_execution_progressed_event_with_the_plan_state() -> None:
    execution = handlers.plan_execution(agreed("c20"), now=NOW, tz="Asia/Shanghai")
    waived, [event] = handlers.complete_step(execution, "s1", by="ops1", evidence_ref="WV-1", now=NOW)
    p = event.payload
    assert (p.step_id, p.kind, p.owner, p.outcome, p.amount) == ("s1", "fee_waiver", "institution", "done",
                                                                 Decimal("80.00"))
    assert (p.instalment_number, p.instalments_total, p.instalments_paid, p.instalments_missed) == (None, 3, 0, 0)
    assert p.title_zh == "登记减免滞纳金/罚息" and p.title_en == "book the fee waiver"
    assert p.due_date == date(2026, 12, 1) and event.correlation_id == execution.correlation_id

    # the first instalment missed: alert, reminder, and progress saying so
    late, events = handlers.overdue_steps(waived, now=datetime(2026, 12, 29, 16, 0, tzinfo=UTC))  # 30 Dec, Beijing
    assert [e.event_type for e in events] == [
        "supervision.alert", "supervision.alert", "customer.notified", "execution.progressed", "execution.progressed"]
    overdue, missed = events[3].payload, events[4].payload
    assert (overdue.step_id, overdue.outcome) == ("s2", "overdue")  # the plan was not set up in time
    assert (missed.step_id, missed.outcome, missed.instalment_number, missed.due_date, missed.amount) == (
        "s2-i1", "missed", 1, FIRST_DUE, Decimal("300.00"))
    assert (missed.instalments_paid, missed.instalments_missed) == (0, 1)

    # paid late: progress says paid, and the notice to the customer follows from it
    paid, events = handlers.complete_step(late, "s2-i1", by="ops1", evidence_ref="P-1", now=NOW)
    progress, notice = events
    assert (progress.payload.outcome, progress.payload.instalments_paid, progress.payload.instalments_missed) == (
        "paid", 1, 0)
    assert notice.causation_id == str(progress.event_id)
    # it travels as the catalogue says
    assert topics.decode("execution.progressed", progress.to_bytes()) == progress


def test_an_instalment_number_is_read_from_the_step_id_of_plans_stored_before_it_was_kept() -> None:
    execution = handlers.plan_execution(agreed("c21"), now=NOW, tz="Asia/Shanghai")
    older = execution.model_copy(update={"steps": [
        s.model_copy(update={"instalment_number": None}) for s in execution.steps]})
    _, [event, _notice] = handlers.complete_step(older, "s2-i2", by="ops1", evidence_ref=None, now=NOW)
    assert event.payload.instalment_number == 2 and event.payload.outcome == "paid"


@pytest.mark.parametrize("make", ["paid", "missed", "executed", "closed", "monitoring"])
def test_every_notice_to_the_customer_says_it_in_chinese_first_then_english(make: str) -> None:
    execution = handlers.plan_execution(agreed("c22"), now=NOW, tz="Asia/Shanghai")
    if make == "paid":
        _, events = handlers.complete_step(execution, "s2-i1", by="ops1", evidence_ref=None, now=NOW)
    elif make == "missed":
        _, events = handlers.overdue_steps(execution, now=NOW + timedelta(days=31))
    else:
        done, events = _done(execution, "s1", "s2")
        if make in ("closed", "monitoring"):
            if make == "closed":
                done, _ = _done(done, "s2-i1", "s2-i2", "s2-i3")
            _, events = handlers.record_callback(done, satisfied=True, score=5, comment="", by="cs1", now=NOW)
    notices = [e.payload for e in events if e.event_type == "customer.notified"]
    assert notices, make
    for n in notices:
        zh, _, en = n.body.partition("\n")
        assert HAN.search(zh) and not HAN.search(en) and ASCII_WORDS.search(en), n.body
        subject_zh, _, subject_en = n.subject.partition(" / ")
        assert HAN.search(subject_zh) and subject_en and not HAN.search(subject_en), n.subject
        assert n.case_number in zh and n.case_number in en


HAN = re.compile("[\u4e00-\u9fff]")
ASCII_WORDS = re.compile("[A-Za-z]{3,} [A-Za-z]{2,}")


def _done(execution: handlers.Execution, *step_ids: str) -> tuple[handlers.Execution, list[Any]]:
    events: list[Any] = []
    for step_id in step_ids:
        execution, more = handlers.complete_step(execution, step_id, by="ops1", evidence_ref=None, now=NOW)
        events += more
    return execution, events
