"""Follow-up's rules: steps from terms, execution, callback, overdue detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.followup import handlers
from services.followup.errors import Conflict, NotFound
from shared import topics
from tests.support.events import agreed

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


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
    assert events == [] and after_one.status == "executing"
    after_two, events = handlers.complete_step(after_one, "s2", by="ops1", evidence_ref="PLAN-1", now=NOW)
    assert after_two.status == "executed" and after_two.executed_at == NOW
    assert [e.event_type for e in events] == ["settlement.executed", "customer.notified"]
    assert events[1].causation_id == str(events[0].event_id)
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
    assert [e.event_type for e in events] == ["followup.completed", "case.closed"]
    assert events[1].payload.outcome == "resolved"

    reopened, events = handlers.record_callback(executed, satisfied=False, score=2, comment="还没到账", by="cs1", now=NOW)
    assert reopened.status == "reopened"
    assert events[0].payload.reopen is True
    assert events[1].payload.kind == "case_reopened"


def test_overdue_steps_are_flagged_once() -> None:
    execution = handlers.plan_execution(agreed("c1"), now=NOW, tz="Asia/Shanghai")
    later = NOW + timedelta(days=31)  # waiver and plan overdue, first instalment missed
    flagged, events = handlers.overdue_steps(execution, now=later)
    assert [s.status for s in flagged.steps] == ["overdue", "overdue", "missed", "pending", "pending"]
    assert sorted(e.payload.kind for e in events) == ["execution_overdue", "execution_overdue", "instalment_missed"]
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
