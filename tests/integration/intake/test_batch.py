"""Batch registration and case-number allocation on the real database and broker.

A batch of real complaints is registered once with unique numbers and every event once; the
same batch redelivered changes nothing; two allocators with their own clients, claiming at
the same time, never hand out the same number.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.intake.handlers import case_id_for, register_batch
from services.intake.models import ComplaintSubmission
from services.intake.repository import CaseNumbers, IntakeRepository
from services.intake.settings import Settings
from shared.kafka import Publisher
from shared.mongo import make_client
from shared.outbox import LEDGER_COLLECTION, batch_token, publish_written
from tests.integration.intake.realdata import real_complaints
from tests.integration.intake.support import complaint
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration


async def test_a_batch_of_real_complaints_registers_once_and_redelivery_changes_nothing(
    intake_settings: Settings, repo: IntakeRepository
) -> None:
    batch = [ComplaintSubmission.model_validate(d) for d in real_complaints(180, 120, prefix="B")]
    numbers = CaseNumbers(repo)
    async with Publisher(intake_settings.kafka) as publisher:
        with batch_token() as token:  # as the runtime runs a batch
            written = await register_batch(batch, repo=repo, settings=intake_settings, numbers=numbers)
        assert len(written) == 300 and all(w.pending and w.ledger == token for w in written)
        # the batch's events wait in its ledger entries (≤ 200 complaints each), not in 300 records
        assert await repo.db[LEDGER_COLLECTION].count_documents({}) == 2
        assert await publish_written(written, publisher.send) == 600
        assert await repo.db[LEDGER_COLLECTION].count_documents({}) == 0

        cases = {c["_id"]: c async for c in repo.cases.find({}, {"case_number": 1, "complaint_keys": 1})}
        assert len(cases) == 300
        assert len({c["case_number"] for c in cases.values()}) == 300
        assert set(cases) == {case_id_for(s.key()) for s in batch}
        assert await repo.complaints.count_documents({}) == 300
        assert await repo.complaints.count_documents({"outbox_pending": True}) == 0

        # the same batch again (a redelivery), even from a fresh process's allocator
        with batch_token():
            again = await register_batch(batch, repo=repo, settings=intake_settings,
                                         numbers=CaseNumbers(repo))
        # only "publish that batch if it never was": it was, so nothing goes out
        assert again and all(w.doc_id is None and w.ledger == token for w in again)
        assert await publish_written(again, publisher.send) == 0
    after = {c["_id"]: c async for c in repo.cases.find({}, {"case_number": 1, "complaint_keys": 1})}
    assert after == cases
    assert await repo.complaints.count_documents({}) == 300

    registered = await read_all(intake_settings, "complaint.registered", expected=300, timeout=60)
    ids = [json.loads(r.value)["event_id"] for r in registered]
    assert len(ids) == len(set(ids)) == 300
    numbers_published = {json.loads(r.value)["payload"]["case_number"] for r in registered}
    assert numbers_published == {c["case_number"] for c in cases.values()}
    acks = await read_all(intake_settings, "customer.notified", expected=300, timeout=60)
    assert len(acks) == 300
    for record in registered:  # personal data masked in what goes out
        payload = json.loads(record.value)["payload"]
        assert "****" in payload["customer_phone_masked"]
        assert "*" in payload["customer_id_number_masked"]


async def test_one_customer_twice_and_a_key_twice_in_one_batch(
    intake_settings: Settings, repo: IntakeRepository
) -> None:
    now = datetime.now(UTC)
    first = ComplaintSubmission.model_validate(complaint(
        1, customer_id="CB", product="credit_card", received_at=now - timedelta(days=2)))
    second = ComplaintSubmission.model_validate(complaint(
        2, customer_id="CB", product="credit_card", received_at=now - timedelta(days=1),
        text="后来发现他们还把我的逾期记录报送了征信，可我从未逾期过。"))
    written = await register_batch([first, second, first], repo=repo, settings=intake_settings,
                                   numbers=CaseNumbers(repo))
    assert [w.doc_id for w in written] == ["app:C0000001", "app:C0000002"]
    case = await repo.find_case(case_id_for("app:C0000001"))
    assert case is not None and case["complaint_keys"] == ["app:C0000001", "app:C0000002"]
    assert [c["role"] for c in case["complaints"]] == ["new_case", "linked"]
    record = await repo.find_complaint("app:C0000002")
    assert record is not None and record["case_number"] == case["case_number"]
    assert await repo.cases.count_documents({}) == 1


async def test_two_allocators_at_once_never_hand_out_a_number_twice(
    intake_settings: Settings, repo: IntakeRepository
) -> None:
    # each allocator has its own client (its own connections), as two worker processes would
    clients: list[AsyncMongoClient[Any]] = [make_client(intake_settings.mongo) for _ in range(2)]
    try:
        allocators = [
            CaseNumbers(IntakeRepository(c[intake_settings.mongo.database("intake")]), owner=f"w{i}")
            for i, c in enumerate(clients)
        ]
        sizes = [1, 3, 2, 7, 1, 5, 4, 1, 2, 6] * 2

        async def worker(numbers: CaseNumbers) -> list[str]:
            out: list[str] = []
            for size in sizes:
                out += await numbers.take("TS", "20261129", size)
            return out

        a, b = await asyncio.gather(*(worker(n) for n in allocators))
    finally:
        for c in clients:
            await c.close()
    taken = a + b
    assert len(taken) == 2 * sum(sizes)
    assert len(set(taken)) == len(taken), "a number was handed out twice"
    sequences = sorted(int(n.rsplit("-", 1)[1]) for n in taken)
    assert sequences == list(range(1, len(taken) + 1)), "gaps although no allocator died"
    blocks = [b async for b in repo.number_blocks.find({})]
    spans = sorted((b["start"], b["start"] + b["size"]) for b in blocks)
    assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:], strict=False))
