"""Investigation's batch handler with in-memory fakes: order within a case, replays, what it returns."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.investigation import handlers
from shared.errors import Conflict
from shared.outbox import Written
from shared.topics import decode
from tests.unit.investigation.fakes import (
    RECEIVED,
    FakeCategoriser,
    FakeRecords,
    FakeRepo,
    registered,
    simulated,
)
from tests.unit.investigation.test_handlers import NOW, REAL, SETTINGS


async def _batch(events: list[Any], repo: FakeRepo, backing: FakeRecords, cat: FakeCategoriser | None = None,
                 now: Any = NOW) -> list[Written]:
    return await handlers.on_registered_batch(events, repo=repo, records=simulated(backing),
                                              categorise=cat or FakeCategoriser(), settings=SETTINGS, now=now)


def _pending_ids(written: list[Written]) -> set[str]:
    return {event_id for w in written for event_id in (w.pending or {})}


async def test_a_batch_of_new_complaints_reads_nothing_classifies_once_and_returns_one_written_per_case() -> None:
    repo, backing, cat = FakeRepo(), FakeRecords(), FakeCategoriser("pricing_fees", 0.7)
    events = [registered(f"case-b{i}", text) for i, text in enumerate(REAL)]
    written = await _batch(events, repo, backing, cat)
    assert (repo.reads, cat.calls, cat.texts, backing.loads) == (0, 1, len(REAL), 0)
    assert sorted(w.doc_id for w in written) == sorted(e.case_id for e in events)
    assert all(w.collection is repo.investigations for w in written)
    for w in written:  # the pending outbox is what was written, ready to publish as it is
        items = sorted((w.pending or {}).values(), key=lambda it: it["order"])
        assert [i["key"] for i in items] == [w.doc_id] * len(items)
        assert [str(decode(i["topic"], i["value"].encode()).event_id) for i in items] == list(
            sorted(w.pending or {}, key=lambda k: (w.pending or {})[k]["order"]))
    assert len(repo.of_type("investigation.completed")) == len(REAL)


async def test_a_batch_finds_what_the_same_events_one_by_one_find() -> None:
    one_by_one, batched = FakeRepo(), FakeRepo()
    events = [registered(f"case-s{i}", text) for i, text in enumerate(REAL)]
    for env in events:
        await handlers.on_registered(env, repo=one_by_one, records=simulated(FakeRecords()),
                                     categorise=FakeCategoriser(), settings=SETTINGS, now=NOW)
    await _batch(events, batched, FakeRecords())
    assert {k: d["fingerprint"] for k, d in one_by_one.docs.items()} == {k: d["fingerprint"] for k, d in batched.docs.items()}


async def test_the_same_case_twice_in_a_batch_is_handled_in_order() -> None:
    repo, backing, cat = FakeRepo(), FakeRecords(), FakeCategoriser()
    first = registered("case-t", REAL[3], customer_id="ct")
    again = first  # Kafka redelivered it inside the same batch
    linked = registered("case-t", "补充：客服还是没回复", customer_id="ct", complaint_id="cmp-t2", role="linked")
    new_facts = registered("case-t", "催收一天打了二十多个电话", customer_id="ct", complaint_id="cmp-t3",
                           role="linked", new_facts=True)
    result = await handlers.investigate_batch([first, again, linked, new_facts], repo=repo, records=simulated(backing),
                                              categorise=cat, settings=SETTINGS, now=NOW)
    assert result.outcomes == ["investigated", "duplicate", "merged", "reinvestigated"]
    assert (cat.calls, cat.texts, backing.stores) == (1, 2, 1)  # both investigations in one call, records once
    done = [e.payload for e in repo.of_type("investigation.completed")]
    assert [(p.revision, p.complaint_ids) for p in done] == [
        (1, ["cmp-case-t"]), (2, ["cmp-case-t", "cmp-t2", "cmp-t3"])]
    assert "collection_frequency" in done[1].claims and "collection_frequency" not in done[0].claims
    doc = repo.docs["case-t"]
    assert doc["revision"] == 2 and doc["complaint_ids"] == ["cmp-case-t", "cmp-t2", "cmp-t3"]
    assert len(doc["texts"]) == 2
    [w] = result.written
    order = [decode(it["topic"], it["value"].encode()).payload.revision
             for it in sorted((w.pending or {}).values(), key=lambda it: it["order"])]
    assert order == [1, 2]  # published in the order they happened


async def test_replaying_a_batch_changes_nothing_and_publishes_nothing_new() -> None:
    repo, backing, cat = FakeRepo(), FakeRecords(), FakeCategoriser()
    events = [registered(f"case-r{i}", text) for i, text in enumerate(REAL)]
    events.append(registered("case-r0", "补充材料", complaint_id="cmp-r0b", role="linked"))
    first = await _batch(events, repo, backing, cat)
    docs, published, stores = {k: dict(v) for k, v in repo.docs.items()}, list(repo.events), backing.stores
    reads = repo.reads
    replay = await handlers.investigate_batch(events, repo=repo, records=simulated(backing), categorise=cat,
                                              settings=SETTINGS, now=NOW + timedelta(days=3))
    assert set(replay.outcomes) == {"duplicate"}
    assert repo.docs == docs and repo.events == published and backing.stores == stores
    # the linked complaint's case is read up front; the rest, taken as new, clash on insert and are
    # read once; nothing is written
    assert repo.reads - reads == 2 and cat.calls == 2
    # what is still in an outbox (nothing cleared it here) is handed back to be relayed: the same events
    assert _pending_ids(replay.written) == _pending_ids(first)


async def test_a_merge_onto_a_stored_case_adds_the_complaint_and_no_event() -> None:
    repo, backing = FakeRepo(), FakeRecords()
    await _batch([registered("case-m", REAL[2], customer_id="cm")], repo, backing)
    for doc in repo.docs.values():
        doc["outbox"] = {}  # relayed meanwhile
    events = len(repo.events)
    written = await _batch([registered("case-m", "再补充", customer_id="cm", complaint_id="cmp-m2", role="linked")],
                           repo, backing)
    assert written == [] and len(repo.events) == events
    assert repo.docs["case-m"]["complaint_ids"] == ["cmp-case-m", "cmp-m2"]


async def test_a_lost_race_on_a_reinvestigation_is_a_retriable_conflict_after_the_rest_is_written() -> None:
    class Racing(FakeRepo):
        async def replace(self, doc: dict[str, Any], expected: dict[str, Any], events: Any) -> bool:
            self.docs[doc["_id"]]["revision"] += 1  # another writer got there first
            return await super().replace(doc, expected, events)

    repo, backing = Racing(), FakeRecords()
    await _batch([registered("case-c", REAL[1], customer_id="cc")], repo, backing)
    batch = [registered("case-c", "又打电话了", customer_id="cc", complaint_id="cmp-c2", new_facts=True),
             registered("case-c2", REAL[2])]
    with pytest.raises(Conflict) as raised:
        await _batch(batch, repo, backing)
    assert raised.value.retriable
    assert "case-c2" in repo.docs  # the rest of the batch was written


async def test_the_sweep_returns_what_it_finished() -> None:
    repo, backing = FakeRepo(), FakeRecords()
    await _batch([registered("case-p", "本人从未申请过这笔贷款，身份被冒用，却被上了征信")], repo, backing,
                 FakeCategoriser("other", 0.7))
    assert repo.docs["case-p"]["status"] == "paused"
    kwargs: dict[str, Any] = {"repo": repo, "records": simulated(backing), "categorise": FakeCategoriser("other", 0.7),
                              "settings": SETTINGS}
    assert await handlers.sweep_paused(now=NOW, **kwargs) == []
    assert kwargs["categorise"].texts == 0, "a case still waiting for its appraisal is not classified again"
    [w] = await handlers.sweep_paused(now=RECEIVED + timedelta(days=20), **kwargs)
    assert kwargs["categorise"].texts == 1
    assert w.doc_id == "case-p" and w.collection is repo.investigations
    topics = {it["topic"] for it in (w.pending or {}).values()}
    assert {"investigation.paused", "investigation.completed"} <= topics
    assert repo.docs["case-p"]["status"] == "completed"
    assert await handlers.sweep_paused(now=RECEIVED + timedelta(days=21), **kwargs) == []
