"""The envelope and the topic catalogue: round trips, causality, and clear decode errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared import topics
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.contracts.negotiation import SettlementProposed
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
