"""The hot paths read by ``_id`` (issue 8): the per-customer and per-agent documents that
``Repository.save`` keeps, on the real database.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.negotiation import fairness
from services.negotiation.models import Workspace
from services.negotiation.repository import Repository
from shared.mongo import service_database
from shared.settings import CommonSettings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def _repo(settings: CommonSettings, client: Any) -> Repository:
    repo = Repository(service_database(client, settings.mongo, "negotiation"))
    await repo.ensure_indexes()
    return repo


async def test_a_customers_cases_are_found_by_key_even_when_saved_at_once(
    settings: CommonSettings, mongo_client: Any
) -> None:
    repo = await _repo(settings, mongo_client)
    cases = [Workspace(case_id=f"K{i}", case_number=f"TS-{i}", status="open", customer_id="c1",
                       opened_at=NOW + timedelta(minutes=i)) for i in range(6)]
    # six writers, each its own repository (own cache), as separate processes would be
    writers = [Repository(repo.db) for _ in cases]
    await asyncio.gather(*(w.save(ws, 0, []) for w, ws in zip(writers, cases, strict=True)))
    await repo.save(Workspace(case_id="OTHER", customer_id="c2", status="open"), 0, [])
    found = await repo.customer_cases("c1")
    assert [w.case_id for w in found] == ["K5", "K4", "K3", "K2", "K1", "K0"], "all linked, newest first"
    assert [w.case_id for w in await repo.customer_cases("c1", exclude="K5")][:1] == ["K4"]
    assert await repo.customer_cases("nobody") == []
    doc = await repo.customers.find_one({"_id": "c1"})
    assert sorted(doc["case_ids"]) == [f"K{i}" for i in range(6)]


async def test_agent_load_follows_assignment_and_closing(settings: CommonSettings, mongo_client: Any) -> None:
    repo = await _repo(settings, mongo_client)
    ws = await repo.save(Workspace(case_id="L1", status="open", assigned_agent="a1"), 0, [])
    await repo.save(Workspace(case_id="L2", status="open", assigned_agent="a1"), 0, [])
    assert (await repo.load("a1"), await repo.load("a2")) == (2, 0)
    ws = await repo.save(ws.model_copy(update={"assigned_agent": "a2"}), ws.version, [])
    assert (await repo.load("a1"), await repo.load("a2")) == (1, 1)
    await repo.save(ws.model_copy(update={"status": "agreed"}), ws.version, [])
    assert (await repo.load("a1"), await repo.load("a2")) == (1, 0)


async def test_cases_stored_before_the_keyed_documents_are_backfilled_once(
    settings: CommonSettings, mongo_client: Any
) -> None:
    db = service_database(mongo_client, settings.mongo, "negotiation")
    await db["cases"].insert_many([
        {"_id": "OLD1", "case_number": "TS-O1", "status": "open", "customer_id": "c9", "assigned_agent": "a9",
         "version": 3},
        {"_id": "OLD2", "case_number": "TS-O2", "status": "agreed", "customer_id": "c9", "assigned_agent": "a9",
         "version": 7},
    ])
    repo = await _repo(settings, mongo_client)
    assert sorted(w.case_id for w in await repo.customer_cases("c9")) == ["OLD1", "OLD2"]
    assert await repo.load("a9") == 1
    old = await repo.get("OLD1")
    assert old is not None
    await repo.save(old.model_copy(update={"status": "escalated"}), old.version, [])
    assert await repo.load("a9") == 0, "a case stored without load_holder leaves its agent's load"


async def test_reference_settlements_are_added_once_by_key(settings: CommonSettings, mongo_client: Any) -> None:
    repo = await _repo(settings, mongo_client)
    ref = {"ref_id": "case-K1.x", "source": "agreed", "case_id": "K1.x", "category": "pricing_fees",
           "band": "1k-5k", "hardship": False, "relief_bp": 1000}
    await repo.add_ref(ref)
    await repo.add_ref(ref)
    assert await repo.refs.count_documents({"ref_id": "case-K1.x"}) == 1
    assert await repo.peer_pcts({"category": "pricing_fees", "band": "1k-5k", "hardship": False}) == [Decimal("10")]


async def test_fairness_peers_are_read_by_cell_and_match_the_reference_set(
    settings: CommonSettings, mongo_client: Any
) -> None:
    repo = await _repo(settings, mongo_client)
    seeds = list(fairness.seed_reference(fairness.FALLBACK_RELIEF, 3))
    assert await repo.seed_refs(seeds) == len(seeds)
    assert await repo.seed_refs(seeds) == 0
    await asyncio.gather(*(repo.add_ref({
        "ref_id": f"case-A{i}", "source": "agreed", "case_id": f"A{i}", "category": "marketing",
        "band": "lt1k", "hardship": True, "relief_bp": 100 * i}) for i in range(5)))
    everything = [d async for d in repo.refs.find({}, {"_id": 0})]
    for scope in fairness.Cell("marketing", "lt1k", True).widening():
        expected = sorted(Decimal(d["relief_bp"]) / 100 for d in everything
                          if all(d[k] == v for k, v in scope.items()))
        assert sorted(await repo.peer_pcts(scope)) == expected, scope
