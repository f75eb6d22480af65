"""Records in their stored form (``records.normalise``), walked once per customer."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from services.investigation import records
from services.investigation.claims import read_claims
from services.investigation.ports import RecordsRequest
from services.investigation.records import (
    CoreRecords,
    SimulatedCoreSystems,
    normalise,
    product_of,
    synthesize,
)
from tests.unit.investigation.fakes import FakeRecords

TEXT = "催收一天打二十个电话，凌晨还打给我父母，威胁上门；借款10000元每月还款1200元12期，还收了会员费。"
RECEIVED = datetime(2026, 11, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _raw(customer_id: str = "CUST-N1", case_id: str = "CASE-N1") -> CoreRecords:
    return synthesize(customer_id=customer_id, case_id=case_id, claims=read_claims(TEXT),
                      product=product_of(TEXT, None), received_at=RECEIVED)


class Colour(StrEnum):
    RED = "red"


def test_the_stored_form_of_every_kind_of_value() -> None:
    beijing = timezone(timedelta(hours=8))
    at = datetime(2026, 11, 2, 9, 30, 1, 123456, tzinfo=beijing)
    r = CoreRecords(accounts=[
        {"_id": "b", "customer_id": "C", "at": at, "n": 3, "x": 1.5, "ok": True, "none": None, "colour": Colour.RED,
         "nested": [{"at": at, "list": [at, "s"]}], "map": {"at": at}},
        {"_id": "a", "customer_id": "C"},
    ])
    out = normalise(r)
    assert [d["_id"] for d in out.accounts] == ["a", "b"]
    doc = out.accounts[1]
    want = datetime(2026, 11, 2, 1, 30, 1, 123000, tzinfo=UTC)
    assert doc["at"] == want and doc["at"].tzinfo is UTC
    assert doc["nested"] == [{"at": want, "list": [want, "s"]}] and doc["map"] == {"at": want}
    assert doc["nested"][0]["list"][0].tzinfo is UTC
    assert (doc["n"], doc["x"], doc["ok"], doc["none"], doc["colour"]) == (3, 1.5, True, None, Colour.RED)
    assert r.accounts[0]["at"] is at  # the input is not changed


def test_normalised_records_are_not_walked_again(monkeypatch: Any) -> None:
    raw = _raw()
    once = normalise(raw)
    assert once.normalised and not raw.normalised
    assert once == normalise(copy.deepcopy(raw))
    walked: list[Any] = []
    real = records._stored
    monkeypatch.setattr(records, "_stored", lambda v: walked.append(v) or real(v))
    assert normalise(once) is once and not walked
    # records not made by normalise (read from a store, built by hand) are walked
    from_store = CoreRecords(**{name: copy.deepcopy(docs) for name, docs in raw.items()})
    assert not from_store.normalised
    assert normalise(from_store) == once and walked


async def test_the_simulator_normalises_each_customer_once_and_stores_that(monkeypatch: Any) -> None:
    """The simulator normalises what it generates and the store normalises what it is given:
    the walk is done once per customer, and what is stored is what was investigated."""
    calls: list[int] = []
    real = records.normalise

    def counting(r: CoreRecords) -> CoreRecords:
        if not r.normalised:
            calls.append(1)
        return real(r)

    monkeypatch.setattr(records, "normalise", counting)
    backing = FakeRecords()

    class Normalising(FakeRecords):  # a store that, like RecordsRepository, normalises its input
        async def store_many(self, rs: Any) -> set[str]:
            return await backing.store_many([records.normalise(r) for r in rs])

    sim = SimulatedCoreSystems(Normalising())
    reqs = [RecordsRequest(customer_id=f"CUST-N{i}", case_id=f"CASE-N{i}", text=TEXT,
                           product=product_of(TEXT, None), received_at=RECEIVED) for i in range(3)]
    found = await sim.load_many(reqs)
    assert len(calls) == 3
    for i in range(3):
        cid = f"CUST-N{i}"
        assert found[cid] == backing.by_customer[cid] == real(_raw(cid, f"CASE-N{i}"))
