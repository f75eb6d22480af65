"""Conflicting duplicates and several workers placing one customer (issue 10): the rules, and
register_batch on the in-memory store of test_batch (the real server: tests/integration)."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest

from services.intake import rules
from services.intake.errors import RegistrationConflict
from services.intake.handlers import ConflictingDuplicate, case_id_for, register_batch
from services.intake.repository import CaseNumbers, KeyedLocks
from services.intake.settings import Settings
from shared.contracts.intake import ComplaintSubmission
from shared.errors import InvalidMessage
from tests.unit.intake.test_batch import NOW, SETTINGS, FakeStore, register, submission

Doc = dict[str, Any]


def fp(**changes: Any) -> rules.Fingerprint:
    return rules.fingerprint(submission(1, **changes).model_dump())


# ------------------------------------------------------------------ the rules


def test_equal_content_spelled_differently_has_one_fingerprint() -> None:
    body = submission(1).model_dump(mode="json")
    shuffled = dict(reversed(list(body.items())))
    shuffled["received_at"] = (NOW - timedelta(hours=1)).astimezone(rules.ZoneInfo("Asia/Shanghai")).isoformat()
    shuffled["amount_disputed"] = "600"
    shuffled["language"] = None  # an optional field given as its default
    again = ComplaintSubmission.model_validate(shuffled)
    assert rules.fingerprint(again.model_dump()) == fp()


def test_which_fields_differ_is_named_without_values() -> None:
    first, second = fp(), fp(text="完全不同的另一件事。", amount_disputed="700.00")
    assert first.content_hash != second.content_hash
    fields = rules.differing_fields(first.field_hashes, second.field_hashes)
    assert fields == ["amount_disputed", "text"]
    reason = rules.conflict_reason("app:C00001", fields)
    assert reason.startswith("conflicting_duplicate: ")
    assert "app:C00001" in reason and "amount_disputed, text" in reason
    assert "700" not in reason and "另一件事" not in reason
    # a nested change is named by its top-level field
    other_phone = submission(1).model_dump()
    other_phone["customer"] = {**other_phone["customer"], "phone": "13912345679"}
    assert rules.differing_fields(first.field_hashes, rules.fingerprint(other_phone).field_hashes) == ["customer"]


def test_a_record_without_a_hash_counts_as_the_same_content() -> None:
    assert rules.same_content(None, fp(text="其他内容"))
    assert rules.same_content(fp().content_hash, fp())
    assert not rules.same_content(fp().content_hash, fp(text="其他内容"))


@pytest.mark.parametrize(
    ("entry", "case", "ours", "age_s", "blocks"),
    [
        ({"kind": "new", "key": "a", "case_id": "x"}, None, False, 1, True),  # not written yet
        ({"kind": "new", "key": "a", "case_id": "x"}, {"status": "open"}, False, 1, False),
        ({"kind": "new", "key": "a", "case_id": "x"}, None, True, 1, False),  # ours: redone
        ({"kind": "new", "key": "a", "case_id": "x"}, None, False, 60, False),  # stale: its worker died
        ({"kind": "link", "key": "a", "case_id": "x"}, {"status": "open", "complaint_keys": ["b"]}, False, 1, True),
        ({"kind": "link", "key": "a", "case_id": "x"}, {"status": "open", "complaint_keys": ["b", "a"]}, False, 1, False),
        ({"kind": "link", "key": "a", "case_id": "x"}, {"status": "closed", "complaint_keys": ["b"]}, False, 1, False),
        ({"kind": "link", "key": "a", "case_id": "x"}, None, False, 1, False),
    ],
)
def test_when_another_workers_placement_is_waited_for(
    entry: dict[str, str], case: Doc | None, ours: bool, age_s: float, blocks: bool
) -> None:
    assert rules.pending_blocks(entry, case, ours=ours, age=timedelta(seconds=age_s),
                                stale_after=timedelta(seconds=30)) is blocks


# ------------------------------------------------------------------ conflicting duplicates


async def test_an_exact_redelivery_is_silent_and_other_content_is_a_conflicting_duplicate() -> None:
    store = FakeStore()
    await register(store, [submission(1), submission(2)])
    record = copy.deepcopy(store.complaint_docs["app:C00001"])
    assert record["content_hash"] == fp().content_hash
    await register(store, [submission(1)])  # exact redelivery: no error, nothing changes
    changed = submission(1, text="同一个编号，另一份内容。", demand="退款")
    with pytest.raises(ConflictingDuplicate) as caught:
        await register(store, [submission(3), changed, submission(2)])
    error = caught.value
    assert isinstance(error, InvalidMessage)
    assert error.reason.startswith("conflicting_duplicate") and "app:C00001" in error.reason
    assert {e["field"] for e in error.errors} == {"demand", "text"}
    assert list(error.invalid) == [1]  # only that record of the batch
    assert [w.doc_id for w in error.result if w.pending] == ["app:C00003"]  # the rest registered
    assert "app:C00003" in store.complaint_docs
    # the first version stays registered, its originals kept; the conflict is recorded
    assert store.complaint_docs["app:C00001"] == record
    assert store.personal["app:C00001"]["data"]["text"] == submission(1).text
    (conflict,) = store.conflicts.values()
    assert conflict["key"] == "app:C00001" and conflict["fields"] == ["demand", "text"]
    assert conflict["registered_hash"] == record["content_hash"]
    assert "同一个编号" not in repr(conflict)
    # the same conflict again is recorded once
    with pytest.raises(ConflictingDuplicate):
        await register(store, [changed])
    assert len(store.conflicts) == 1


async def test_one_id_twice_in_a_batch_with_different_content() -> None:
    store = FakeStore()
    changed = submission(5, text="第二份内容不一样。")
    with pytest.raises(ConflictingDuplicate) as caught:
        await register(store, [submission(5), submission(6), changed, submission(5)])
    assert list(caught.value.invalid) == [2]
    assert {w.doc_id for w in caught.value.result} == {"app:C00005", "app:C00006"}
    first = rules.fingerprint(submission(5).model_dump()).content_hash
    assert store.complaint_docs["app:C00005"]["content_hash"] == first


async def test_a_record_registered_before_hashes_is_never_a_conflict() -> None:
    store = FakeStore()
    await register(store, [submission(1)])
    del store.complaint_docs["app:C00001"]["content_hash"]
    store.personal["app:C00001"].pop("content_hash")
    await register(store, [submission(1, text="历史数据没有指纹，按同一内容处理。")])


async def test_a_conflict_with_an_interrupted_first_attempt_keeps_the_first() -> None:
    store = FakeStore()
    store.fail_complaint_insert = True
    with pytest.raises(ConnectionError):
        await register(store, [submission(1)])
    with pytest.raises(ConflictingDuplicate):
        await register(store, [submission(1, text="另一份内容。")])
    await register(store, [submission(1)])  # the first version's redelivery completes it
    assert store.complaint_docs["app:C00001"]["content_hash"] == fp().content_hash


# ------------------------------------------------------------------ two workers, one customer


def _worker(store: FakeStore, items: list[ComplaintSubmission], settings: Settings = SETTINGS) -> Any:
    """register_batch as another worker process runs it: its own locks and allocator."""
    return register_batch(items, repo=store, settings=settings, numbers=CaseNumbers(store),
                          clock=lambda: NOW, locks=KeyedLocks())


class _Paused:
    """Holds the first insert_cases call until released (a worker slow after its commit)."""

    def __init__(self, store: FakeStore) -> None:
        self.entered, self.release = asyncio.Event(), asyncio.Event()
        self._original, self._done = store.insert_cases, False
        store.insert_cases = self  # type: ignore[method-assign]

    async def __call__(self, docs: list[Doc]) -> set[str]:
        if not self._done:
            self._done = True
            self.entered.set()
            await self.release.wait()
        return await self._original(docs)


async def test_a_second_worker_waits_for_the_first_workers_new_case_and_joins_it() -> None:
    store = FakeStore()
    paused = _Paused(store)
    first = asyncio.create_task(_worker(store, [submission(1, customer="CW", received=NOW - timedelta(days=2))]))
    await paused.entered.wait()  # worker 1 committed the customer's new case, not written yet
    second = asyncio.create_task(_worker(store, [submission(2, customer="CW", received=NOW - timedelta(days=1))]))
    await asyncio.sleep(0.1)
    assert not second.done(), "worker 2 must wait for worker 1's case"
    paused.release.set()
    await asyncio.gather(first, second)
    assert list(store.case_docs) == [case_id_for("app:C00001")]
    assert store.case_docs[case_id_for("app:C00001")]["complaint_keys"] == ["app:C00001", "app:C00002"]
    assert store.complaint_docs["app:C00002"]["role"] == "linked"
    assert store.customer_docs["CW"]["version"] == 2


async def test_a_worker_that_lost_the_claim_reads_again_and_places_afresh() -> None:
    store = FakeStore()
    await register(store, [submission(1, customer="CV", received=NOW - timedelta(days=3))])
    original = store.claim_customers
    raced = False

    async def someone_else_first(versions: dict[str, int], *, stale_after: timedelta) -> set[str]:
        nonlocal raced
        if not raced:  # another worker links its complaint between our read and our claim
            raced = True
            await _worker(store, [submission(9, customer="CV", received=NOW - timedelta(days=2))])
        return await original(versions, stale_after=stale_after)

    store.claim_customers = someone_else_first  # type: ignore[method-assign]
    await register(store, [submission(2, customer="CV", received=NOW - timedelta(days=1))])
    case = store.case_docs[case_id_for("app:C00001")]
    assert case["complaint_keys"] == ["app:C00001", "app:C00009", "app:C00002"]
    assert len(store.case_docs) == 1 and store.customer_docs["CV"]["version"] == 3


async def test_a_placement_never_applied_is_waited_for_then_left_when_stale() -> None:
    store = FakeStore()
    await register(store, [submission(1, customer="CS", received=NOW - timedelta(days=3))])
    # a worker committed a new case for the customer and died before writing it
    store.customer_docs["CS"].update(
        version=2, pending=[{"kind": "new", "key": "web:X1", "case_id": "ghost"}], pending_at=NOW)
    store.customer_docs["CS"]["case_ids"].append("ghost")
    impatient = Settings(environment="test", customer_wait_s=0.2)
    with pytest.raises(RegistrationConflict):
        await _worker(store, [submission(2, customer="CS")], impatient)
    store.customer_docs["CS"]["pending_at"] = NOW - timedelta(seconds=SETTINGS.customer_claim_stale_s + 1)
    await _worker(store, [submission(2, customer="CS")], impatient)
    assert store.complaint_docs["app:C00002"]["case_id"] == case_id_for("app:C00001")
