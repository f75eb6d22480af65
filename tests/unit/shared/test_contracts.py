"""The envelope, the topic catalogue and the typed settlement terms: round trips, causality,
old wire forms, and clear decode errors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from shared import topics
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.contracts.negotiation import SettlementAgreed, SettlementProposed
from shared.contracts.terms import (
    Apology,
    Compensation,
    CreditReportCorrection,
    Deferral,
    FeeWaiver,
    InstalmentPlanTerm,
    InterestReduction,
    Refund,
    ScheduleRow,
    term_amount,
)
from shared.errors import InvalidMessage


def test_envelope_round_trips_through_bytes_with_typed_payload() -> None:
    e = Envelope.wrap(
        SettlementProposed(case_number="TS-1", offer_id="o1", summary="减免滞纳金", amount=Decimal("120.50")),
        case_id="c-1",
        producer="negotiation",
    )
    raw = e.to_bytes()
    assert json.loads(raw)["payload"]["amount"] == "120.50"  # money travels as a string
    back = topics.decode("settlement.proposed", raw)
    assert back == e
    assert isinstance(back.payload, SettlementProposed)
    assert back.payload.amount == Decimal("120.50")
    assert back.key() == b"c-1"
    assert back.occurred_at.tzinfo is not None


def test_wrap_continues_the_story_of_its_cause() -> None:
    first = Envelope.wrap(CaseClosed(case_number="TS-1", outcome="x"), case_id="c", producer="a")
    second = Envelope.wrap(CaseClosed(case_number="TS-1", outcome="y"), case_id="c", producer="b", cause=first)
    assert second.correlation_id == first.correlation_id == str(first.event_id)
    assert second.causation_id == str(first.event_id)
    assert second.event_id != first.event_id


def test_envelope_is_frozen_and_needs_aware_time() -> None:
    e = Envelope.wrap(CaseClosed(case_number="TS-1", outcome="x"), case_id="c", producer="a")
    with pytest.raises(ValidationError):
        e.case_id = "other"  # type: ignore[misc]
    data = json.loads(e.to_bytes())
    data["occurred_at"] = datetime(2026, 1, 1).isoformat()  # naive  # noqa: DTZ001
    with pytest.raises(InvalidMessage) as info:
        topics.decode("case.closed", json.dumps(data).encode())
    assert info.value.errors[0]["field"] == "occurred_at"


def test_consumers_ignore_unknown_fields() -> None:
    e = Envelope.wrap(CaseClosed(case_number="TS-1", outcome="x"), case_id="c", producer="a")
    data = json.loads(e.to_bytes())
    data["new_top_level"] = 1
    data["payload"]["added_in_v1_later"] = "ok"
    assert topics.decode("case.closed", json.dumps(data).encode()).payload.outcome == "x"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "no value"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b'{"event_type": ', "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"event_type": "complaint.registered"}', "does not belong on case.closed"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    ],
)
def test_decode_says_what_is_wrong(raw: bytes | None, expected: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        topics.decode("case.closed", raw)
    assert expected in info.value.reason


def test_decode_errors_name_fields_but_never_echo_input() -> None:
    e = Envelope.wrap(CaseClosed(case_number="TS-1", outcome="x"), case_id="c", producer="a")
    data = json.loads(e.to_bytes())
    data["payload"]["case_number"] = {"$where": "13812345678"}
    with pytest.raises(InvalidMessage) as info:
        topics.decode("case.closed", json.dumps(data).encode())
    assert info.value.errors == [{"field": "payload.case_number", "problem": "Input should be a valid string"}]
    assert "13812345678" not in info.value.reason


def test_catalogue_has_the_issue_topics_and_a_dead_letter_topic_for_each() -> None:
    names = topics.all_topics()
    for required in [
        "complaint.received", "complaint.registered", "investigation.completed",
        "settlement.proposed", "settlement.approved", "settlement.agreed", "settlement.executed",
        "case.escalated", "followup.completed", "case.closed", "customer.notified",
        "supervision.alert",
    ]:
        assert required in names
        assert f"{required}.dlq" in names
    assert any(n.startswith("negotiation.") for n in names)
    for name, entry in topics.CATALOGUE.items():
        if entry.payload is not None:
            assert entry.payload.event_type == name
    with pytest.raises(KeyError):
        topics.spec("complaint.recieved")


def test_event_time_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC)
    e = Envelope.wrap(CaseClosed(case_number="T", outcome="o"), case_id="c", producer="p")
    assert before <= e.occurred_at <= datetime.now(UTC)


# ------------------------------------------------------------------ typed settlement terms


def _all_terms() -> list[Any]:
    plan = InstalmentPlanTerm(
        amount=Decimal("600.00"), months=2, first_due_date=date(2027, 1, 31),
        schedule=[
            ScheduleRow(number=1, due_date=date(2027, 1, 31), principal=Decimal("300.00"), interest=Decimal("0.00"),
                        payment=Decimal("300.00"), balance_after=Decimal("300.00")),
            ScheduleRow(number=2, due_date=date(2027, 2, 28), principal=Decimal("300.00"), interest=Decimal("0.00"),
                        payment=Decimal("300.00"), balance_after=Decimal("0.00")),
        ],
        total_interest=Decimal("0.00"), total_payable=Decimal("600.00"),
    )
    return [
        FeeWaiver(fee="late_fee", fee_amount=Decimal("500.00"), waiver_pct=Decimal("30"), waived_amount=Decimal("150.00")),
        FeeWaiver(fee="penalty_interest", fee_amount=Decimal("80.00"), waiver_amount=Decimal("80.00")),
        InterestReduction(from_rate_pct=Decimal("18"), to_rate_pct=Decimal("12"), reduction_amount=Decimal("240.00")),
        plan,
        Deferral(months=3),
        Refund(amount=Decimal("35.50"), reason="重复扣款"),
        CreditReportCorrection(description="更正 2026-10 逾期记录"),
        Apology(text="向您致歉"),
        Compensation(amount=Decimal("100.00")),
    ]


def _agreed(terms: list[Any]) -> Envelope[SettlementAgreed]:
    return Envelope.wrap(
        SettlementAgreed(case_number="TS-1", offer_id="OF-001", agreement_id="AG-1", summary="s", terms=terms),
        case_id="c-1", producer="negotiation",
    )


def test_every_term_kind_round_trips_typed_through_the_wire() -> None:
    e = _agreed(_all_terms())
    back = topics.decode("settlement.agreed", e.to_bytes())
    assert back == e
    assert [type(t) for t in back.payload.terms] == [type(t) for t in _all_terms()]
    plan = back.payload.terms[3]
    assert isinstance(plan, InstalmentPlanTerm) and plan.schedule[1].due_date == date(2027, 2, 28)
    wire = json.loads(e.to_bytes())["payload"]["terms"]
    assert wire[5] == {"kind": "refund", "amount": "35.50", "reason": "重复扣款"}  # money as strings
    assert [term_amount(t) for t in back.payload.terms] == [
        Decimal("150.00"), Decimal("80.00"), Decimal("240.00"), Decimal("600.00"), None,
        Decimal("35.50"), None, None, Decimal("100.00"),
    ]


def test_a_percentage_waiver_keeps_the_wire_form_negotiation_publishes() -> None:
    # what negotiation has published since it began adding the computed amount
    legacy = {"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "500.00", "waiver_amount": "150.00",
              "waiver_pct": "30"}
    e = _agreed([legacy])
    waiver = e.payload.terms[0]
    assert isinstance(waiver, FeeWaiver)
    assert waiver.waiver_pct == Decimal("30") and waiver.waiver_amount is None
    assert waiver.waived_amount == Decimal("150.00") and waiver.waived() == Decimal("150.00")
    # written back in exactly the same form: no waived_amount key, nothing renamed
    assert json.loads(e.to_bytes())["payload"]["terms"] == [legacy]
    assert topics.decode("settlement.agreed", e.to_bytes()).payload.terms == [waiver]


def test_old_wire_terms_decode() -> None:
    raw = json.dumps({
        "event_id": "6f1c3a52-5a43-4b83-9a36-3d1e2b8f0a11", "event_type": "settlement.agreed",
        "schema_version": 1, "occurred_at": "2026-11-01T08:00:00Z", "case_id": "c-9",
        "correlation_id": "x", "causation_id": None, "producer": "negotiation",
        "payload": {
            "case_number": "TS-9", "offer_id": "OF-001", "agreement_id": "AG-9", "summary": "s",
            "amount": "60.00",
            "terms": [
                # the first cut: a percentage waiver without the computed amount
                {"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "120.00", "waiver_amount": None,
                 "waiver_pct": "50.00"},
                {"kind": "deferral", "months": 2, "amount": None, "added_later": True},
                {"kind": "instalment_plan", "amount": "100.00", "months": 1, "annual_rate_pct": "0",
                 "method": "annuity", "first_due_date": "2026-12-31", "total_interest": "0.00",
                 "total_payable": "100.00",
                 "schedule": [{"number": 1, "due_date": "2026-12-31", "principal": "100.00", "interest": "0.00",
                               "payment": "100.00", "balance_after": "0.00", "note": "ignored"}]},
            ],
        },
    }).encode()
    terms = topics.decode("settlement.agreed", raw).payload.terms
    assert isinstance(terms[0], FeeWaiver) and terms[0].waived() == Decimal("60.00")
    assert isinstance(terms[1], Deferral) and terms[1].months == 2  # unknown fields ignored, as for every contract
    assert isinstance(terms[2], InstalmentPlanTerm) and terms[2].schedule[0].payment == Decimal("100.00")


@pytest.mark.parametrize(
    ("term", "field", "problem"),
    [
        ({"kind": "gift", "amount": "1.00"}, "payload.terms.0", "'kind'"),
        ({"amount": "1.00"}, "payload.terms.0", "'kind'"),
        ({"kind": "refund", "amount": "12.345"}, "payload.terms.0.refund.amount", "decimal places"),
        ({"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "10.00"}, "payload.terms.0.fee_waiver",
         "exactly one of waiver_amount and waiver_pct"),
    ],
)
def test_bad_terms_are_refused_naming_the_field(term: dict[str, Any], field: str, problem: str) -> None:
    data = json.loads(_agreed([]).to_bytes())
    data["payload"]["terms"] = [term]
    with pytest.raises(InvalidMessage) as info:
        topics.decode("settlement.agreed", json.dumps(data).encode())
    assert info.value.errors[0]["field"] == field
    assert problem in info.value.errors[0]["problem"]


def test_term_models_stay_strict_where_people_type_them() -> None:
    # negotiation's API takes the same models: a misspelt field or two waiver bases are refused
    with pytest.raises(ValidationError, match="extra"):
        FeeWaiver.model_validate({"fee": "late_fee", "fee_amount": "10.00", "waiver_pct": "5", "waiver_amt": "1"})
    with pytest.raises(ValidationError, match="exactly one"):
        FeeWaiver(fee="late_fee", fee_amount=Decimal("10.00"), waiver_pct=Decimal("5"), waiver_amount=Decimal("1"))
    assert FeeWaiver(fee="late_fee", fee_amount=Decimal("10.01"), waiver_pct=Decimal("50")).waived() == Decimal("5.01")


def test_negotiation_and_intake_reexport_the_shared_models() -> None:
    from services.intake import models as intake_models
    from services.negotiation import models as negotiation_models
    from shared.contracts import intake, terms

    assert negotiation_models.FeeWaiver is terms.FeeWaiver and negotiation_models.Term is terms.Term
    assert intake_models.ComplaintSubmission is intake.ComplaintSubmission
    assert intake_models.decode_submission is intake.decode_submission
