"""Settlement terms (和解条款): the typed terms of an offer and of a binding agreement.

Negotiation's offers hold these terms and its API takes them; ``settlement.proposed`` and
``settlement.agreed`` carry them (``EventTerms``); follow-up turns them into the steps that
carry an agreement out. ``Term`` is a discriminated union on ``kind``:

============================  =============================  ==================================
kind                          model                          money it moves (``term_amount``)
============================  =============================  ==================================
``fee_waiver``                ``FeeWaiver``                  the amount waived (``waived()``)
``interest_reduction``        ``InterestReduction``          ``reduction_amount``
``instalment_plan``           ``InstalmentPlanTerm``         ``amount`` (with its ``schedule``)
``deferral``                  ``Deferral``                   ``amount`` (optional)
``refund``                    ``Refund``                     ``amount``
``compensation``              ``Compensation``               ``amount``
``credit_report_correction``  ``CreditReportCorrection``     —
``apology``                   ``Apology``                    —
============================  =============================  ==================================

The term models are strict (``extra="forbid"``) because people type them into negotiation's
API, where a misspelt field must be reported. On events, ``EventTerms`` reads them the way
every contract is read (unknown fields ignored) and keeps the wire form negotiation has
always published; see ``EventTerms``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    WrapSerializer,
    model_validator,
)

from shared.contracts.common import Money, Pct
from shared.money import to_yuan

__all__ = [
    "Apology",
    "Compensation",
    "CreditReportCorrection",
    "Deferral",
    "EventTerms",
    "FeeWaiver",
    "InstalmentPlanTerm",
    "InterestReduction",
    "Refund",
    "ScheduleRow",
    "TERM_MODELS",
    "Term",
    "TermModel",
    "term_amount",
]


class TermModel(BaseModel):
    """Base of the term models: unknown fields are refused in requests, so typos are reported."""

    model_config = ConfigDict(extra="forbid")


class FeeWaiver(TermModel):
    """减免滞纳金 / 罚息: waive a late fee or penalty interest, by amount or percentage."""

    kind: Literal["fee_waiver"] = "fee_waiver"
    fee: Literal["late_fee", "penalty_interest"]
    fee_amount: Money = Field(description="The fee or penalty interest charged (CNY).")
    waiver_amount: Money | None = Field(None, description="Amount waived; or give waiver_pct.")
    waiver_pct: Pct | None = Field(None, description="Percentage of fee_amount waived.")
    waived_amount: Money | None = Field(
        None,
        description=(
            "Computed, not given: the amount a percentage waiver waives, as negotiation worked it "
            "out (on the wire it travels as waiver_amount next to waiver_pct)."
        ),
    )

    @model_validator(mode="after")
    def _amount_or_pct(self) -> FeeWaiver:
        if (self.waiver_amount is None) == (self.waiver_pct is None):
            raise ValueError("give exactly one of waiver_amount and waiver_pct")
        if self.waiver_amount is not None and self.waiver_amount > self.fee_amount:
            raise ValueError("waiver_amount cannot exceed fee_amount")
        return self

    def waived(self) -> Decimal:
        """The amount waived: as given, as computed by negotiation, or ``waiver_pct`` of the fee."""
        if self.waiver_amount is not None:
            return self.waiver_amount
        if self.waived_amount is not None:
            return self.waived_amount
        return to_yuan(self.fee_amount * (self.waiver_pct or Decimal("0")) / 100)


class InterestReduction(TermModel):
    """降低利息: interest forgone by lowering the rate."""

    kind: Literal["interest_reduction"] = "interest_reduction"
    from_rate_pct: Pct = Field(description="Current annual rate, %.")
    to_rate_pct: Pct = Field(description="Reduced annual rate, %.")
    reduction_amount: Money = Field(description="Interest forgone over the term (CNY).")

    @model_validator(mode="after")
    def _lower(self) -> InterestReduction:
        if self.to_rate_pct >= self.from_rate_pct:
            raise ValueError("to_rate_pct must be lower than from_rate_pct")
        return self


class ScheduleRow(TermModel):
    """One instalment of a computed plan."""

    number: int
    due_date: date
    principal: Money
    interest: Money
    payment: Money
    balance_after: Money


class InstalmentPlanTerm(TermModel):
    """个性化分期: repay an amount in up to 60 monthly instalments; the schedule is computed."""

    kind: Literal["instalment_plan"] = "instalment_plan"
    amount: Money = Field(gt=Decimal("0"), description="Amount repaid by the plan (CNY).")
    months: int = Field(ge=1, le=60)
    annual_rate_pct: Pct = Field(Decimal("0"), description="Annual rate, % (0: interest-free).")
    method: Literal["annuity", "equal_principal"] = "annuity"
    first_due_date: date
    stated_costs: Money = Field(
        Decimal("0"),
        description=(
            "Costs the plan repays besides the disputed balance (fees, interest accrued), as the agent states "
            "them (CNY). A plan above the disputed balance plus these costs needs a manager's approval."
        ),
    )
    schedule: list[ScheduleRow] = Field(default_factory=list, description="Computed; input ignored.")
    total_interest: Money | None = Field(None, description="Computed.")
    total_payable: Money | None = Field(None, description="Computed.")
    note: str | None = Field(
        None, max_length=500,
        description="Computed; input ignored: why the term differs from the months asked for (zh-CN / English).",
    )


class Deferral(TermModel):
    """延期还款: move repayments back by some months."""

    kind: Literal["deferral"] = "deferral"
    months: int = Field(ge=1, le=24)
    amount: Money | None = Field(None, description="Amount deferred (CNY), if not the whole balance.")


class Refund(TermModel):
    """退款: pay money back."""

    kind: Literal["refund"] = "refund"
    amount: Money = Field(gt=Decimal("0"))
    reason: str = Field("", max_length=500)


class CreditReportCorrection(TermModel):
    """征信异议更正申请: ask the credit bureau to correct a record."""

    kind: Literal["credit_report_correction"] = "credit_report_correction"
    description: str = Field(min_length=1, max_length=1000)


class Apology(TermModel):
    """致歉与解释: a written apology and explanation."""

    kind: Literal["apology"] = "apology"
    text: str = Field(min_length=1, max_length=4000)


class Compensation(TermModel):
    """补偿: a goodwill or damages payment."""

    kind: Literal["compensation"] = "compensation"
    amount: Money = Field(gt=Decimal("0"))
    reason: str = Field("", max_length=500)


Term = Annotated[
    FeeWaiver | InterestReduction | InstalmentPlanTerm | Deferral | Refund
    | CreditReportCorrection | Apology | Compensation,
    Field(discriminator="kind"),
]

#: kind → term model.
TERM_MODELS: dict[str, type[TermModel]] = {
    "fee_waiver": FeeWaiver,
    "interest_reduction": InterestReduction,
    "instalment_plan": InstalmentPlanTerm,
    "deferral": Deferral,
    "refund": Refund,
    "credit_report_correction": CreditReportCorrection,
    "apology": Apology,
    "compensation": Compensation,
}


def term_amount(term: TermModel) -> Decimal | None:
    """The money a term moves (see the table above), or ``None`` for a term without money."""
    if isinstance(term, FeeWaiver):
        return term.waived()
    if isinstance(term, InterestReduction):
        return term.reduction_amount
    if isinstance(term, InstalmentPlanTerm | Deferral | Refund | Compensation):
        return term.amount
    return None


# ------------------------------------------------------------------ terms on events


def _known_fields(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in model.model_fields}


def _term_from_wire(value: Any) -> Any:
    """Read one term as an event carries it: unknown fields ignored, the wire form mapped."""
    if not isinstance(value, dict):
        return value  # a term model already, or something the union will refuse
    model = TERM_MODELS.get(value.get("kind"))  # type: ignore[arg-type]
    if model is None:
        return value  # no or unknown kind: the discriminator names the field
    data = _known_fields(model, value)
    if model is InstalmentPlanTerm and isinstance(data.get("schedule"), list):
        data["schedule"] = [
            _known_fields(ScheduleRow, row) if isinstance(row, dict) else row for row in data["schedule"]
        ]
    if (
        model is FeeWaiver
        and data.get("waiver_pct") is not None
        and data.get("waiver_amount") is not None
        and data.get("waived_amount") is None
    ):
        # negotiation publishes a percentage waiver with its computed amount as waiver_amount
        data["waived_amount"] = data.pop("waiver_amount")
    return data


def _terms_from_wire(value: Any) -> Any:
    return [_term_from_wire(t) for t in value] if isinstance(value, list) else value


def _terms_to_wire(value: Any, handler: SerializerFunctionWrapHandler) -> Any:
    out = handler(value)
    for term in out if isinstance(out, list) else []:
        if isinstance(term, dict) and term.get("kind") == "fee_waiver":
            computed = term.pop("waived_amount", None)
            if term.get("waiver_amount") is None and computed is not None:
                term["waiver_amount"] = computed
    return out


#: Terms as ``settlement.proposed`` and ``settlement.agreed`` carry them. Read: unknown fields
#: of a term (or of a schedule row) are ignored, as for every contract; a percentage waiver
#: that carries ``waiver_pct`` *and* ``waiver_amount`` (negotiation adds the computed amount)
#: is read with that amount in ``waived_amount``. Written: the same form, so the wire is what
#: negotiation has always published (``waiver_amount`` next to ``waiver_pct``, no
#: ``waived_amount`` key). A term without a known ``kind`` is refused, naming ``kind``.
EventTerms = Annotated[
    list[Term],
    BeforeValidator(_terms_from_wire),
    WrapSerializer(_terms_to_wire, return_type=list[dict[str, Any]]),
]
