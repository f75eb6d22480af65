"""The acknowledgement text (受理回执) and the API's published contract."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from services.intake.app import SPEC
from services.intake.handlers import acknowledgement
from services.intake.models import ComplaintSubmission
from services.intake.rules import Role
from services.intake.settings import Settings
from shared.clock import due
from shared.contracts.common import Language
from shared.service import build_api

SETTINGS = Settings(environment="test")
RECEIVED = datetime(2026, 11, 1, 17, 0, tzinfo=UTC)  # 2 Nov 01:00 in Shanghai
#: D = 2 Nov (Beijing), D + 15 = Tue 17 Nov 2026: due at 24:00 Beijing that day (shared.clock)
DEADLINE = due(RECEIVED, 15)


def submission(text: str) -> ComplaintSubmission:
    return ComplaintSubmission.model_validate({
        "channel_complaint_id": "X1", "channel": "app", "received_at": RECEIVED.isoformat(),
        "customer": {"customer_id": "C1", "phone": "13812345678"}, "product": "credit_card",
        "text": text,
    })


def test_chinese_acknowledgement_names_case_deadline_and_contact() -> None:
    ack = acknowledgement(
        submission("年费乱收"), case_number="TS-20261130-000007",
        deadline_at=DEADLINE.due_at, role=Role.NEW_CASE, clock_restarted=False,
        language=Language.ZH_CN, settings=SETTINGS,
    )
    assert ack.kind == "acknowledgement" and ack.language is Language.ZH_CN
    assert "TS-20261130-000007" in ack.body and "2026年11月2日" in ack.body
    assert "2026年11月17日（北京时间）当日24时前" in ack.body and SETTINGS.contact_point_zh in ack.body
    assert ack.contact_masked == "138****5678" and "13812345678" not in ack.model_dump_json()


def test_english_complaint_gets_english_first_then_chinese() -> None:
    ack = acknowledgement(
        submission("They charged an annual fee."), case_number="TS-20261130-000008",
        deadline_at=DEADLINE.due_at, role=Role.LINKED, clock_restarted=True,
        language=Language.EN, settings=SETTINGS,
    )
    english, chinese = ack.body.split("\n\n")
    assert english.startswith("Dear customer")
    assert "by the end of 17 November 2026 (24:00 Beijing time" in english
    assert "starts again" in english and "重新计算" in chinese


def test_openapi_document_is_complete() -> None:
    spec = build_api(SPEC, SETTINGS).openapi()
    text = json.dumps(spec)
    refs = set(re.findall(r"#/components/schemas/([A-Za-z0-9_]+)", text))
    assert refs <= set(spec["components"]["schemas"])
    assert {"/health", "/complaints", "/cases", "/cases/{case_ref}"} <= set(spec["paths"])


def test_the_deadline_named_is_the_beijing_day_even_when_the_zone_shown_is_another() -> None:
    # received 23:30 Beijing on 31 Jan 2026: D + 15 = Sun 15 Feb 2026, Spring Festival → 24 Feb
    received = datetime(2026, 1, 31, 15, 30, tzinfo=UTC)
    deadline = due(received, 15)
    assert deadline.rolled_over
    utc_settings = Settings(environment="test", timezone="UTC")
    ack = acknowledgement(
        submission("Charged twice."), case_number="TS-20260131-000001",
        deadline_at=deadline.due_at.astimezone(UTC), role=Role.NEW_CASE, clock_restarted=False,
        language=Language.EN, settings=utc_settings,
    )
    english, chinese = ack.body.split("\n\n")
    # 24 Feb 23:59:59 Beijing is 15:59:59 UTC the same day; the customer is told 24 February
    assert "by the end of 24 February 2026 (24:00 Beijing time" in english
    assert "2026年2月24日（北京时间）当日24时前" in chinese
