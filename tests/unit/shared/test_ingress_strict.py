"""The ingress contract (``ComplaintSubmission``) is strict: no coercion, no control characters.

Issue 10: an integer ``received_at``, ``"yes"``/``"on"``/``1``/``"true"`` for booleans and NUL
in ``customer.name``, ``demand`` or ``attachments[].ref`` were accepted. Every refusal names
the field and never echoes the value.
"""

from __future__ import annotations

import json
import types
import typing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.contracts.intake import ComplaintSubmission, decode_submission
from shared.errors import InvalidMessage


def valid(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel_complaint_id": "APP-1",
        "channel": "app",
        "received_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "customer": {"customer_id": "C1", "name": "李四", "phone": "13812345678",
                     "id_number": "11010119900307123X", "vulnerable": False},
        "product": "credit_card",
        "text": "年费没有提前告知就扣了",
        "language": "zh-CN",
        "amount_disputed": "600.00",
        "amount_demanded": "100.50",
        "demand": "退还年费",
        "attachments": [{"ref": "s3://evidence/a.png", "filename": "a.png", "content_type": "image/png"}],
        "matter_ref": "CARD-1",
        "about_case_number": "TS-20260101-000001",
        "new_facts": True,
    }
    body.update(changes)
    return body


def set_path(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set a dotted path (``customer.name``, ``attachments.0.ref``) in a copy of ``body``."""
    body = json.loads(json.dumps(body))
    target: Any = body
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    target[parts[-1]] = value
    return body


def refusal(body: dict[str, Any]) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as info:
        decode_submission(json.dumps(body).encode())
    return info.value


def fields_of(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in refusal(body).errors}


def test_the_documented_wire_form_decodes() -> None:
    body = valid()
    sub = decode_submission(json.dumps(body).encode())
    assert sub.amount_disputed == Decimal("600.00") and sub.amount_demanded == Decimal("100.50")
    assert sub.customer.vulnerable is False and sub.new_facts is True
    assert sub.received_at.tzinfo is not None
    assert sub.channel.value == "app" and sub.product.value == "credit_card"
    # JSON numbers stay accepted for amounts (documented in docs/intake.md)
    assert decode_submission(json.dumps(valid(amount_disputed=600)).encode()).amount_disputed == Decimal("600")
    assert decode_submission(json.dumps(valid(amount_disputed=12.5)).encode()).amount_disputed == Decimal("12.5")
    # Python callers may validate the decoded JSON dict and get the same answer
    assert ComplaintSubmission.model_validate(body) == sub


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("received_at", 1_700_000_000),
        ("received_at", 1_700_000_000.5),
        ("received_at", "1700000000"),
        ("received_at", True),
        ("received_at", "2026-01-01"),
        ("customer.vulnerable", "yes"),
        ("customer.vulnerable", "on"),
        ("customer.vulnerable", "true"),
        ("customer.vulnerable", 1),
        ("customer.vulnerable", 0),
        ("customer.vulnerable", "false"),
        ("new_facts", "yes"),
        ("new_facts", "on"),
        ("new_facts", 1),
        ("new_facts", "true"),
        ("channel_complaint_id", 12345),
        ("customer.customer_id", 12345),
        ("customer.name", 42),
        ("customer.phone", 13812345678),
        ("customer.id_number", 110101199003071234),
        ("text", 42),
        ("demand", 5),
        ("matter_ref", 7),
        ("about_case_number", 1),
        ("attachments.0.ref", 7),
        ("attachments.0.filename", 1.5),
        ("attachments.0.content_type", True),
        ("amount_disputed", True),
        ("amount_demanded", False),
        ("channel", 1),
        ("product", ["credit_card"]),
        ("language", 0),
        ("attachments", {"ref": "x"}),
        ("customer", "C1"),
    ],
)
def test_loose_types_are_refused_naming_the_field(path: str, value: Any) -> None:
    body = set_path(valid(), path, value)
    assert path in fields_of(body)
    with pytest.raises(ValidationError) as info:  # the same when validating a Python dict
        ComplaintSubmission.model_validate(body)
    assert path in {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}


def test_an_integer_received_at_says_what_is_expected() -> None:
    error = refusal(valid(received_at=1_700_000_000))
    assert "received_at" in error.reason and "ISO 8601" in error.reason


def _string_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every string field of a model and its nested models, as dotted paths (lists at index 0)."""

    def mentions(annotation: Any, wanted: type) -> bool:
        if annotation is wanted:
            return True
        return any(mentions(a, wanted) for a in typing.get_args(annotation))

    def models(annotation: Any) -> list[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for a in typing.get_args(annotation) for m in models(a)]

    paths = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        origin = typing.get_origin(annotation)
        if mentions(annotation, str):
            paths.append(prefix + name)
        for nested in models(annotation):
            is_list = origin is list or (origin in (typing.Union, types.UnionType) and any(
                typing.get_origin(a) is list for a in typing.get_args(annotation)))
            paths += _string_fields(nested, f"{prefix}{name}.{'0.' if is_list else ''}")
    return paths


STRING_FIELDS = _string_fields(ComplaintSubmission)
#: Values each string field accepts, so a control character is the only thing wrong.
OK_VALUES = {
    "channel_complaint_id": "APP{}1", "customer.customer_id": "C{}1", "customer.name": "李{}四",
    "customer.phone": "138{}12345678", "customer.id_number": "1101011990{}0307123X",
    "matter_ref": "CARD{}1", "about_case_number": "TS-2026{}0101-000001",
}


def test_the_string_field_walk_finds_every_field_the_issue_names() -> None:
    for path in ["customer.name", "demand", "attachments.0.ref", "attachments.0.filename", "text",
                 "channel_complaint_id", "customer.phone", "attachments.0.content_type"]:
        assert path in STRING_FIELDS
    # the walk reaches both nested models
    assert any(p.startswith("customer.") for p in STRING_FIELDS)
    assert any(p.startswith("attachments.0.") for p in STRING_FIELDS)
    assert len(STRING_FIELDS) == len(set(STRING_FIELDS)) >= 12


@pytest.mark.parametrize("path", STRING_FIELDS)
@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x1f", "\x7f", "\x85", "\x9f"])
def test_control_characters_are_refused_in_every_string_field(path: str, char: str) -> None:
    template = OK_VALUES.get(path, "ab{}cd")
    for value in (template.format(char), char + template.format(""), template.format("") + char):
        error = refusal(set_path(valid(), path, value))
        assert {e["field"] for e in error.errors} == {path}, (path, repr(value), error.errors)
        expected = f"{path}: contains a control character (U+{ord(char):04X})"
        assert expected in error.reason, error.reason
        assert template.format("") not in error.reason  # the value is never echoed


@pytest.mark.parametrize("path", [p for p in STRING_FIELDS if p not in ("text", "demand")])
@pytest.mark.parametrize("char", ["\t", "\n", "\r"])
def test_line_breaks_and_tabs_are_refused_outside_free_text(path: str, char: str) -> None:
    template = OK_VALUES.get(path, "ab{}cd")
    error = refusal(set_path(valid(), path, template.format(char)))
    assert {e["field"] for e in error.errors} == {path}


@pytest.mark.parametrize("path", ["text", "demand"])
def test_free_text_keeps_tabs_and_line_breaks(path: str) -> None:
    sub = decode_submission(json.dumps(set_path(valid(), path, "第一行\n第二行\r\n\t第三行")).encode())
    assert "\n第二行\r\n\t第三行" in getattr(sub, path)


def test_nul_in_the_fields_the_issue_found_is_named() -> None:
    body = set_path(set_path(set_path(valid(), "customer.name", "张\x00三"), "demand", "退\x00款"),
                    "attachments.0.ref", "s3://x/\x00")
    error = refusal(body)
    assert {e["field"] for e in error.errors} == {"customer.name", "demand", "attachments.0.ref"}
    assert "customer.name: contains a control character (U+0000)" in error.reason
