"""Two intake workers in one consumer group: per-customer placement stays right, duplicates are
told apart (issue 10). Real worker processes, real broker (several partitions) and database.

``complaint.received`` is keyed by the channel's complaint id, so one customer's simultaneous
complaints land on different partitions and so on different workers. Each customer's three
complaints are about one matter within the linking window: they must end in ONE case, each
registered exactly once. Exact redeliveries are silent; one message with an already
registered id but different content is dead-lettered as ``conflicting_duplicate`` and recorded.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.intake.repository import IntakeRepository
from services.intake.settings import Settings
from shared.kafka.dlq import read_headers
from tests.integration.intake.support import complaint, encode, produce
from tests.support.eventually import eventually
from tests.support.kafka import group_caught_up, read_all
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration

CUSTOMERS = 40
PER_CUSTOMER = 3
GROUP_SUFFIX = "parley-intake"
TEXTS = (
    "信用卡年费在没有告知的情况下被扣了{n}元，客服说无法退还。",
    "上次反映的年费问题还没有解决，今天又收到了催缴短信，金额{n}元。",
    "I was charged an annual fee of {n} yuan without notice and the hotline refuses a refund.",
)


async def _group_stable_with(settings: Settings, group: str, members: int) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    for response in described:
        for entry in response.groups:
            _error, group_id, state, _ptype, _protocol, group_members = entry[:6]
            if group_id == group:
                return bool(state == "Stable" and len(group_members) == members)
    return False


async def test_two_workers_keep_each_customer_in_one_case_and_tell_duplicates_apart(
    intake_settings: Settings, repo: IntakeRepository, processes: Callable[..., ServiceProcess]
) -> None:
    assert intake_settings.kafka.partitions >= 3
    group = f"{intake_settings.kafka.topic_prefix}{GROUP_SUFFIX}"
    processes("worker", log_name="worker-1", PARLEY_INTAKE_REGISTER_BATCH_SIZE="20")
    processes("worker", log_name="worker-2", PARLEY_INTAKE_REGISTER_BATCH_SIZE="20")

    async def both_members() -> bool:
        return await _group_stable_with(intake_settings, group, 2)

    await eventually(both_members, timeout=90, interval=0.5, what="two members in the intake group")

    now = datetime.now(UTC).replace(microsecond=0)
    bodies: list[dict[str, Any]] = []
    for c in range(CUSTOMERS):
        for j in range(PER_CUSTOMER):
            n = c * PER_CUSTOMER + j
            bodies.append(complaint(
                n, customer_id=f"MULTI{c:04d}", product="credit_card", channel=("app", "hotline", "web")[j],
                text=TEXTS[j].format(n=100 + c), received_at=now - timedelta(hours=3 - j),
                amount_disputed="600.00",
            ))
    records = [(b["channel_complaint_id"].encode(), encode(b)) for b in bodies]
    redelivered = records[::12]  # 10 exact redeliveries, byte for byte
    original = bodies[7]
    conflicting = {**original, "text": "这是同一个编号但内容完全不同的另一条投诉。", "demand": "全额退款"}
    conflicting_raw = encode(conflicting)
    await produce(intake_settings, "complaint.received", records)
    await produce(intake_settings, "complaint.received",
                  [*redelivered, (original["channel_complaint_id"].encode(), conflicting_raw)])

    total = CUSTOMERS * PER_CUSTOMER

    async def all_registered() -> int | bool:
        n = await repo.complaints.count_documents({})
        return n >= total and n

    await eventually(all_registered, timeout=240, interval=1, what=f"{total} registrations")

    async def consumed() -> bool:
        return await group_caught_up(intake_settings, group, "complaint.received")

    await eventually(consumed, timeout=120, interval=1, what="every record consumed")

    # every complaint registered exactly once
    keys = [f"{b['channel']}:{b['channel_complaint_id']}" for b in bodies]
    assert await repo.complaints.count_documents({}) == total
    in_cases = Counter([k async for c in repo.cases.find({}, {"complaint_keys": 1}) for k in c["complaint_keys"]])
    assert set(in_cases) == set(keys) and set(in_cases.values()) == {1}, "a complaint is in two cases"

    # each customer's complaints (one matter, within the linking window) are in one case
    case_of: dict[str, set[str]] = {}
    async for record in repo.complaints.find({}, {"customer_id": 1, "case_id": 1}):
        case_of.setdefault(record["customer_id"], set()).add(record["case_id"])
    split = {cid: len(ids) for cid, ids in case_of.items() if len(ids) > 1}
    assert not split, f"{len(split)} of {CUSTOMERS} customers got more than one case: {split}"
    assert await repo.cases.count_documents({}) == CUSTOMERS
    roles = Counter([r["role"] async for r in repo.complaints.find({}, {"role": 1})])
    assert roles == {"new_case": CUSTOMERS, "linked": CUSTOMERS * (PER_CUSTOMER - 1)}

    # the conflicting duplicate, and nothing else, is dead-lettered, byte for byte, with its reason
    dead = await read_all(intake_settings, "complaint.received.dlq")
    assert len(dead) == 1, [read_headers(d.headers).get("dlq.reason") for d in dead]
    assert dead[0].key == original["channel_complaint_id"].encode()
    assert dead[0].value == conflicting_raw
    headers = read_headers(dead[0].headers)
    reason = headers["dlq.reason"]
    assert reason.startswith("conflicting_duplicate"), reason
    assert f"hotline:{original['channel_complaint_id']}" in reason
    assert "text" in reason and "demand" in reason and "customer" not in reason
    assert "不同" not in reason and "退款" not in reason, "a reason must not carry the content"
    assert {e["field"] for e in json.loads(headers["dlq.errors"])} == {"text", "demand"}

    # both versions are kept: the first stays registered, the conflict is recorded for the desk
    key = f"hotline:{original['channel_complaint_id']}"
    assert (await repo.read_personal_data(key, reader="test", purpose="check the originals") or {}).get(
        "text") == original["text"]
    conflicts = [c async for c in repo.db["conflicts"].find({})]
    assert len(conflicts) == 1 and conflicts[0]["key"] == key
    assert sorted(conflicts[0]["fields"]) == ["demand", "text"]
    record = await repo.find_complaint(key)
    assert record is not None and conflicts[0]["registered_hash"] == record["content_hash"]
    assert conflicts[0]["content_hash"] != record["content_hash"]
