"""The registration path on the real broker and database: Kafka in → case in Mongo → events out."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from services.intake.repository import IntakeRepository
from tests.integration.intake.support import complaint, encode, produce
from tests.support.eventually import eventually
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

    await eventually(registered, timeout=60, what="5 registrations")
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
    personal = await repo.read_personal_data("app:C0000000", reader="test", purpose="check the originals")
    assert personal is not None and personal["name"] == "张小明"
    assert await repo.complaints.count_documents({"outbox_pending": True}) == 0


async def test_case_closed_on_kafka_makes_the_next_complaint_a_repeat(
    intake_settings, repo: IntakeRepository, processes: Callable[..., ServiceProcess]
) -> None:
    from shared.contracts.envelope import Envelope
    from shared.contracts.followup import CaseClosed

    processes("worker")
    first = complaint(1, customer_id="REPEATER", product="credit_card")
    await produce(intake_settings, "complaint.received", [(b"C0000001", encode(first))])

    async def case_of_first() -> dict | None:
        return await repo.find_case(await _case_id(repo, "app:C0000001"))

    case = await eventually(case_of_first, timeout=60, what="the first case")
    closed = Envelope.wrap(CaseClosed(case_number=case["case_number"], outcome="resolved"),
                           case_id=case["_id"], producer="followup")
    unknown = Envelope.wrap(CaseClosed(case_number="TS-20000101-000001", outcome="resolved"),
                            case_id="no-such-case", producer="followup")
    await produce(intake_settings, "case.closed", [
        (closed.key(), closed.to_bytes()), (closed.key(), closed.to_bytes()),  # redelivered
        (unknown.key(), unknown.to_bytes()), (b"x", b"not json"),
    ])

    async def is_closed() -> bool:
        doc = await repo.find_case(case["_id"])
        return doc is not None and doc["status"] == "closed"

    await eventually(is_closed, timeout=60, what="the case to close")
    again = complaint(2, customer_id="REPEATER", product="credit_card")
    await produce(intake_settings, "complaint.received", [(b"C0000002", encode(again))])

    async def second() -> dict | None:
        return await repo.find_complaint("app:C0000002")

    record = await eventually(second, timeout=60, what="the repeat")
    assert record["role"] == "repeat" and record["case_id"] != case["_id"]
    repeat_case = await repo.find_case(record["case_id"])
    assert repeat_case is not None and repeat_case["linked_case_ids"] == [case["_id"]]
    closed_doc = await repo.find_case(case["_id"])
    assert closed_doc is not None
    assert [t["what"] for t in closed_doc["timeline"]].count("closed") == 1
    dead = await read_all(intake_settings, "case.closed.dlq", expected=2, timeout=30)
    assert sorted(r.value for r in dead) == sorted([unknown.to_bytes(), b"not json"])


async def _case_id(repo: IntakeRepository, key: str) -> str:
    doc = await repo.find_complaint(key)
    return doc["case_id"] if doc else "-"
