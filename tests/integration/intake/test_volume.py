"""1,000 real complaints in (some over HTTP) → 1,000 cases and acknowledgements; replay; SIGKILL.

Real processes on the real broker and database: the worker is ``python -m services.intake
worker``, killed with SIGKILL mid-batch in the crash test.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.intake.repository import IntakeRepository
from services.intake.settings import Settings
from shared.outbox import LEDGER_COLLECTION
from tests.integration.intake.realdata import real_complaints
from tests.integration.intake.support import encode, produce
from tests.support.eventually import eventually
from tests.support.kafka import group_caught_up, read_all
from tests.support.processes import ServiceProcess
from tests.support.tokens import bearer

pytestmark = pytest.mark.integration

GROUP_SUFFIX = "parley-intake"


def _payloads(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


async def test_thousand_real_complaints_make_thousand_cases_and_a_replay_adds_none(
    intake_settings: Settings, repo: IntakeRepository, processes: Callable[..., ServiceProcess]
) -> None:
    complaints = real_complaints(600, 400)
    over_http, over_kafka = complaints[:100], complaints[100:]
    processes("worker")
    api = processes("api", PARLEY_INTAKE_API_REGISTER_WAIT_S="0")

    async def post_all() -> None:
        async with httpx.AsyncClient(base_url=api.url, timeout=60,  # type: ignore[attr-defined]
                                     headers=bearer("channel")) as http:
            for body in over_http:
                resp = await http.post("/complaints", content=encode(body),
                                       headers={"content-type": "application/json"})
                assert resp.status_code == 202, resp.text

    await asyncio.gather(
        post_all(),
        produce(intake_settings, "complaint.received",
                [(c["channel_complaint_id"].encode(), encode(c)) for c in over_kafka]),
    )

    async def registered() -> int | bool:
        n = await repo.complaints.count_documents({})
        return n >= 1000 and n

    await eventually(registered, timeout=480, what="1000 registrations", interval=3)
    events = await read_all(intake_settings, "complaint.registered", expected=1000, timeout=60)
    acks = await read_all(intake_settings, "customer.notified", expected=1000, timeout=60)

    assert await repo.cases.count_documents({}) == 1000
    numbers = [c["case_number"] async for c in repo.cases.find({}, {"case_number": 1})]
    assert len(set(numbers)) == 1000
    registered_ids = Counter(p["payload"]["channel_complaint_id"] for p in _payloads(events))
    assert set(registered_ids) == {c["channel_complaint_id"] for c in complaints}
    # at-least-once: count events by event_id (a republished event is the same event)
    ack_payloads = list({p["event_id"]: p["payload"] for p in _payloads(acks)}.values())
    assert len(ack_payloads) == 1000
    assert len({p["event_id"] for p in _payloads(events)}) == 1000
    published_before_replay = len(await read_all(intake_settings, "complaint.registered"))
    acks_before_replay = len(await read_all(intake_settings, "customer.notified"))
    assert {p["case_number"] for p in ack_payloads} == set(numbers)
    languages = Counter(p["language"] for p in ack_payloads)
    assert languages == {"zh-CN": 600, "en": 400}
    phones = {c["customer"]["phone"] for c in complaints}
    for record in events + acks:
        text = record.value.decode()
        assert not any(phone in text for phone in phones), "a phone number left intake unmasked"

    # replay every complaint through Kafka: still 1,000 cases, no new events
    await produce(intake_settings, "complaint.received",
                  [(c["channel_complaint_id"].encode(), encode(c)) for c in complaints])
    group = f"{intake_settings.kafka.topic_prefix}{GROUP_SUFFIX}"

    async def replay_consumed() -> bool:
        return await group_caught_up(intake_settings, group, "complaint.received")

    await eventually(replay_consumed, timeout=240, what="the replay to be consumed", interval=2)
    assert await repo.cases.count_documents({}) == 1000
    assert await repo.complaints.count_documents({}) == 1000
    after = await read_all(intake_settings, "complaint.registered")
    assert len(after) == published_before_replay, "a replayed complaint must not be announced again"
    assert len(await read_all(intake_settings, "customer.notified")) == acks_before_replay


async def test_worker_killed_mid_batch_loses_nothing_and_registers_nothing_twice(
    intake_settings: Settings, repo: IntakeRepository, processes: Callable[..., ServiceProcess]
) -> None:
    complaints = real_complaints(240, 160, prefix="K")
    total = len(complaints)
    await produce(intake_settings, "complaint.received",
                  [(c["channel_complaint_id"].encode(), encode(c)) for c in complaints])
    # small batches, so that a kill after the first registrations lands mid-way
    worker = processes("worker", log_name="worker-1", PARLEY_INTAKE_REGISTER_BATCH_SIZE="20")

    async def some_registered() -> int | bool:
        n = await repo.complaints.count_documents({})
        return n >= 40 and n

    await eventually(some_registered, timeout=120, what="the first registrations", interval=0.05)
    worker.kill()
    at_kill = await repo.complaints.count_documents({})
    assert at_kill < total, "the worker must be killed mid-batch"

    processes("worker", log_name="worker-2")

    async def all_registered() -> int | bool:
        n = await repo.complaints.count_documents({})
        return n >= total and n

    await eventually(all_registered, timeout=480, what=f"{total} registrations", interval=3)

    async def outboxes_empty() -> bool:
        return (await repo.complaints.count_documents({"outbox_pending": True}) == 0
                and await repo.db[LEDGER_COLLECTION].count_documents({}) == 0)

    # the killed worker's last batch is redelivered to worker-2, which publishes it
    await eventually(outboxes_empty, timeout=120, what="every batch published")
    assert await repo.complaints.count_documents({}) == total
    assert await repo.cases.count_documents({}) == total, "a complaint was registered twice"
    keys = [k async for k in await repo.cases.aggregate([
        {"$unwind": "$complaint_keys"}, {"$group": {"_id": "$complaint_keys", "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": 1}}},
    ])]
    assert keys == []
    numbers = [c["case_number"] async for c in repo.cases.find({}, {"case_number": 1})]
    assert len(set(numbers)) == total

    def all_announced(records: list[Any]) -> bool:
        return len({json.loads(r.value)["payload"]["channel_complaint_id"] for r in records}) >= total

    events = await read_all(intake_settings, "complaint.registered", until=all_announced, timeout=60)
    payloads = _payloads(events)
    by_complaint: dict[str, set[str]] = {}
    for p in payloads:
        by_complaint.setdefault(p["payload"]["channel_complaint_id"], set()).add(p["event_id"])
    assert set(by_complaint) == {c["channel_complaint_id"] for c in complaints}
    # at-least-once: a redelivered event is the same event (same event_id), never a second one
    assert all(len(ids) == 1 for ids in by_complaint.values())
    acks = await read_all(intake_settings, "customer.notified", until=lambda r: len(
        {json.loads(x.value)["payload"]["case_number"] for x in r}) >= total, timeout=60)
    assert len({json.loads(r.value)["payload"]["case_number"] for r in acks}) == total
