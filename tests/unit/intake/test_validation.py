"""Validation of the channel contract: every bad input is refused with the field named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.intake.models import ComplaintSubmission, decode_submission
from shared.errors import InvalidMessage


def valid(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "channel_complaint_id": "APP-1",
        "channel": "app",
        "received_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "customer": {"customer_id": "C1", "name": "李四", "phone": "13812345678",
                     "id_number": "11010119900307123X"},
        "product": "credit_card",
        "text": "年费没有提前告知就扣了",
        "amount_disputed": "600.00",
    }
    body.update(changes)
    return body


def fields_of(raw: bytes) -> set[str]:
    with pytest.raises(InvalidMessage) as info:
        decode_submission(raw)
    return {e["field"] for e in info.value.errors}


def test_valid_submission_decodes_with_exact_money() -> None:
    sub = decode_submission(json.dumps(valid()).encode())
    assert sub.amount_disputed == Decimal("600.00")
    assert sub.key() == "app:APP-1"
    assert sub.received_at.tzinfo is not None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"product": 3}, "product"),
        ({"text": 42}, "text"),
        ({"text": ""}, "text"),
        ({"text": "字" * 20_001}, "text"),
        ({"amount_disputed": "1e400"}, "amount_disputed"),
        ({"amount_disputed": 10**30}, "amount_disputed"),
        ({"amount_disputed": "-5"}, "amount_disputed"),
        ({"amount_disputed": "12.345"}, "amount_disputed"),
        ({"received_at": (datetime.now(UTC) + timedelta(days=3)).isoformat()}, "received_at"),
        ({"received_at": "2026-01-01T00:00:00"}, "received_at"),
        ({"channel_complaint_id": {"$where": "sleep(1000)"}}, "channel_complaint_id"),
        ({"channel_complaint_id": "$where"}, "channel_complaint_id"),
        ({"matter_ref": {"$ne": None}}, "matter_ref"),
        ({"customer": {"customer_id": {"$gt": ""}}}, "customer.customer_id"),
        ({"customer": {"customer_id": "C1", "phone": "call me"}}, "customer.phone"),
        ({"customer": {"customer_id": "C1", "id_number": "123"}}, "customer.id_number"),
        ({"$where": "this.a > 1"}, "$where"),
        ({"attachments": "file.png"}, "attachments"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, object], field: str) -> None:
    assert field in fields_of(json.dumps(valid(**changes)).encode())


@pytest.mark.parametrize("missing", ["channel_complaint_id", "channel", "received_at", "customer", "product", "text"])
def test_missing_fields_are_named(missing: str) -> None:
    body = valid()
    del body[missing]
    assert missing in fields_of(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"channel": "app", ', "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b"null", "JSON object"),
        (b'{"amount_disputed": ' + b"9" * 5000 + b"}", "not usable JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_undecodable_values_say_why(raw: bytes, words: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        decode_submission(raw)
    assert words in info.value.reason


def test_reasons_do_not_repeat_input_values() -> None:
    body = valid(customer={"customer_id": "C1", "phone": "13812345678x"})
    with pytest.raises(InvalidMessage) as info:
        decode_submission(json.dumps(body).encode())
    assert "13812345678" not in info.value.reason
    assert "13812345678" not in json.dumps(info.value.errors)


def test_operator_text_is_plain_data() -> None:
    sub = ComplaintSubmission.model_validate(valid(text='{"$where": "sleep(5000)"} 你们乱扣费'))
    assert sub.text.startswith('{"$where"')
