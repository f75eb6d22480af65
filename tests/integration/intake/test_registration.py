"""The registration path on the real broker and database: Kafka in → case in Mongo → events out."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from services.intake.repository import IntakeRepository
from tests.integration.intake.support import complaint, encode, produce, wait_for
from tests.support.kafka import read_all
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration


async def test_worker_registers_complaints_and_publishes_events(
    intake_settings, repo: IntakeRepository, processes: Callable[..., ServiceProcess]
) -> None:
    bodies = [complaint(i) for i in range(5)]
    bodies[1]["text"] = "My card was charged twice for the same purchase and nobody answers my calls."
    bodies[1]["product"] = "credit_card"
    await produce(intake_settings, "complaint.received",
                  [(b["channel_complaint_id"].encode(), encode(b)) for b in bodies])
    processes("worker")

    async def registered() -> bool:
        return await repo.complaints.count_documents({}) >= 5

    await wait_for(registered, timeout=60, what="5 registrations")
    cases = [c async for c in repo.cases.find({})]
    assert len(cases) == 5
    numbers = sorted(c["case_number"] for c in cases)
    assert len(set(numbers)) == 5 and all(n.startswith("TS-") and len(n) == 18 for n in numbers)

    events = await read_all(intake_settings, "complaint.registered", expected=5, timeout=30)
    acks = await read_all(intake_settings, "customer.notified", expected=5, timeout=30)
    by_case = {c["_id"]: c for c in cases}
    for record in events:
        envelope = json.loads(record.value)
        assert record.key.decode() == envelope["case_id"] and envelope["case_id"] in by_case
        payload = envelope["payload"]
        assert payload["customer_phone_masked"].startswith("139****")
        assert payload["customer_id_number_masked"].startswith("1101**********")
        assert payload["customer_name_masked"] == "张**"
        raw = record.value.decode()
        assert "张小明" not in raw and "110101199003" not in raw
    english = [json.loads(a.value)["payload"] for a in acks if json.loads(a.value)["payload"]["language"] == "en"]
    assert len(english) == 1 and "has been registered as case" in english[0]["body"]
    assert all("投诉受理回执" in json.loads(a.value)["payload"]["subject"] for a in acks)
    personal = await repo.load_personal_data("app:C0000000")
    assert personal is not None and personal["name"] == "张小明"
    assert await repo.complaints.count_documents({"outbox_pending": True}) == 0
