"""bench/clone.py on FerretDB's PostgreSQL backend: copies made inside PostgreSQL
(``INSERT … SELECT`` from a sample in a temporary table) read back through FerretDB as the
renamed documents — stored exactly as FerretDB stores them when it is sent those documents —
found by their indexes, held by the unique indexes; the ``insert_many`` path for other
backends gives the same read-back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError

from bench.clone import Copier, Postgres, renamed
from deploy.local.stack import find_postgresql
from shared.settings import CommonSettings
from tests.support.servers import Servers

AT = datetime(2026, 11, 30, 8, 15, 30, 123000, tzinfo=UTC)
TRICKY = 'quote " and back\\slash, 中文, K0 in prose, say "K1", [K0], \n a line'


@pytest.fixture
def postgres(servers: Servers) -> Postgres:
    bindir = find_postgresql()
    if servers.postgresql_port is None or bindir is None:
        pytest.skip("FerretDB does not run on the local stack's PostgreSQL here")
    return Postgres(bindir / "psql", "127.0.0.1", servers.postgresql_port)


async def _stores(client: AsyncMongoClient[Any], prefix: str) -> None:
    """Three cases the way the services store them (indexes included), one paused investigation."""
    intake = client[f"{prefix}intake"]
    await intake.cases.create_index("customer_id")
    await intake.cases.create_index("case_number", unique=True)
    await intake.cases.insert_many([
        {"_id": f"K{i}", "case_number": f"TS-{i}", "customer_id": f"cu{i}", "status": "open",
         "received_at": AT, "amount": 12.5, "n": i, "complaint_keys": [f"app:{i}"], "text": TRICKY,
         "K0": "a key that is an identifier is not renamed",
         "related": [{"case_id": "K0", "note": "K1 is linked"}]}
        for i in range(3)
    ])
    await intake.complaints.insert_many([{"_id": f"app:{i}", "case_id": f"K{i}", "received_at": AT} for i in range(3)])
    investigations = client[f"{prefix}investigation"].investigations
    await investigations.insert_many([{"_id": "K0", "status": "completed"}, {"_id": "K1", "status": "paused"}])
    await client[f"{prefix}supervision"].cases.insert_one(
        {"_id": ObjectId(), "case_id": "K1", "events": [{"at": AT, "kind": "registered"}]})


@pytest.mark.parametrize("path", ["postgresql", "ferretdb"])
async def test_copies_read_back_renamed_through_ferretdb(
    mongo_client: AsyncMongoClient[Any], settings: CommonSettings, postgres: Postgres, path: str,
) -> None:
    prefix = settings.mongo.db_prefix
    await _stores(mongo_client, prefix)
    intake, supervision = mongo_client[f"{prefix}intake"], mongo_client[f"{prefix}supervision"]
    investigations = mongo_client[f"{prefix}investigation"].investigations

    copier = Copier(mongo_client, prefix, say=lambda _: None, postgres=postgres if path == "postgresql" else None)
    done = await copier.grow(30, stored=3)
    assert done["copies"] == 9 and done["cases_after"] == 30 and copier.copied == 27
    assert done["documents"] == 9 * 8  # 3 cases, 3 complaints, 1 investigation, 1 timeline per copy

    copy = await intake.cases.find_one({"_id": "K1~2"})
    original = await intake.cases.find_one({"_id": "K1"})
    assert copy is not None and original is not None
    assert copy["case_number"] == "TS-1~2" and copy["customer_id"] == "cu1~2"
    assert copy["complaint_keys"] == ["app:1~2"], "a complaint's id is an identifier wherever it appears"
    assert copy["related"] == [{"case_id": "K0~2", "note": "K1 is linked"}], "text is not an identifier"
    assert list(copy) == list(original), "the fields keep their order"
    untouched = {k: v for k, v in original.items() if k not in {"_id", "case_number", "customer_id", "complaint_keys", "related"}}
    assert {k: copy[k] for k in untouched} == untouched, "values that are not identifiers (dates, text, numbers, keys) survive"
    assert [d["_id"] async for d in intake.cases.find({"customer_id": "cu2~1"})] == ["K2~1"], "the index finds a copy"
    assert [d["_id"] async for d in intake.cases.find({"case_number": "TS-0~9"})] == ["K0~9"]
    assert await intake.complaints.find_one({"_id": "app:0~1"}) == {"_id": "app:0~1", "case_id": "K0~1", "received_at": AT}
    timelines = [d async for d in supervision.cases.find({})]
    assert len(timelines) == 10 and len({d["_id"] for d in timelines}) == 10, "an ObjectId _id gets a new one per copy"
    assert all(isinstance(d["_id"], ObjectId) for d in timelines)
    assert sorted(d["case_id"] for d in timelines) == sorted(["K1", *(f"K1~{k}" for k in range(1, 10))])
    assert await intake.cases.count_documents({}) == 30
    paused = [d["_id"] async for d in investigations.find({"status": "paused"})]
    assert paused == ["K1"], "a case paused for an appraisal is not copied (it could never resume)"
    assert await investigations.count_documents({}) == 11

    # the last copy of a level takes part of the sample: 2 of 3 cases, and at least one of the rest
    done = await copier.grow(32, stored=30)
    assert done["copies"] == 1 and done["cases_after"] == 32 and done["documents"] == 2 + 2 + 1 + 1
    assert sorted([d["_id"] async for d in intake.cases.find({"customer_id": {"$in": ["cu0~10", "cu1~10", "cu2~10"]}})]) \
        == ["K0~10", "K1~10"]

    # the unique index holds for the copies: a case number copied twice is refused
    with pytest.raises(BulkWriteError):
        await intake.cases.insert_many([{"_id": "other", "case_number": "TS-2~5"}])
    copier.next_copy = 5  # copy 5 once more: refused, whichever path writes it
    with pytest.raises((RuntimeError, BulkWriteError), match="duplicate key|E11000"):
        await copier.grow(33, stored=32)


async def test_a_copy_is_stored_as_ferretdb_stores_the_renamed_document(
    mongo_client: AsyncMongoClient[Any], settings: CommonSettings, postgres: Postgres,
) -> None:
    prefix = settings.mongo.db_prefix
    await _stores(mongo_client, prefix)
    intake = mongo_client[f"{prefix}intake"]
    limit = await postgres.run("SHOW gin_pending_list_limit")
    copier = Copier(mongo_client, prefix, say=lambda _: None, postgres=postgres)
    await copier.grow(6, stored=3)

    # the same copy sent through FerretDB, into a collection of its own
    original = await intake.cases.find_one({"_id": "K1"})
    assert original is not None
    await intake.sent.insert_one(renamed(original, copier.ids, "~1"))
    db = f'"{prefix}intake"'
    tables = {}
    for name in ("cases", "sent"):
        table = await postgres.table(f"{prefix}intake", name)
        assert table is not None
        tables[name] = f'{db}."{table}"'
    same = await postgres.run(
        f"SELECT c._jsonb = s._jsonb, c._jsonb::text = s._jsonb::text FROM {tables['cases']} c, {tables['sent']} s "
        "WHERE c._jsonb->'_id' = '\"K1~1\"' AND s._jsonb->'_id' = '\"K1~1\"'")
    assert same.decode().split() == ["t|t"], "the copy's stored jsonb is what FerretDB writes for the renamed document"

    # nothing of the copier is left on the server: its psql sessions (and their temporary tables) are gone
    left = await postgres.run("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'psql' "
                              "AND pid <> pg_backend_pid()")
    assert left.decode().strip() == "0"
    assert await postgres.run("SHOW gin_pending_list_limit") == limit, "the server's settings are untouched"

    # settling vacuums (and analyses) every table the copies went into, before a probe
    assert await copier.settle() >= 0
    vacuumed = await postgres.run(
        "SELECT count(*) FILTER (WHERE last_vacuum IS NOT NULL AND last_analyze IS NOT NULL), count(*) "
        f"FROM pg_stat_user_tables WHERE relid = '{tables['cases']}'::regclass")
    assert vacuumed.decode().split() == ["1|1"]
