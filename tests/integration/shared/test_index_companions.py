"""The local stack's PostgreSQL serves FerretDB's equality filters from an index.

FerretDB v1 on PostgreSQL pushes ``{field: value}`` down as ``_jsonb->'field' @> value``,
which its own btree indexes cannot serve; ``deploy/local/stack.py`` gives each index
FerretDB creates a GIN companion (see ``INDEX_COMPANIONS_SQL``). This checks, on the test
stack's own PostgreSQL, that a collection's ``_id`` and a declared index get one, and that
PostgreSQL's plan for the pushed-down filter uses it (EXPLAIN, not a timing).
"""

from __future__ import annotations

import base64
import os
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient

from shared.settings import CommonSettings
from tests.support.servers import Servers, psql, skip_unless_own_postgresql


async def test_declared_indexes_get_a_gin_companion_that_the_planner_uses(
    servers: Servers, settings: CommonSettings, mongo_client: AsyncMongoClient[Any]
) -> None:
    skip_unless_own_postgresql(servers)
    db_name = f"{settings.mongo.db_prefix}companions"
    coll = mongo_client[db_name]["docs"]
    # few rows of large documents: jsonb TOASTed out of a tiny heap, where PostgreSQL's cost
    # model (blind to detoasting) would pick a sequential scan that reads every document
    await coll.insert_many([{"_id": f"d{i}", "outbox_pending": i % 100 == 0, "customer_id": f"c{i}",
                             "evidence": base64.b64encode(os.urandom(6_000)).decode()}
                            for i in range(400)])
    await coll.create_index([("outbox_pending", ASCENDING)], name="outbox_pending")
    await coll.create_index([("customer_id", ASCENDING), ("outbox_pending", ASCENDING)], name="by_customer")

    table = psql(servers, 
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{db_name.lower()}' AND c.relkind = 'r' AND c.relname LIKE 'docs%'"
    ).strip()
    assert table, "FerretDB's table for the collection"
    gins = psql(servers, 
        "SELECT pg_get_indexdef(i.indexrelid, 1, false) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        f"JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = '{table}'::regclass AND a.amname = 'gin' ORDER BY 1"
    ).split()
    # one each for _id, outbox_pending and the leading key of the compound index
    assert gins == ["((_jsonb", "->", "'_id'::text))", "((_jsonb", "->", "'customer_id'::text))",
                    "((_jsonb", "->", "'outbox_pending'::text))"]

    # the non-unique btrees FerretDB made beside them are gone (no query of FerretDB's uses
    # them; each cost every write an index entry); the unique _id btree stays
    btrees = psql(servers, 
        "SELECT pg_get_indexdef(i.indexrelid, 1, false) || ' ' || i.indisunique FROM pg_index i "
        f"JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
        f"WHERE i.indrelid = '{table}'::regclass AND a.amname = 'btree' ORDER BY 1"
    ).splitlines()
    assert btrees == ["((_jsonb -> '_id'::text)) true"], btrees
    assert sorted(i["name"] for i in await (await coll.list_indexes()).to_list()) == ["_id_", "by_customer", "outbox_pending"]

    psql(servers, f"ANALYZE {table}")
    plan = psql(servers, f"EXPLAIN SELECT _jsonb FROM {table} WHERE _jsonb->'outbox_pending' @> 'true'")
    assert "Index Scan" in plan and "Seq Scan" not in plan, plan
    plan = psql(servers, f"EXPLAIN SELECT _jsonb FROM {table} WHERE _jsonb->'_id' @> '\"d77\"'")
    assert "Index Scan" in plan and "Seq Scan" not in plan, plan

    # and through FerretDB the answers are the same as without the index
    pending = [d["_id"] async for d in coll.find({"outbox_pending": True})]
    assert sorted(pending) == sorted(f"d{i}" for i in range(0, 400, 100))

