"""bench/clone.py on FerretDB's PostgreSQL backend: copies written with COPY straight into
FerretDB's tables read back through FerretDB as the renamed documents, found by their indexes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from bench.clone import Copier, Postgres
from deploy.local.stack import find_postgresql
from shared.settings import CommonSettings
from tests.support.servers import Servers


@pytest.fixture
def postgres(servers: Servers) -> Postgres:
    bindir = find_postgresql()
    if servers.postgresql_port is None or bindir is None:
        pytest.skip("FerretDB does not run on the local stack's PostgreSQL here")
    return Postgres(bindir / "psql", "127.0.0.1", servers.postgresql_port)


async def test_copies_written_into_the_tables_read_back_renamed_through_ferretdb(
    mongo_client: AsyncMongoClient[Any], settings: CommonSettings, postgres: Postgres,
) -> None:
    prefix = settings.mongo.db_prefix
    intake, supervision = mongo_client[f"{prefix}intake"], mongo_client[f"{prefix}supervision"]
    at = datetime(2026, 11, 30, 8, 15, 30, 123000, tzinfo=UTC)
    await intake.cases.create_index("customer_id")
    await intake.cases.insert_many([
        {"_id": f"K{i}", "case_number": f"TS-{i}", "customer_id": f"cu{i}", "status": "open",
         "received_at": at, "amount": 12.5, "n": i, "complaint_keys": [f"app:{i}"],
         "text": 'quote " and back\\slash, 中文, K0 in prose', "related": [{"case_id": "K0", "note": "K1 is linked"}]}
        for i in range(3)
    ])
    await intake.complaints.insert_many([{"_id": f"app:{i}", "case_id": f"K{i}", "received_at": at} for i in range(3)])
    investigations = mongo_client[f"{prefix}investigation"].investigations
    await investigations.insert_many([{"_id": "K0", "status": "completed"}, {"_id": "K1", "status": "paused"}])
    oid = ObjectId()
    await supervision.cases.insert_one({"_id": oid, "case_id": "K1", "events": [{"at": at, "kind": "registered"}]})

    copier = Copier(mongo_client, prefix, say=lambda _: None, postgres=postgres)
    done = await copier.grow(30, stored=3)  # 9 copies: one, then five in one COPY, then three
    assert done["copies"] == 9 and done["cases_after"] == 30 and copier.copied == 27
    assert done["documents"] == 9 * 8

    copy = await intake.cases.find_one({"_id": "K1~2"})
    original = await intake.cases.find_one({"_id": "K1"})
    assert copy is not None and original is not None
    assert copy["case_number"] == "TS-1~2" and copy["customer_id"] == "cu1~2"
    assert copy["complaint_keys"] == ["app:1~2"], "a complaint's id is an identifier wherever it appears"
    assert copy["related"] == [{"case_id": "K0~2", "note": "K1 is linked"}], "text is not an identifier"
    untouched = {k: v for k, v in original.items() if k not in {"_id", "case_number", "customer_id", "complaint_keys", "related"}}
    assert {k: copy[k] for k in untouched} == untouched, "values that are not identifiers (dates, text, numbers) survive"
    assert [d["_id"] async for d in intake.cases.find({"customer_id": "cu2~1"})] == ["K2~1"], "the index finds a copy"
    assert await intake.complaints.find_one({"_id": "app:0~1"}) == {"_id": "app:0~1", "case_id": "K0~1", "received_at": at}
    timelines = [d async for d in supervision.cases.find({})]
    assert len(timelines) == 10 and len({d["_id"] for d in timelines}) == 10, "an ObjectId _id gets a new one per copy"
    assert sorted(d["case_id"] for d in timelines) == sorted(["K1", *(f"K1~{k}" for k in range(1, 10))])
    assert await intake.cases.count_documents({}) == 30
    paused = [d["_id"] async for d in investigations.find({"status": "paused"})]
    assert paused == ["K1"], "a case paused for an appraisal is not copied (it could never resume)"
    assert await investigations.count_documents({}) == 11
    assert all(isinstance(d["_id"], ObjectId) for d in timelines)
