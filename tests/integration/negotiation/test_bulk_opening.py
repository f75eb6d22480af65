"""Negotiation takes its two busiest streams a batch at a time (issue 8): a batch of
``complaint.registered`` is one bulk insert, a batch of ``investigation.completed`` one read
per case and bulk writes, on the real database; what the bulk write cannot take goes the
one-by-one way and ends the same.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.negotiation import app
from services.negotiation.api.deps import Deps
from services.negotiation.models import AgentProfile, Workspace
from services.negotiation.repository import Repository
from shared.contracts.common import Category
from shared.contracts.envelope import Envelope
from shared.contracts.negotiation import NegotiationStarted
from shared.mongo import service_database
from shared.outbox import Written, batch_token, publish_written
from shared.settings import CommonSettings
from shared.topics import decode
from tests.integration.negotiation.support import completed, registered, service_settings

pytestmark = pytest.mark.integration


async def _deps(settings: CommonSettings, client: Any) -> tuple[Deps, Repository]:
    repo = Repository(service_database(client, settings.mongo, "negotiation"))
    await repo.ensure_indexes()
    return Deps(service_settings(settings), repo), repo


def _completed(case_id: str, category: Category = Category.PRICING_FEES) -> Any:
    return decode("investigation.completed", completed(case_id, category=category))


async def test_a_batch_of_registrations_is_written_at_once_and_each_case_as_one_by_one(
    settings: CommonSettings, mongo_client: Any
) -> None:
    deps, repo = await _deps(settings, mongo_client)
    # one case investigation reached first (the workspace exists: the insert is refused)
    with batch_token():
        await app.on_completed(deps, [_completed("B-early")])
    batch = [registered(f"B{i}", f"cust-{i % 25}") for i in range(60)]
    batch += [registered("B-early", "cust-early"), batch[3]]  # B3's event twice in one batch
    with batch_token():
        await app.on_registered(deps, batch)
    for i in range(60):
        ws = await repo.get(f"B{i}")
        assert ws is not None and ws.customer_id == f"cust-{i % 25}" and ws.status == "awaiting_investigation"
        assert ws.case_number == f"TS-B{i}" and ws.complaint_text and ws.deadline_at is not None
        assert ws.version == 1, "written once (B3's second copy changes nothing)"
    early = await repo.get("B-early")
    assert early is not None and early.status == "open" and early.customer_id == "cust-early", "merged, not replaced"
    # every case linked to its customer, two or three cases per customer, none lost
    for c in range(25):
        doc = await repo.customers.find_one({"_id": f"cust-{c}"})
        assert sorted(doc["case_ids"]) == sorted(f"B{i}" for i in range(60) if i % 25 == c)
    assert [w.case_id for w in await repo.customer_cases("cust-early")] == ["B-early"]
    # a redelivery of the whole batch changes nothing
    versions = {f"B{i}": (await repo.get(f"B{i}")).version for i in range(60)}  # type: ignore[union-attr]
    with batch_token():
        await app.on_registered(deps, batch)
    assert {f"B{i}": (await repo.get(f"B{i}")).version for i in range(60)} == versions  # type: ignore[union-attr]


async def test_a_batch_of_findings_opens_and_spreads_the_cases_over_the_agents(
    settings: CommonSettings, mongo_client: Any
) -> None:
    deps, repo = await _deps(settings, mongo_client)
    for agent in ("a1", "a2", "a3"):
        await repo.put_agent(AgentProfile(agent_id=agent, team="t1", max_load=20))
    ids = [f"O{i}" for i in range(45)]
    with batch_token():
        await app.on_registered(deps, [registered(c, f"cust-{c}") for c in ids])
    # a writer that claimed O7's next version and died: the bulk write leaves O7 to the
    # one-by-one way, which waits the claim out (tests/integration/negotiation/test_dead_writer_claim.py)
    before = await repo.get("O7")
    assert before is not None
    await repo.claims.insert_one({"_id": f"O7#{before.version + 1}", "at": datetime(2020, 1, 1, tzinfo=UTC)})
    events = [_completed(c) for c in ids]
    with batch_token():
        written = await app.on_completed(deps, events)
    assert sorted(w.doc_id for w in written) == sorted(ids), "each case written once, O7 included"
    # the workspaces existed (registered first) and were read with their outboxes: each one
    # written in bulk is handed over with its whole outbox as stored (no read back; it may hold
    # more than this write's events: test_an_opening_publishes_what_a_dead_writer_left)
    for w in written:
        if w.doc_id != "O7":
            stored = await repo.cases.find_one({"_id": w.doc_id}, {"outbox": 1})
            assert w.pending is not None and set(w.pending) == set(stored["outbox"]), w.doc_id
    loads = {}
    for case_id in ids:
        ws = await repo.get(case_id)
        assert ws is not None and ws.status == "open" and ws.assigned_agent in ("a1", "a2", "a3")
        assert ws.category == "pricing_fees" and ws.version == before.version + 1
        loads[ws.assigned_agent] = loads.get(ws.assigned_agent, 0) + 1
    assert sorted(loads.values()) == [15, 15, 15], f"spread by load within the batch: {loads}"
    assert {a: await repo.load(a) for a in ("a1", "a2", "a3")} == loads, "the agents' load documents agree"
    # the outbox holds negotiation.started for each case until published
    doc = await repo.cases.find_one({"_id": "O3"})
    assert [item["topic"] for item in doc["outbox"].values()].count("negotiation.started") == 1
    # a redelivery opens nothing again and assigns nothing again
    with batch_token():
        again = await app.on_completed(deps, events)
    assert again == []
    assert {a: await repo.load(a) for a in ("a1", "a2", "a3")} == loads
    assert {c: ws.version for c, ws in (await repo.get_many(ids)).items()} == dict.fromkeys(ids, before.version + 1)


async def test_a_bulk_write_that_loses_a_race_owes_nothing_for_it(settings: CommonSettings, mongo_client: Any) -> None:
    """A workspace another writer created (or moved on) between the read and the bulk write:
    it is left to the caller, and the events the lost write owed are not handed over for
    publishing (the one-by-one retry makes its own): no second ``negotiation.started``."""
    deps, repo = await _deps(settings, mongo_client)
    reg = registered("R1", "cust-R1")
    await repo.save(Workspace(case_id="R1", customer_id="cust-R1"), 0, [])  # the other writer
    await repo.save(Workspace(case_id="R2", customer_id="cust-R2"), 0, [])
    moved = await repo.get("R2")
    assert moved is not None
    await repo.save(moved, moved.version, [])  # R2 moved on since "we" read it
    events = [Envelope.wrap(NegotiationStarted(case_number="TS-R", agent_id=None, team="default"),
                            case_id=c, producer="negotiation", cause=reg) for c in ("R1", "R2", "R3")]
    outboxes, stale = await repo.save_many([
        (None, Workspace(case_id="R1", customer_id="cust-R1", status="open"), [events[0]]),
        (moved, moved.model_copy(update={"status": "open"}), [events[1]]),
        (None, Workspace(case_id="R3", customer_id="cust-R3", status="open"), [events[2]]),
    ])
    assert stale == {"R1", "R2"}
    assert list(outboxes) == ["R3"] and list(outboxes["R3"]) == [str(events[2].event_id)]
    r1, r2 = await repo.get("R1"), await repo.get("R2")
    assert r1 is not None and r1.status == "awaiting_investigation" and r1.version == 1, "the other writer's stands"
    assert r2 is not None and r2.status == "awaiting_investigation" and r2.version == moved.version + 1
    assert (await repo.cases.find_one({"_id": "R1"}))["outbox"] == {}


async def _left_by_a_dead_writer(deps: Deps, repo: Repository, case_id: str) -> tuple[Any, Workspace, Envelope[Any]]:
    """Register ``case_id``, then save an event in its outbox as a worker killed before its relay
    leaves it; return the registration, the workspace as saved and the left event."""
    reg = registered(case_id, f"cust-{case_id}")
    with batch_token():
        await app.on_registered(deps, [reg])
    ws = await repo.get(case_id)
    assert ws is not None
    left = Envelope.wrap(NegotiationStarted(case_number=f"TS-{case_id}", agent_id=None, team="default"),
                         case_id=case_id, producer="negotiation", cause=reg)
    return reg, await repo.save(ws, ws.version, [left]), left


async def test_an_opening_publishes_what_a_dead_writer_left(settings: CommonSettings, mongo_client: Any) -> None:
    """A workspace whose outbox still holds an event a killed worker wrote but never published
    (its progress notice, say) is opened by a bulk write: publishing the opening sends that
    event too before the flag is cleared; it is not stranded in an outbox no sweep looks at."""
    deps, repo = await _deps(settings, mongo_client)
    _, _, left = await _left_by_a_dead_writer(deps, repo, "L1")
    with batch_token():
        written = await app.on_completed(deps, [_completed("L1")])
    # handed over as read with the workspace (no read back): the left event and the opening's
    mine = [w for w in written if w is not None and w.doc_id == "L1"]
    assert len(mine) == 1 and mine[0].pending is not None and str(left.event_id) in mine[0].pending
    assert len(mine[0].pending) == 2
    sent: list[tuple[str, str]] = []

    async def send(topic: str, key: bytes, value: bytes) -> None:
        sent.append((topic, json.loads(value)["event_id"]))

    assert await publish_written(written, send) == 2
    assert (left.event_type, str(left.event_id)) in sent and len(sent) == 2, sent
    doc = await repo.cases.find_one({"_id": "L1"})
    assert doc is not None and doc["status"] == "open"
    assert doc["outbox"] == {} and doc["outbox_pending"] is False


async def test_a_bulk_write_of_a_workspace_it_did_not_read_has_its_outbox_read_back(
    settings: CommonSettings, mongo_client: Any
) -> None:
    """``save_many`` hands over a changed workspace's outbox only when its own ``get_many`` read
    that version (what an earlier writer left is then known); a workspace read elsewhere (here:
    by another repository, as another worker) gets None, and the publisher reads the outbox,
    so the left event still goes out."""
    deps, repo = await _deps(settings, mongo_client)
    reg, ws, left = await _left_by_a_dead_writer(deps, repo, "K1")
    read = (await Repository(repo.db).get_many(["K1"]))["K1"]  # another worker's read
    assert read.version == ws.version
    mine = Envelope.wrap(NegotiationStarted(case_number="TS-K1", agent_id="a1", team="default"),
                         case_id="K1", producer="negotiation", cause=reg)
    outboxes, stale = await repo.save_many([(read, read.model_copy(update={"status": "open"}), [mine])])
    assert stale == set() and outboxes == {"K1": None}
    written = [Written(repo.cases, "K1", outboxes["K1"])]
    sent: list[str] = []

    async def send(topic: str, key: bytes, value: bytes) -> None:
        sent.append(json.loads(value)["event_id"])

    assert await publish_written(written, send) == 2
    assert sorted(sent) == sorted([str(left.event_id), str(mine.event_id)])
    doc = await repo.cases.find_one({"_id": "K1"})
    assert doc is not None and doc["outbox"] == {} and doc["outbox_pending"] is False
