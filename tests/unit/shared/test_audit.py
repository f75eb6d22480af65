"""The audit chain in memory: records chain by SHA-256, and verify finds every kind of tampering."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.audit import (
    GENESIS,
    AuditChain,
    Head,
    canonical_bytes,
    export,
    make_record,
    record_hash,
    verify,
)

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


class FakeStore:
    """A chain store in memory, with the unique ``_id`` of the real one."""

    def __init__(self, *, slow: bool = False) -> None:
        self.docs: dict[int, dict[str, Any]] = {}
        self.hint: Head | None = None
        self.slow = slow

    async def insert(self, record: dict[str, Any]) -> bool:
        if self.slow:
            await asyncio.sleep(0)  # let another writer in between the read of the head and the insert
        if record["_id"] in self.docs:
            return False
        self.docs[record["_id"]] = dict(record)
        return True

    async def get(self, seq: int) -> dict[str, Any] | None:
        if self.slow:
            await asyncio.sleep(0)
        doc = self.docs.get(seq)
        return dict(doc) if doc else None

    async def head_hint(self) -> Head | None:
        return self.hint

    async def set_head_hint(self, head: Head) -> None:
        if self.hint is None or head.seq > self.hint.seq:
            self.hint = head

    async def count(self) -> int:
        return len(self.docs)


async def chain_of(n: int) -> FakeStore:
    store = FakeStore()
    chain = AuditChain(store)
    for i in range(n):
        await chain.append(who=f"u{i % 3}", role="agent", action="POST /cases/{case_id}/offers",
                           case_id=f"K-{i % 4}", details={"status": 201, "n": i}, at=T0 + timedelta(minutes=i))
    return store


async def test_records_chain_from_genesis_and_verify_says_intact() -> None:
    store = await chain_of(10)
    assert [d["seq"] for d in store.docs.values()] == list(range(1, 11))
    assert store.docs[1]["prev"] == GENESIS
    for seq in range(2, 11):
        assert store.docs[seq]["prev"] == store.docs[seq - 1]["hash"]
        assert store.docs[seq]["hash"] == record_hash(store.docs[seq])
    report = await verify(store)
    assert report.intact and report.count == 10 and report.head == Head(10, store.docs[10]["hash"])
    assert str(report) == f"chain intact: 10 records, head {store.docs[10]['hash']}"
    assert str(await verify(FakeStore())) == f"chain intact: 0 records, head {GENESIS}"


def test_the_hash_covers_every_field_but_itself_in_canonical_json() -> None:
    rec = make_record(seq=1, prev=GENESIS, who="lead-1", role="team_lead", action="recusal", case_id="K-1",
                      details={"b": 1, "a": "回避"}, at=datetime(2026, 11, 1, 9, 0, 0, 123456, tzinfo=UTC))
    body = canonical_bytes(rec)
    assert body == ('{"action":"recusal","at":"2026-11-01T09:00:00.123Z","case_id":"K-1",'
                    '"details":{"a":"回避","b":1},"prev":"' + GENESIS + '","role":"team_lead","seq":1,'
                    '"who":"lead-1"}').encode()
    assert rec["at"].microsecond == 123000  # what BSON keeps, so the hash survives the round trip
    for field in ("seq", "at", "who", "role", "action", "case_id", "details", "prev"):
        changed = dict(rec)
        changed[field] = "x"
        assert record_hash(changed) != rec["hash"], field
    with pytest.raises(ValueError, match="float"):
        make_record(seq=1, prev=GENESIS, who="a", role="agent", action="x", details={"amount": 1.5})
    with pytest.raises(ValueError, match="at most"):
        make_record(seq=1, prev=GENESIS, who="a", role="agent", action="x", details={"t": "x" * 5000})
    with pytest.raises(ValueError, match="action"):
        make_record(seq=1, prev=GENESIS, who="a", role="agent", action=" ")


async def test_verify_names_an_edited_detail() -> None:
    store = await chain_of(10)
    store.docs[6]["details"]["status"] = 200
    report = await verify(store)
    assert not report.intact and report.broken is not None
    assert (report.broken.seq, report.broken.kind) == (6, "edited")
    assert str(report).startswith("chain broken at seq 6: record 6 was edited")


async def test_verify_names_a_removed_record_in_the_middle_and_at_the_end() -> None:
    store = await chain_of(10)
    del store.docs[4]
    report = await verify(store)
    assert report.broken is not None and (report.broken.seq, report.broken.kind) == (4, "removed")
    store = await chain_of(10)
    del store.docs[10], store.docs[9]  # the tail: only the head hint knows
    report = await verify(store)
    assert report.broken is not None and (report.broken.seq, report.broken.kind) == (9, "removed")
    store = await chain_of(10)
    del store.docs[5]
    store.hint = None  # without a hint, the count tells
    report = await verify(store)
    assert report.broken is not None and (report.broken.seq, report.broken.kind) == (5, "removed")


async def test_verify_names_a_swapped_pair() -> None:
    store = await chain_of(10)
    store.docs[3], store.docs[4] = store.docs[4], store.docs[3]
    report = await verify(store)
    assert report.broken is not None and (report.broken.seq, report.broken.kind) == (3, "reordered")
    # swapped and renumbered to fit their new places: the hashes no longer match
    store = await chain_of(10)
    a, b = store.docs[3], store.docs[4]
    store.docs[3], store.docs[4] = b | {"seq": 3, "_id": 3}, a | {"seq": 4, "_id": 4}
    report = await verify(store)
    assert report.broken is not None and (report.broken.seq, report.broken.kind) == (3, "edited")


async def test_verify_names_a_forged_hash_that_does_not_chain() -> None:
    store = await chain_of(10)
    forged = store.docs[5]
    forged["details"] = {"status": 403}
    forged["hash"] = record_hash(forged)  # consistent by itself
    report = await verify(store)
    assert report.broken is not None and (report.broken.seq, report.broken.kind) == (6, "unchained")
    assert "record 6 does not chain to record 5" in str(report)
    # the last record rewritten: only the recorded head disagrees
    store = await chain_of(10)
    store.docs[10]["who"] = "someone-else"
    store.docs[10]["hash"] = record_hash(store.docs[10])
    report = await verify(store)
    assert report.broken is not None and (report.broken.seq, report.broken.kind) == (10, "edited")
    # a whole new record 1 with a made-up prev
    store = await chain_of(3)
    store.docs[1]["prev"] = "f" * 64
    store.docs[1]["hash"] = record_hash(store.docs[1])
    report = await verify(store)
    assert report.broken is not None and (report.broken.seq, report.broken.kind) == (1, "unchained")


async def test_concurrent_writers_on_one_store_never_fork_the_chain() -> None:
    store = FakeStore(slow=True)
    one, two = AuditChain(store), AuditChain(store)  # two processes: each its own cached head

    async def write(chain: AuditChain, who: str) -> None:
        for i in range(20):
            await chain.append(who=who, role="agent", action="x", details={"i": i})

    await asyncio.gather(write(one, "p1"), write(two, "p2"), write(one, "p1b"))
    assert sorted(store.docs) == list(range(1, 61))
    report = await verify(store)
    assert report.intact and report.count == 60
    assert sum(1 for d in store.docs.values() if d["who"] == "p2") == 20


async def test_a_lagging_head_hint_is_probed_past() -> None:
    store = await chain_of(5)
    store.hint = Head(2, store.docs[2]["hash"])  # a crash between the insert and the hint
    record = await AuditChain(store).append(who="a", role="agent", action="x")
    assert record["seq"] == 6 and record["prev"] == store.docs[5]["hash"]
    assert (await verify(store)).intact


async def test_read_pages_by_seq_without_a_cap() -> None:
    store = await chain_of(25)
    chain = AuditChain(store)
    page, nxt = await chain.read(after=0, limit=10)
    assert [d["seq"] for d in page] == list(range(1, 11)) and nxt == 10
    page, nxt = await chain.read(after=20, limit=10)
    assert [d["seq"] for d in page] == list(range(21, 26)) and nxt is None
    page, nxt = await chain.read(after=15, limit=10)
    assert [d["seq"] for d in page] == list(range(16, 26)) and nxt is None


async def test_export_writes_the_period_and_the_head_and_refuses_a_broken_chain(tmp_path: Path) -> None:
    store = await chain_of(10)
    out = tmp_path / "audit.jsonl"
    report = await export(store, since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=6), out=str(out))
    assert report.intact
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in lines[:-1]] == [4, 5, 6]
    assert lines[-1] == {"head": store.docs[10]["hash"], "seq": 10}
    for line in lines[:-1]:  # a regulator can recompute each hash from the line alone
        assert record_hash(line) == line["hash"] and line["at"].endswith("Z")
    assert lines[1]["prev"] == lines[0]["hash"]
    store.docs[2]["action"] = "nothing to see"
    out2 = tmp_path / "broken.jsonl"
    report = await export(store, since=T0, until=T0 + timedelta(days=1), out=str(out2))
    assert report.broken is not None and report.broken.seq == 2
    assert sorted(os.listdir(tmp_path)) == ["audit.jsonl"]  # nothing of the broken one
