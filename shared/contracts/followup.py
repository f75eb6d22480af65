"""Contracts of stages 5–6, execution and follow-up (施行与监督, 后续跟踪与评估).

At their v1 core: the stage's own issue adds optional fields (never renames or removes
one) as it builds the stage; ``extra="ignore"`` lets consumers read newer producers.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from shared.contracts.common import Money
from shared.contracts.envelope import Payload


class SettlementExecuted(Payload):
    """The agreed remedy was carried out. Emitted by follow-up (execution)."""

    event_type = "settlement.executed"

    case_number: str
    agreement_id: str


class FollowupCompleted(Payload):
    """The satisfaction callback was made. Emitted by follow-up."""

    event_type = "followup.completed"

    case_number: str
    satisfied: bool
    reopen: bool = False
    # optional addition (v1, issue 13): supervision's evaluation report averages it
    score: int | None = Field(None, ge=1, le=5, description="The callback's score, 1 (very dissatisfied) to 5.")


class CaseClosed(Payload):
    """The case is closed. Emitted by follow-up (or intake on withdrawal)."""

    event_type = "case.closed"

    case_number: str
    outcome: str


class CaseReopened(Payload):
    """The customer was not satisfied at the callback: negotiation takes the case up again.

    Emitted by follow-up with the callback; negotiation reopens the workspace, reassigns it
    (to another agent than the one who negotiated, when it can) and tells the customer.
    ``reasons`` is the customer's own words as the callback recorded them, with personal
    numbers masked.
    """

    event_type = "case.reopened"

    case_number: str
    agreement_id: str | None = None
    score: int = Field(ge=1, le=5, description="The callback's satisfaction score, 1 (very dissatisfied) to 5.")
    reasons: str = Field("", max_length=2000, description="Why the customer is not satisfied (masked).")
    open_instalments: int = Field(0, ge=0, description="Instalments of the agreed plan not yet paid.")


class ExecutionProgressed(Payload):
    """One step of an agreed settlement changed: a step of the institution carried out (or
    past its due day), an instalment of the customer's plan paid (or missed).

    Emitted by follow-up with the change (one event per step and outcome); negotiation keeps
    it on the workspace, so the customer's view shows each step and each instalment as it
    happens (“each execution step → instalment progress”), in zh-CN and English. The
    ``instalments_*`` counts are the plan's state *after* this step (0 without a plan).
    """

    event_type = "execution.progressed"

    case_number: str
    agreement_id: str | None = None
    step_id: str = Field(description="Follow-up's step id (``s2``: the 2nd agreed term; ``s2-i3``: its 3rd instalment).")
    kind: str = Field(description="The agreed term's kind (``fee_waiver``, ...), or ``instalment``.")
    owner: Literal["institution", "customer"]
    outcome: Literal["done", "overdue", "paid", "missed"] = Field(
        description="institution: ``done`` or ``overdue``; customer (an instalment): ``paid`` or ``missed``.")
    title_zh: str = Field("", max_length=200, description="The step as follow-up names it, in Chinese.")
    title_en: str = Field("", max_length=200, description="The step as follow-up names it, in English.")
    instalment_number: int | None = Field(None, ge=1, description="Which instalment (customer steps).")
    amount: Money | None = Field(None, description="The money the step moves (CNY), e.g. the instalment's payment.")
    due_date: date | None = Field(None, description="The step's due day (Beijing).")
    instalments_total: int = Field(0, ge=0, description="Instalments in the agreed plan.")
    instalments_paid: int = Field(0, ge=0, description="Instalments paid so far (this one included).")
    instalments_missed: int = Field(0, ge=0, description="Instalments past their due day and still unpaid.")
