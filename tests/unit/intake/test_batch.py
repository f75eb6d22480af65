"""register_batch and CaseNumbers on an in-memory store: placement within a batch, duplicates,
repeats, redelivery, crash recovery and block allocation (the real server: tests/integration)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.errors import RegistrationConflict
from services.intake.handlers import case_id_for, register_batch
from services.intake.repository import CaseNumbers, Commit, KeyedLocks
from services.intake.settings import Settings
from shared.clock import due
from shared.contracts.intake import ComplaintSubmission

Doc = dict[str, Any]
NOW = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
SETTINGS = Settings(environment="test")


class FakeStore:
    """The repository methods register_batch and CaseNumbers use, over dictionaries."""

    def __init__(self) -> None:
        self.personal: dict[str, Doc] = {}
        self.complaint_docs: dict[str, Doc] = {}
        self.customer_docs: dict[str, Doc] = {}
        self.case_docs: dict[str, Doc] = {}
        self.blocks: dict[str, Doc] = {}
        self.hints: dict[str, int] = {}
        self.complaints: Any = "complaints"  # what Written names as the collection
        self.customer_locks = KeyedLocks()
        self.fail_complaint_insert = False
        self.claims: dict[str, Doc] = {}
        self.conflicts: dict[str, Doc] = {}

    @staticmethod
    def _insert(into: dict[str, Doc], docs: Iterable[Doc], unique: str | None = None) -> set[Any]:
        refused = set()
        for doc in docs:
            taken = unique is not None and any(d[unique] == doc[unique] for d in into.values())
            if doc["_id"] in into or taken:
                refused.add(doc["_id"])
            else:
                into[doc["_id"]] = copy.deepcopy(doc)
        return refused

    async def store_personal_data_batch(self, data: dict[str, Doc],
                                        fingerprints: dict[str, Doc] | None = None) -> set[str]:
        extra = fingerprints or {}
        return self._insert(self.personal, [{"_id": k, "data": d, **extra.get(k, {})} for k, d in data.items()])

    async def personal_fingerprints(self, keys: Iterable[str]) -> dict[str, Doc]:
        return {k: copy.deepcopy(self.personal[k]) for k in keys if k in self.personal}

    async def record_conflicts(self, docs: list[Doc]) -> None:
        self._insert(self.conflicts, docs)

    async def find_complaints(self, keys: Iterable[str]) -> dict[str, Doc]:
        return {k: copy.deepcopy(self.complaint_docs[k]) for k in keys if k in self.complaint_docs}

    async def insert_complaints(self, docs: list[Doc]) -> set[str]:
        if self.fail_complaint_insert:
            self.fail_complaint_insert = False
            raise ConnectionError("the process died here")
        return self._insert(self.complaint_docs, docs)

    async def insert_customer_indexes(self, docs: list[Doc]) -> set[str]:
        return self._insert(self.customer_docs, docs)

    async def customer_indexes(self, ids: Iterable[str]) -> dict[str, Doc]:
        return {i: copy.deepcopy(self.customer_docs.get(i, {})) for i in ids}

    async def claim_customers(self, versions: dict[str, int], *, stale_after: timedelta) -> set[str]:
        return {cid for cid, v in versions.items()
                if not self._insert(self.claims, [{"_id": f"{cid}#{v + 1}"}])}

    async def commit_customers(self, commits: dict[str, Commit]) -> set[str]:
        failed = set()
        for cid, c in commits.items():
            doc = self.customer_docs.get(cid)
            if not c.exists:
                if doc is not None:
                    failed.add(cid)
                    continue
                doc = self.customer_docs[cid] = {"_id": cid, "version": 0, "case_ids": [], "placements": []}
            elif doc is None or doc.get("version", 0) != c.version:
                failed.add(cid)
                continue
            doc["version"] = c.version + 1
            doc["pending"], doc["pending_at"] = copy.deepcopy(c.pending), c.at
            doc["case_ids"] += [i for i in c.case_ids if i not in doc["case_ids"]]
            doc["placements"] += [p for p in c.placements if p not in doc["placements"]]
        return failed

    async def cases_by_ids(self, ids: Iterable[str]) -> dict[str, Doc]:
        return {i: copy.deepcopy(self.case_docs[i]) for i in ids if i in self.case_docs}

    async def insert_cases(self, docs: list[Doc]) -> set[str]:
        return self._insert(self.case_docs, docs, unique="case_number")

    async def link_complaints(self, links: list[tuple[str, list[str], Doc]]) -> list[str]:
        failed = []
        for case_id, keys, update in links:
            case = self.case_docs.get(case_id)
            if case is None or case["status"] != "open" or set(keys) & set(case["complaint_keys"]):
                failed.append(case_id)
                continue
            for name, value in update["$push"].items():
                case[name] += copy.deepcopy(value["$each"])
            for name, value in update["$addToSet"].items():
                case[name] += [v for v in value["$each"] if v not in case[name]]
            case.update(copy.deepcopy(update["$set"]))
        return failed

    async def claim_number_block(self, series: str, start: int, size: int, owner: str) -> bool:
        block_id = f"{series}-{start:06d}"
        if block_id in self.blocks:
            return False
        self.blocks[block_id] = {"_id": block_id, "start": start, "size": size, "owner": owner}
        await asyncio.sleep(0)  # let another allocator run in between
        return True

    async def number_block(self, series: str, start: int) -> Doc | None:
        return self.blocks.get(f"{series}-{start:06d}")

    async def number_hint(self, series: str) -> int:
        return self.hints.get(series, 0)

    async def raise_number_hint(self, series: str, at_least: int) -> None:
        self.hints[series] = max(self.hints.get(series, 0), at_least)

    def close(self, case_id: str, at: datetime) -> None:
        self.case_docs[case_id].update(status="closed", closed_at=at)


def submission(n: int, *, customer: str | None = None, received: datetime | None = None,
               **extra: Any) -> ComplaintSubmission:
    body: dict[str, Any] = {
        "channel_complaint_id": f"C{n:05d}", "channel": "app",
        "received_at": (received or NOW - timedelta(hours=1)).isoformat(),
        "customer": {"customer_id": customer or f"CU{n:05d}", "name": "张小明", "phone": "13912345678"},
        "product": "credit_card",
        "text": "信用卡年费在没有告知的情况下被扣了600元，客服说无法退还。",
        "amount_disputed": "600.00",
    }
    body.update(extra)
    return ComplaintSubmission.model_validate(body)


async def register(store: FakeStore, items: list[ComplaintSubmission], numbers: CaseNumbers | None = None,
                   now: datetime = NOW) -> list[Any]:
    return await register_batch(items, repo=store, settings=SETTINGS,
                                numbers=numbers or CaseNumbers(store), clock=lambda: now)


async def test_a_batch_registers_every_complaint_once_with_unique_numbers() -> None:
    store = FakeStore()
    written = await register(store, [submission(i) for i in range(40)])
    assert sorted(w.doc_id for w in written) == sorted(f"app:C{i:05d}" for i in range(40))
    assert all(w.pending and len(w.pending) == 2 for w in written)
    numbers = [c["case_number"] for c in store.case_docs.values()]
    assert len(numbers) == 40 and len(set(numbers)) == 40
    assert sorted(numbers)[0].endswith("-000001") and sorted(numbers)[-1].endswith("-000040")
    assert {r["role"] for r in store.complaint_docs.values()} == {"new_case"}
    assert all(store.customer_docs[f"CU{i:05d}"]["case_ids"] == [case_id_for(f"app:C{i:05d}")]
               for i in range(40))


async def test_two_complaints_of_one_customer_in_one_batch_see_each_other() -> None:
    store = FakeStore()
    first = submission(1, customer="CX", received=NOW - timedelta(days=2))
    later = submission(2, customer="CX", received=NOW - timedelta(days=1),
                       text="后来他们还把我的逾期记录报送了征信，可我从未逾期过。", channel="hotline")
    other = submission(3, customer="CX", product="consumer_loan")
    await register(store, [first, later, other])
    assert len(store.case_docs) == 2  # the loan complaint is a different matter
    case = store.case_docs[case_id_for("app:C00001")]
    assert case["complaint_keys"] == ["app:C00001", "hotline:C00002"]
    assert [c["role"] for c in case["complaints"]] == ["new_case", "linked"]
    assert case["channels"] == ["app", "hotline"]
    assert [t["what"] for t in case["timeline"]] == ["registered", "clock_restarted"]
    # the restarted clock: 24:00 Beijing on D + 15 of the later complaint (shared.clock)
    assert case["deadline_at"] == due(later.received_at, 15).due_at
    assert case["deadline_tier"] == 15 and case["deadline_provisional"] is False
    records = store.complaint_docs
    assert records["hotline:C00002"]["case_id"] == case["_id"]
    assert records["hotline:C00002"]["case_number"] == case["case_number"]
    assert records["hotline:C00002"]["clock_restarted"] is True
    # each complaint's record keeps the deadline as it stood when that complaint was placed
    assert records["app:C00001"]["deadline_at"] == due(first.received_at, 15).due_at
    assert store.customer_docs["CX"]["case_ids"] == [case["_id"], case_id_for("app:C00003")]


async def test_a_key_twice_in_a_batch_is_registered_once() -> None:
    store = FakeStore()
    written = await register(store, [submission(7), submission(8), submission(7)])
    assert [w.doc_id for w in written] == ["app:C00007", "app:C00008"]
    assert len(store.case_docs) == 2 and len(store.complaint_docs) == 2


async def test_redelivered_batch_changes_nothing() -> None:
    store = FakeStore()
    batch = [submission(i, customer=f"CU{i % 3}") for i in range(9)]
    await register(store, batch)
    cases, records = copy.deepcopy(store.case_docs), copy.deepcopy(store.complaint_docs)
    again = await register(store, batch, now=NOW + timedelta(minutes=5))
    # nothing new is written; the still-pending outboxes are handed back to be published
    assert {w.doc_id for w in again} == {s.key() for s in batch}
    assert all(w.pending is None for w in again)
    assert store.case_docs == cases and store.complaint_docs == records
    for record in store.complaint_docs.values():
        record["outbox_pending"] = False  # published meanwhile
    assert await register(store, batch) == []


async def test_repeat_of_a_closed_case_opens_a_linked_case() -> None:
    store = FakeStore()
    await register(store, [submission(1, customer="CR", received=NOW - timedelta(days=60))],
                   now=NOW - timedelta(days=60))
    old_id = case_id_for("app:C00001")
    store.close(old_id, NOW - timedelta(days=20))
    # later: the same matter again (a known customer, read from the store), twice in one batch
    await register(store, [submission(2, customer="CR"), submission(3, customer="CR")])
    repeat = store.case_docs[case_id_for("app:C00002")]
    assert repeat["is_repeat"] and repeat["linked_case_ids"] == [old_id]
    assert repeat["repeat_of_number"] == store.case_docs[old_id]["case_number"]
    assert "repeat_complaint" in repeat["priority_reasons"]
    assert store.complaint_docs["app:C00002"]["role"] == "repeat"
    # the second complaint joins the new (open) case, not the closed one
    assert store.complaint_docs["app:C00003"]["case_id"] == repeat["_id"]
    assert store.complaint_docs["app:C00003"]["role"] == "linked"
    assert store.case_docs[old_id]["complaint_keys"] == ["app:C00001"]


async def test_linking_to_an_open_case_of_an_earlier_batch() -> None:
    store = FakeStore()
    await register(store, [submission(1, customer="CL", received=NOW - timedelta(days=3))])
    case_id = case_id_for("app:C00001")
    await register(store, [submission(2, customer="CL", received=NOW - timedelta(days=1))])
    case = store.case_docs[case_id]
    assert case["complaint_keys"] == ["app:C00001", "app:C00002"]
    assert [t["what"] for t in case["timeline"]] == ["registered", "merged"]
    assert len(store.case_docs) == 1
    assert store.customer_docs["CL"]["placements"] == [{"key": "app:C00002", "case_id": case_id}]


async def test_a_crash_before_the_records_converges_on_redelivery() -> None:
    store = FakeStore()
    numbers = CaseNumbers(store)
    batch = [submission(1, customer="CC", received=NOW - timedelta(days=2)),
             submission(2, customer="CC", received=NOW - timedelta(days=1)), submission(3)]
    store.fail_complaint_insert = True
    with pytest.raises(ConnectionError):
        await register(store, batch, numbers)
    cases = copy.deepcopy(store.case_docs)
    assert len(cases) == 2 and not store.complaint_docs
    written = await register(store, batch, CaseNumbers(store))  # a new process
    assert {w.doc_id for w in written} == {s.key() for s in batch}
    assert store.case_docs == cases, "the retry reuses the cases (and numbers) it found"
    assert store.complaint_docs["app:C00002"]["role"] == "linked"
    assert {r["case_number"] for r in store.complaint_docs.values()} == {c["case_number"] for c in cases.values()}


async def test_a_case_closed_while_linking_makes_the_batch_retry() -> None:
    store = FakeStore()
    await register(store, [submission(1, customer="CZ", received=NOW - timedelta(days=3))])
    original = store.link_complaints

    async def closed_meanwhile(links: list[tuple[str, list[str], Doc]]) -> list[str]:
        store.close(links[0][0], NOW)
        return await original(links)

    store.link_complaints = closed_meanwhile  # type: ignore[method-assign]
    with pytest.raises(RegistrationConflict):
        await register(store, [submission(2, customer="CZ")])
    store.link_complaints = original  # type: ignore[method-assign]
    await register(store, [submission(2, customer="CZ")])
    assert store.complaint_docs["app:C00002"]["role"] == "repeat"


async def test_two_allocators_never_hand_out_a_number_twice() -> None:
    store = FakeStore()
    a, b = CaseNumbers(store, owner="a"), CaseNumbers(store, owner="b")
    taken = await asyncio.gather(*(n.take("TS", "20261129", k) for k in (1, 3, 2, 5, 1, 4) for n in (a, b)))
    flat = [x for part in taken for x in part]
    assert len(flat) == len(set(flat)) == 32
    assert sorted(int(x[-6:]) for x in flat) == list(range(1, 33)), "no gaps while nobody died"
    # a third allocator starting later begins after the hint, without walking the chain
    c = CaseNumbers(store, owner="c")
    assert await c.take("TS", "20261129", 1) == ["TS-20261129-000033"]
    # a new day starts again at 1
    assert await a.take("TS", "20261130", 2) == ["TS-20261130-000001", "TS-20261130-000002"]


async def test_numbers_given_back_are_handed_out_again() -> None:
    store = FakeStore()
    numbers = CaseNumbers(store)
    first = await numbers.take("TS", "20261129", 3)
    numbers.give_back(first[1:])
    assert await numbers.take("TS", "20261129", 3) == [*first[1:], "TS-20261129-000004"]
