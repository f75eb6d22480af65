"""Follow-up's rules: which steps carry out an agreement, when it counts as executed, and
what the callback decides. Plain functions; no faust, FastAPI or Kafka here.

Deadlines for the institution's steps are working conventions of a complaint desk (a fee
waiver booked within 2 days, money paid within 5, a credit-report correction request filed
within 5 so the bureau's 20-day handling can start); the customer's instalments are due on
the dates of the agreed schedule. Missing one is a breach that supervision must see.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.followup.errors import Conflict, NotFound
from services.followup.models import Execution, Step
from shared.contracts.common import Channel, Language
from shared.contracts.envelope import Envelope, Payload
from shared.contracts.followup import CaseClosed, FollowupCompleted, SettlementExecuted
from shared.contracts.intake import CustomerNotified
from shared.contracts.negotiation import CaseEscalated, SettlementAgreed
from shared.contracts.supervision import SupervisionAlert
from shared.contracts.terms import InstalmentPlanTerm, term_amount

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
    )


def record_escalation(event: Envelope[CaseEscalated]) -> Execution:
    """A case that went to mediation or litigation leaves follow-up's execution work."""
    return Execution(
        case_id=event.case_id, case_number=event.payload.case_number, status="escalated",
        escalation_target=event.payload.target, summary=event.payload.reason,
    )


def _notify(execution: Execution, *, kind: str, subject: str, body: str, cause: Envelope[Any] | None, now: datetime) -> list[Envelope[Payload]]:
    if not execution.customer_id:
        return []
    note = CustomerNotified(
        kind=kind, language=Language.ZH_CN, channel=Channel.APP, customer_id=execution.customer_id,
        subject=subject, body=body, case_number=execution.case_number,
    )
    return [Envelope.wrap(note, case_id=execution.case_id, producer=PRODUCER, cause=cause, occurred_at=now)]


def complete_step(
    execution: Execution, step_id: str, *, by: str, evidence_ref: str | None, now: datetime
) -> tuple[Execution, list[Envelope[Payload]]]:
    """Mark a step done; when the institution's last step is done, the settlement is executed."""
    if execution.status == "escalated":
        raise Conflict("the case was escalated; there is nothing to carry out here")
    step = next((s for s in execution.steps if s.step_id == step_id), None)
    if step is None:
        raise NotFound(f"no step {step_id!r} in case {execution.case_number}")
    if step.status == "done":
        return execution, []  # idempotent
    done = step.model_copy(update={"status": "done", "done_at": now, "done_by": by, "evidence_ref": evidence_ref})
    steps = [done if s.step_id == step_id else s for s in execution.steps]
    updated = execution.model_copy(update={"steps": steps})
    events: list[Envelope[Payload]] = []
    institution_done = all(s.status == "done" for s in steps if s.owner == "institution")
    if institution_done and execution.executed_at is None:
        updated = updated.model_copy(update={"status": "executed", "executed_at": now})
        executed = Envelope.wrap(
            SettlementExecuted(case_number=execution.case_number, agreement_id=execution.agreement_id or ""),
            case_id=execution.case_id, producer=PRODUCER, occurred_at=now,
        )
        events.append(executed)
        events += _notify(
            updated, kind="progress",
            subject=f"案件 {execution.case_number} 和解方案已执行 / settlement carried out",
            body=(
                f"您的案件 {execution.case_number} 的和解方案已全部执行完毕。我们将很快回访，了解您是否满意。\n"
                f"Everything agreed for case {execution.case_number} has been carried out. "
                "We will call you shortly to ask whether you are satisfied."
            ),
            cause=executed, now=now,
        )
    return updated, events


def record_callback(
    execution: Execution, *, satisfied: bool, score: int, comment: str, by: str, now: datetime
) -> tuple[Execution, list[Envelope[Payload]]]:
    """Record the satisfaction callback; satisfied closes the case, dissatisfied reopens it."""
    from services.followup.models import Callback

    if execution.status not in ("executed", "reopened"):
        raise Conflict(f"a callback follows execution; case {execution.case_number} is {execution.status}")
    callback = Callback(satisfied=satisfied, score=score, comment=comment, by=by, at=now)
    completed = Envelope.wrap(
        FollowupCompleted(case_number=execution.case_number, satisfied=satisfied, reopen=not satisfied),
        case_id=execution.case_id, producer=PRODUCER, occurred_at=now,
    )
    events: list[Envelope[Payload]] = [completed]
    if satisfied:
        updated = execution.model_copy(update={"status": "closed", "callback": callback})
        events.append(
            Envelope.wrap(
                CaseClosed(case_number=execution.case_number, outcome="resolved"),
                case_id=execution.case_id, producer=PRODUCER, cause=completed, occurred_at=now,
            )
        )
    else:
        updated = execution.model_copy(update={"status": "reopened", "callback": callback})
        events.append(
            Envelope.wrap(
                SupervisionAlert(
                    kind="case_reopened", severity="warning",
                    message=(
                        f"客户对案件 {execution.case_number} 的处理不满意（{score}/5），案件重新打开 / "
                        f"customer not satisfied with case {execution.case_number} ({score}/5); reopened"
                    ),
                ),
                case_id=execution.case_id, producer=PRODUCER, cause=completed, occurred_at=now,
            )
        )
    return updated, events


def overdue_steps(execution: Execution, *, now: datetime) -> tuple[Execution, list[Envelope[Payload]]]:
    """Flag steps past due, once each: the institution's are overdue, the customer's missed."""
    if execution.status in ("escalated", "closed"):
        return execution, []
    events: list[Envelope[Payload]] = []
    steps = []
    for s in execution.steps:
        if s.status == "pending" and s.due_at < now:
            late = "overdue" if s.owner == "institution" else "missed"
            s = s.model_copy(update={"status": late})
            kind = "execution_overdue" if late == "overdue" else "instalment_missed"
            events.append(
                Envelope.wrap(
                    SupervisionAlert(
                        kind=kind, severity="critical" if late == "overdue" else "warning",
                        message=f"案件 {execution.case_number}：{s.title_zh}已逾期 / {s.title_en} is past due",
                        due_at=s.due_at,
                    ),
                    case_id=execution.case_id, producer=PRODUCER, occurred_at=now,
                )
            )
        steps.append(s)
    return execution.model_copy(update={"steps": steps}), events
