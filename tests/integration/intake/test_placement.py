"""Duplicates, repeats and races, with the registration handler on the real database and broker."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.handlers import CustomerLocks, register_complaint
from services.intake.models import ComplaintSubmission
from services.intake.repository import IntakeRepository
from services.intake.settings import Settings
from shared.clock import due
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.kafka import Publisher
from tests.integration.intake.support import complaint
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def sub(n: int, **kw: Any) -> ComplaintSubmission:
    return ComplaintSubmission.model_validate(complaint(n, **kw))


async def test_same_matter_links_new_facts_restart_clock_closed_case_repeats(
    intake_settings: Settings, repo: IntakeRepository
) -> None:
    first_text = "信用卡年费在没有告知的情况下被扣了600元，客服说无法退还。"
    async with Publisher(intake_settings.kafka) as publisher:
        async def register(s: ComplaintSubmission, clock: datetime) -> Any:
            return await register_complaint(
                s, repo=repo, send=publisher.send, settings=intake_settings, clock=lambda: clock
            )

        a = await register(sub(1, customer_id="CX", product="credit_card", text=first_text,
                               received_at=NOW - timedelta(days=10), amount_disputed="600.00"),
                           NOW - timedelta(days=10))
        assert a.outcome == "new_case"
        # same customer, same matter, same story, 2 days later → merged, clock unchanged
        b = await register(sub(2, customer_id="CX", product="credit_card", text=first_text + "请尽快处理",
                               received_at=NOW - timedelta(days=8), amount_disputed="600.00",
                               attachments=[{"ref": "s3://evidence/C0000001/call-log.png"}]),
                           NOW - timedelta(days=8))
        assert (b.outcome, b.case_id, b.clock_restarted) == ("linked", a.case_id, False)
        assert b.deadline_at == a.deadline_at
        # new facts → merged, clock restarts from this complaint
        c_received = NOW - timedelta(days=5)
        c = await register(sub(3, customer_id="CX", product="credit_card",
                               text="后来发现他们还把我的逾期记录报送了征信，可我从未逾期过。",
                               received_at=c_received, channel="hotline"), NOW - timedelta(days=5))
        assert (c.outcome, c.case_id, c.clock_restarted) == ("linked", a.case_id, True)
        # restarted: 24:00 Beijing on D + 15 of this complaint (shared.clock), kept to the millisecond
        assert c.deadline_at == due(c_received, 15).due_at.replace(microsecond=999000)
        # redelivery of b: nothing new
        again = await register(sub(2, customer_id="CX", product="credit_card", text=first_text,
                                   received_at=NOW - timedelta(days=8)), NOW)
        assert again.duplicate and again.case_id == a.case_id
        # a different product of the same customer is a different matter
        other = await register(sub(4, customer_id="CX", product="consumer_loan"), NOW - timedelta(days=4))
        assert other.outcome == "new_case" and other.case_id != a.case_id

        case = await repo.find_case(a.case_id)
        assert case is not None and case["channels"] == ["app", "hotline"]
        assert [x["role"] for x in case["complaints"]] == ["new_case", "linked", "linked"]
        assert [t["what"] for t in case["timeline"]] == ["registered", "merged", "clock_restarted"]
        assert case["deadline_at"] == c.deadline_at

        # follow-up closes the case; a later complaint about the matter is a repeat
        closed = Envelope.wrap(CaseClosed(case_number=a.case_number, outcome="resolved"),
                               case_id=a.case_id, producer="followup")
        from services.intake.handlers import close_case
        assert await close_case(closed, repo=repo) is True
        assert await close_case(closed, repo=repo) is False  # redelivered: once only
        d = await register(sub(5, customer_id="CX", product="credit_card", text=first_text,
                               received_at=NOW - timedelta(hours=1)), NOW)
        assert d.outcome == "repeat" and d.case_id != a.case_id
        repeat_case = await repo.find_case(d.case_id)
        assert repeat_case is not None
        assert repeat_case["is_repeat"] and repeat_case["linked_case_ids"] == [a.case_id]
        assert "repeat_complaint" in repeat_case["priority_reasons"]

    records = await read_all(intake_settings, "complaint.registered", expected=5, timeout=30)
    payloads = {json.loads(r.value)["payload"]["channel_complaint_id"]: json.loads(r.value) for r in records}
    assert len(records) == 5, "the redelivered complaint must not publish again"
    assert payloads["C0000003"]["payload"]["clock_restarted"] is True
    assert payloads["C0000005"]["payload"]["is_repeat"] is True
    assert payloads["C0000005"]["payload"]["linked_case_ids"] == [a.case_id]
    assert payloads["C0000002"]["case_id"] == a.case_id
    acks = await read_all(intake_settings, "customer.notified", expected=5, timeout=30)
    bodies = {json.loads(r.value)["payload"]["case_number"] for r in acks}
    assert a.case_number in bodies and d.case_number in bodies
    restarted = [json.loads(r.value)["payload"]["body"] for r in acks]
    assert any("重新计算" in body for body in restarted)
    assert any("重复投诉" in body for body in restarted)


async def test_concurrent_registrations_never_duplicate(
    intake_settings: Settings, repo: IntakeRepository
) -> None:
    locks = CustomerLocks()
    async with Publisher(intake_settings.kafka) as publisher:
        async def register(s: ComplaintSubmission) -> Any:
            return await register_complaint(s, repo=repo, send=publisher.send,
                                            settings=intake_settings, locks=locks)

        # 30 different customers at once: the day counter races, numbers stay unique
        many = await asyncio.gather(*(register(sub(100 + i)) for i in range(30)))
        # the same complaint delivered 6 times at once: one registration
        same = await asyncio.gather(*(register(sub(7)) for _ in range(6)), return_exceptions=True)
    numbers = [r.case_number for r in many]
    assert len(set(numbers)) == 30
    ok = [r for r in same if not isinstance(r, BaseException)]
    assert ok and len({r.case_id for r in ok}) == 1
    assert await repo.complaints.count_documents({"channel_complaint_id": "C0000007"}) == 1
    assert await repo.cases.count_documents({"complaint_keys": "app:C0000007"}) == 1
    assert await repo.cases.count_documents({}) == 31
