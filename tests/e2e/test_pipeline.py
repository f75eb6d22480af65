"""The whole pipeline on the real stack: every service as its own process, talking only
through Kafka, each with its own database.

A customer complains through the intake API → intake registers and acknowledges →
investigation categorises, gathers evidence and finds → negotiation opens a workspace, an
agent offers, the customer accepts → follow-up carries the settlement out and calls back →
the case is closed; supervision saw every step in order. No personal number of the
complaint appears on any topic. Every call carries a token of the role docs/security.md
gives it (one secret, ``PARLEY_AUTH_SECRET``, for every API).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from shared.topics import CATALOGUE
from tests.security.personal_data import assert_no_personal_data
from tests.support.eventually import eventually
from tests.support.journey import auth, drive_to_closure, pipeline
from tests.support.kafka import read_all

pytestmark = pytest.mark.e2e

PHONE = "13912345678"
ID_NUMBER = "110101199003071234"
NAME = "王小明"
CARD = "6222021234567890123"


async def test_a_complaint_goes_from_intake_to_closure(settings: CommonSettings, tmp_path: Path) -> None:
    await ensure_topics(settings.kafka)
    ops = auth(sub="ops1", role="ops")
    customer_id = "CUST-E2E-1"
    submission = {
        "channel_complaint_id": "e2e-0001",
        "channel": "app",
        "received_at": datetime.now(UTC).isoformat(),
        "customer": {"customer_id": customer_id, "name": NAME, "phone": PHONE, "id_number": ID_NUMBER},
        "product": "credit_card",
        "text": (
            f"我的信用卡（卡号 {CARD}）只逾期了3天，就被收取了500元滞纳金和800元罚息，合同里没有约定这么高的费用，"
            "客服也不给解释。要求退还不合理的滞纳金和罚息。联系电话 13912345678。"
        ),
        "amount_disputed": "1300.00",
        "demand": "减免滞纳金和罚息",
    }

    with pipeline(settings, tmp_path) as base:
        async with httpx.AsyncClient(timeout=30) as http:
            # 1–5. intake registers, investigation finds, negotiation opens the workspace, the
            # agent offers, the customer accepts, follow-up carries it out and calls back
            closed = await drive_to_closure(http, base, submission)
            case_id, case_number = closed.case_id, closed.case_number

            # 6. supervision saw the whole story, in order, and the case is off the clock
            watch = (await eventually(
                lambda: http.get(f"{base['supervision']}/cases/{case_id}", headers=ops),
                until=lambda r: r.status_code == 200 and r.json()["status"] == "closed",
                what="supervision closing the case", timeout=90, interval=0.5,
            )).json()
            seen = [e["event_type"] for e in watch["timeline"]]
            story = [
                "complaint.registered", "investigation.completed", "negotiation.started",
                "settlement.agreed", "settlement.executed",
            ]
            positions = [seen.index(t) for t in story]
            assert positions == sorted(positions), seen
            # the callback's two events happen at the same instant, on different topics
            assert min(seen.index("followup.completed"), seen.index("case.closed")) > positions[-1], seen
            assert watch["case_number"] == case_number

            # 7. intake's read side (what the desk and the customer's channel show) is closed too
            case = (await eventually(
                lambda: http.get(f"{base['intake']}/cases/{case_id}", headers=ops),
                until=lambda r: r.status_code == 200 and r.json()["status"] == "closed",
                what="intake closing the case", timeout=90, interval=0.5,
            )).json()
            assert case["customer_phone_masked"] == "139****5678"

    # every enveloped event of this story is keyed by the case, and no personal number leaks
    for name, entry in CATALOGUE.items():
        if entry.payload is None:
            continue
        for record in await read_all(settings, name, timeout=10):
            text = record.value.decode("utf-8")
            assert PHONE not in text and ID_NUMBER not in text and NAME not in text, (name, text[:500])
            assert record.key == case_id.encode(), name

    # and nowhere else either: every topic, collection and service log of the run (tests/security)
    seen = await assert_no_personal_data(
        settings, tmp_path, {"name": NAME, "phone number": PHONE, "ID number": ID_NUMBER, "card number": CARD})
    assert seen["records"] >= 10 and seen["documents"] >= 10 and seen["log_files"] >= 9, seen
