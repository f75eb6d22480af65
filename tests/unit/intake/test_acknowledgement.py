"""The acknowledgement text (受理回执) and the API's published contract."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from services.intake.app import SPEC
from services.intake.handlers import acknowledgement
from services.intake.models import ComplaintSubmission
from services.intake.rules import Role
from services.intake.settings import Settings
from shared.contracts.common import Language
from shared.service import build_api

SETTINGS = Settings(environment="test")
RECEIVED = datetime(2026, 11, 1, 17, 0, tzinfo=UTC)  # 2 Nov 01:00 in Shanghai


def submission(text: str) -> ComplaintSubmission:
    return ComplaintSubmission.model_validate({
        "channel_complaint_id": "X1", "channel": "app", "received_at": RECEIVED.isoformat(),
        "customer": {"customer_id": "C1", "phone": "13812345678"}, "product": "credit_card",
        "text": text,
    })


def test_chinese_acknowledgement_names_case_deadline_and_contact() -> None:
    ack = acknowledgement(
        submission("年费乱收"), case_number="TS-20261130-000007",
        deadline_at=RECEIVED + timedelta(days=15), role=Role.NEW_CASE, clock_restarted=False,
        language=Language.ZH_CN, settings=SETTINGS,
    )
    assert ack.kind == "acknowledgement" and ack.language is Language.ZH_CN
    assert "TS-20261130-000007" in ack.body and "2026年11月2日" in ack.body
    assert "2026年11月17日" in ack.body and SETTINGS.contact_point_zh in ack.body
    assert ack.contact_masked == "138****5678" and "13812345678" not in ack.model_dump_json()


def test_english_complaint_gets_english_first_then_chinese() -> None:
    ack = acknowledgement(
        submission("They charged an annual fee."), case_number="TS-20261130-000008",
        deadline_at=RECEIVED + timedelta(days=15), role=Role.LINKED, clock_restarted=True,
        language=Language.EN, settings=SETTINGS,
    )
    english, chinese = ack.body.split("\n\n")
    assert english.startswith("Dear customer") and "17 November 2026" in english
    assert "starts again" in english and "重新计算" in chinese


def test_openapi_document_is_complete() -> None:
    spec = build_api(SPEC, SETTINGS).openapi()
    text = json.dumps(spec)
    refs = set(re.findall(r"#/components/schemas/([A-Za-z0-9_]+)", text))
    assert refs <= set(spec["components"]["schemas"])
    assert {"/health", "/complaints", "/cases", "/cases/{case_ref}"} <= set(spec["paths"])
