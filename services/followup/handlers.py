"""Follow-up's rules: which steps carry out an agreement, when it counts as executed, and
what the callback decides. Plain functions; no faust, FastAPI or Kafka here.

The case's state follows from its steps and its callback (``settle``):

* ``executing`` — some step of the institution is still to be done;
* ``monitoring`` — the institution's steps are done but instalments of the agreed plan are
  still to be paid: the case stays open and watched until the last one is paid;
* ``executed`` — everything is done; the satisfaction callback is awaited;
* ``closed`` — a satisfied callback and nothing left to pay (``case.closed``). A satisfied
  callback made while instalments are open keeps the case ``monitoring``: the closure waits
  for the last instalment;
* ``reopened`` — a dissatisfied callback: ``case.reopened`` sends it back to negotiation,
  whose next agreement replaces the plan (``replan``); ``escalated`` — it left for mediation
  or litigation.

Deadlines for the institution's steps are working conventions of a complaint desk (a fee
waiver booked within 2 days, money paid within 5, a credit-report correction request filed
within 5 so the bureau's 20-day handling can start); the customer's instalments are due on
the dates of the agreed schedule. Missing one is a breach that supervision must see.

Every change of a step — done, paid, past due, missed — is also an ``execution.progressed``
event (``progressed``), so the customer's view in negotiation shows each step and instalment.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.followup.errors import Conflict, NotFound
from services.followup.models import Callback, Execution, Step
from shared.clock import beijing_day
from shared.contracts.common import Channel, Language
from shared.contracts.envelope import Envelope, Payload
from shared.contracts.followup import (
    CaseClosed,
    CaseReopened,
    ExecutionProgressed,
    FollowupCompleted,
    SettlementExecuted,
)
from shared.contracts.intake import CustomerNotified
from shared.contracts.negotiation import CaseEscalated, SettlementAgreed
from shared.contracts.supervision import SupervisionAlert
from shared.contracts.terms import InstalmentPlanTerm, term_amount
from shared.logging import redact

PRODUCER = "followup"

#: kind → (title zh, title en, days allowed) for the institution's own steps.
INSTITUTION_STEPS: dict[str, tuple[str, str, int]] = {
    "fee_waiver": ("登记减免滞纳金/罚息", "book the fee waiver", 2),
    "interest_reduction": ("调整利率", "book the interest-rate reduction", 3),
    "instalment_plan": ("建立个性化分期计划", "set up the instalment plan", 3),
    "deferral": ("登记延期还款", "book the deferral", 3),
    "refund": ("退款到账", "pay the refund", 5),
    "compensation": ("支付补偿", "pay the compensation", 5),
    "credit_report_correction": ("提交征信异议更正申请", "file the credit-report correction", 5),
    "apology": ("发出书面致歉与解释", "send the written apology and explanation", 1),
}
#: The step for an agreement without terms (``{kind}`` is filled in).
_GENERIC_STEP = ("执行和解协议条款", "carry out the {kind} term", 5)


def plan_execution(event: Envelope[SettlementAgreed], *, now: datetime, tz: str) -> Execution:
    """Turn an agreed settlement into the steps that carry it out.

    One institution step per term (an agreement without terms gets one generic step), with
    the money the term moves; each instalment of an agreed plan becomes a customer step due
    at the end of its due day, local time.
    """
    agreed = event.payload
    if not agreed.terms:
        zh, en, days = _GENERIC_STEP
        return _execution(event, [Step(
            step_id="s1", kind="agreement", owner="institution", title_zh=zh, title_en=en.format(kind="agreement"),
            due_at=now + timedelta(days=days),
        )])
    steps: list[Step] = []
    for i, term in enumerate(agreed.terms):
        zh, en, days = INSTITUTION_STEPS.get(term.kind, _GENERIC_STEP)
        steps.append(
            Step(
                step_id=f"s{i + 1}", kind=term.kind, owner="institution", title_zh=zh,
                title_en=en.format(kind=term.kind), due_at=now + timedelta(days=days), amount=term_amount(term),
            )
        )
        if isinstance(term, InstalmentPlanTerm):
            for row in term.schedule:
                steps.append(
                    Step(
                        step_id=f"s{i + 1}-i{row.number}", kind="instalment", owner="customer",
                        title_zh=f"第 {row.number} 期还款", title_en=f"instalment {row.number}",
                        instalment_number=row.number,
                        # due at the end of the due day, local time
                        due_at=datetime.combine(row.due_date, time(23, 59, 59), ZoneInfo(tz)),
                        amount=row.payment,
                    )
                )
    return _execution(event, steps)


def _execution(event: Envelope[SettlementAgreed], steps: list[Step]) -> Execution:
    agreed = event.payload
    return Execution(
        case_id=event.case_id, case_number=agreed.case_number, agreement_id=agreed.agreement_id,
        customer_id=agreed.customer_id, status="executing", summary=agreed.summary, steps=steps,
        correlation_id=event.correlation_id,
    )


def record_escalation(event: Envelope[CaseEscalated]) -> Execution:
    """A case that went to mediation or litigation leaves follow-up's execution work."""
    return Execution(
        case_id=event.case_id, case_number=event.payload.case_number, status="escalated",
        escalation_target=event.payload.target, summary=event.payload.reason,
        correlation_id=event.correlation_id,
    )


def _notify(execution: Execution, *, kind: str, subject: str, body: str, cause: Envelope[Any] | None, now: datetime) -> list[Envelope[Payload]]:
    if not execution.customer_id:
        return []
    note = CustomerNotified(
        kind=kind, language=Language.ZH_CN, channel=Channel.APP, customer_id=execution.customer_id,
        subject=subject, body=body, case_number=execution.case_number,
    )
    return [_event(execution, note, now, cause=cause)]


Events = list[Envelope[Payload]]


def open_instalments(execution: Execution) -> list[Step]:
    """The customer's instalments not yet paid (pending or missed)."""
    return [s for s in execution.steps if s.owner == "customer" and s.status != "done"]


def _instalment_number(step: Step) -> int | None:
    """The instalment a customer step is (stored plans before ``instalment_number``: from its id, ``s2-i3``)."""
    if step.owner != "customer":
        return None
    if step.instalment_number is not None:
        return step.instalment_number
    tail = step.step_id.rpartition("-i")[2]
    return int(tail) if tail.isdigit() and int(tail) > 0 else None


def progressed(execution: Execution, step: Step, now: datetime, cause: Envelope[Any] | None = None) -> Envelope[Payload]:
    """``execution.progressed`` for a step whose status just changed (``execution`` holds the
    change): what happened to it and where the instalment plan stands after it."""
    outcome = {"done": "paid" if step.owner == "customer" else "done", "missed": "missed", "overdue": "overdue"}
    instalments = [s for s in execution.steps if s.owner == "customer"]
    return _event(execution, ExecutionProgressed(
        case_number=execution.case_number, agreement_id=execution.agreement_id, step_id=step.step_id,
        kind=step.kind, owner=step.owner, outcome=outcome[step.status],  # type: ignore[arg-type]
        title_zh=step.title_zh[:200], title_en=step.title_en[:200], instalment_number=_instalment_number(step),
        amount=step.amount, due_date=beijing_day(step.due_at), instalments_total=len(instalments),
        instalments_paid=sum(s.status == "done" for s in instalments),
        instalments_missed=sum(s.status == "missed" for s in instalments),
    ), now, cause=cause)


def _event(execution: Execution, payload: Payload, now: datetime, cause: Envelope[Any] | None = None) -> Envelope[Payload]:
    """An event about ``execution``, in its story (the complaint's correlation id and trace,
    also for events a request or a timer causes)."""
    return Envelope.wrap(payload, case_id=execution.case_id, producer=PRODUCER, cause=cause,
                         correlation_id=execution.correlation_id or None, occurred_at=now)


def settle(execution: Execution, *, now: datetime, cause: Envelope[Any] | None = None) -> tuple[Execution, Events]:
    """Move the case to the state its steps and callback say, with the events that owes.

    ``settlement.executed`` (and the customer's notice) once, when the institution's last step
    is done; ``case.closed`` (and the notice) once, when a satisfied callback is recorded and
    no instalment is left to pay. Reopened, escalated and closed cases do not move here.
    """
    if execution.status not in ("executing", "monitoring", "executed"):
        return execution, []
    events: Events = []
    updated = execution
    institution_done = all(s.status == "done" for s in execution.steps if s.owner == "institution")
    if not institution_done:
        return updated.model_copy(update={"status": "executing"}), events
    number = execution.case_number
    if execution.executed_at is None:
        updated = updated.model_copy(update={"executed_at": now})
        executed = _event(updated, SettlementExecuted(case_number=number, agreement_id=execution.agreement_id or ""), now)
        events.append(executed)
        events += _notify(
            updated, kind="progress",
            subject=f"案件 {number} 和解方案已执行 / settlement carried out",
            body=(
                f"您的案件 {number} 的和解方案已全部执行完毕。我们将很快回访，了解您是否满意。\n"
                f"Everything agreed for case {number} has been carried out. "
                "We will call you shortly to ask whether you are satisfied."
            ),
            cause=executed, now=now,
        )
    left = open_instalments(updated)
    if left:
        return updated.model_copy(update={"status": "monitoring"}), events
    if updated.callback is not None and updated.callback.satisfied:
        closed = _event(updated, CaseClosed(case_number=number, outcome="resolved"), now, cause=cause)
        events.append(closed)
        events += _notify(
            updated, kind="outcome",
            subject=f"案件 {number} 已办结 / case closed",
            body=(
                f"您的案件 {number} 约定的事项均已完成，案件已办结。感谢您的耐心。\n"
                f"Everything agreed for case {number} is done and the case is closed. Thank you for your patience."
            ),
            cause=closed, now=now,
        )
        return updated.model_copy(update={"status": "closed"}), events
    return updated.model_copy(update={"status": "executed"}), events


def complete_step(
    execution: Execution, step_id: str, *, by: str, evidence_ref: str | None, now: datetime
) -> tuple[Execution, Events]:
    """Mark a step done (an instalment: paid); the case then moves as ``settle`` says.

    When the institution's last step is done the settlement is executed; when the last
    instalment is paid after a satisfied callback the case is closed. Doing a step again
    changes nothing.
    """
    if execution.status in ("escalated", "closed"):
        raise Conflict(f"case {execution.case_number} is {execution.status}; there is nothing to carry out here")
    step = next((s for s in execution.steps if s.step_id == step_id), None)
    if step is None:
        raise NotFound(f"no step {step_id!r} in case {execution.case_number}")
    if step.status == "done":
        return execution, []  # idempotent
    done = step.model_copy(update={"status": "done", "done_at": now, "done_by": by, "evidence_ref": evidence_ref})
    updated = execution.model_copy(update={"steps": [done if s.step_id == step_id else s for s in execution.steps]})
    progress = progressed(updated, done, now)
    events: Events = [progress]
    if done.owner == "customer":
        left = len(open_instalments(updated))
        rest_zh = f"还有 {left} 期待还。" if left else "全部分期已还清。"
        rest_en = f"{left} still to pay." if left else "Every instalment is paid."
        events += _notify(
            updated, kind="progress",
            subject=f"案件 {execution.case_number}：{done.title_zh}已收到 / {done.title_en} received",
            body=(f"我们已收到您案件 {execution.case_number} 的{done.title_zh}。{rest_zh}\n"
                  f"We have received {done.title_en} for case {execution.case_number}. {rest_en}"),
            cause=progress, now=now,
        )
    updated, settled = settle(updated, now=now)
    return updated, events + settled


def record_callback(
    execution: Execution, *, satisfied: bool, score: int, comment: str, by: str, now: datetime
) -> tuple[Execution, Events]:
    """Record the satisfaction callback (回访) after the institution carried out its part.

    Satisfied: ``followup.completed``, and the case closes — at once when nothing is left to
    pay, otherwise when the last instalment is paid (it stays ``monitoring`` until then).
    Dissatisfied: ``followup.completed`` (reopen), ``case.reopened`` with the customer's
    reasons for negotiation, and a ``case_reopened`` alert for supervision.
    """
    if execution.status not in ("executed", "monitoring"):
        raise Conflict(f"a callback follows execution; case {execution.case_number} is {execution.status}")
    callback = Callback(satisfied=satisfied, score=score, comment=comment, by=by, at=now)
    number = execution.case_number
    completed = _event(execution, FollowupCompleted(case_number=number, satisfied=satisfied, reopen=not satisfied, score=score), now)
    events: Events = [completed]
    if satisfied:
        updated, settled = settle(execution.model_copy(update={"callback": callback}), now=now, cause=completed)
        if updated.status == "monitoring":
            left = len(open_instalments(updated))
            events += _notify(
                updated, kind="progress",
                subject=f"案件 {number} 回访已完成 / callback recorded",
                body=(f"感谢您的反馈。您的案件 {number} 还有 {left} 期分期待还，全部还清后案件即告办结；"
                      "期间我们会定期告诉您进展。\n"
                      f"Thank you for your feedback. Case {number} has {left} instalments still to pay; it is closed "
                      "once the last one is paid, and we will keep you informed until then."),
                cause=completed, now=now,
            )
        return updated, events + settled
    updated = execution.model_copy(update={"status": "reopened", "callback": callback, "reopened_at": now})
    left = len(open_instalments(execution))
    events.append(_event(updated, CaseReopened(
        case_number=number, agreement_id=execution.agreement_id, score=score,
        reasons=redact(comment)[:2000], open_instalments=left,
    ), now, cause=completed))
    events.append(_event(updated, SupervisionAlert(
        kind="case_reopened", severity="warning",
        message=(f"客户对案件 {number} 的处理不满意（{score}/5），案件重新打开 / "
                 f"customer not satisfied with case {number} ({score}/5); reopened"),
    ), now, cause=completed))
    return updated, events


def replan(execution: Execution, event: Envelope[SettlementAgreed], *, now: datetime, tz: str) -> Execution | None:
    """A new agreement for a reopened case replaces its plan; None when there is nothing to do.

    Only a reopened case takes a new agreement (a redelivered or an old one changes nothing);
    the earlier agreement is kept in ``previous_agreement_ids``, the version carries on.
    """
    if execution.status != "reopened" or event.payload.agreement_id == execution.agreement_id:
        return None
    if event.payload.agreement_id in execution.previous_agreement_ids:
        return None
    fresh = plan_execution(event, now=now, tz=tz)
    previous = [*execution.previous_agreement_ids, *([execution.agreement_id] if execution.agreement_id else [])]
    return fresh.model_copy(update={
        "version": execution.version, "previous_agreement_ids": previous,
        "reopened_at": execution.reopened_at,
    })


def escalated_after_reopening(execution: Execution, event: Envelope[CaseEscalated]) -> Execution | None:
    """A reopened case that negotiation escalated leaves follow-up's work; None otherwise."""
    if execution.status != "reopened":
        return None
    return execution.model_copy(update={"status": "escalated", "escalation_target": event.payload.target})


def overdue_steps(execution: Execution, *, now: datetime) -> tuple[Execution, Events]:
    """Flag steps past due, once each: the institution's are overdue, the customer's missed.

    A missed instalment is a breach of the plan: an ``instalment_missed`` alert for
    supervision and a reminder to the customer (a late payment is still taken: completing
    the step marks it paid).
    """
    if execution.status in ("escalated", "closed"):
        return execution, []
    events: Events = []
    steps, flagged = [], []
    for s in execution.steps:
        if s.status == "pending" and s.due_at < now:
            late = "overdue" if s.owner == "institution" else "missed"
            s = s.model_copy(update={"status": late})
            kind = "execution_overdue" if late == "overdue" else "instalment_missed"
            alert = _event(execution, SupervisionAlert(
                kind=kind, severity="critical" if late == "overdue" else "warning",
                message=f"案件 {execution.case_number}：{s.title_zh}已逾期 / {s.title_en} is past due",
                due_at=s.due_at,
            ), now)
            events.append(alert)
            if late == "missed":
                amount = f" {s.amount} 元" if s.amount is not None else ""
                amount_en = f" of CNY {s.amount}" if s.amount is not None else ""
                events += _notify(
                    execution, kind="reminder",
                    subject=f"案件 {execution.case_number}：{s.title_zh}尚未收到 / {s.title_en} not received",
                    body=(f"我们尚未收到您案件 {execution.case_number} 的{s.title_zh}{amount}。请尽快还款；"
                          "如有困难，请联系负责您案件的专员商量。\n"
                          f"We have not received {s.title_en}{amount_en} for case {execution.case_number}. "
                          "Please pay it as soon as you can; if you have difficulty, contact the person handling "
                          "your case."),
                    cause=alert, now=now,
                )
            flagged.append(s)
        steps.append(s)
    updated = execution.model_copy(update={"steps": steps})
    return updated, events + [progressed(updated, s, now) for s in flagged]
