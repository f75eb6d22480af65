"""The local stack's PostgreSQL refuses a stale write that would put a document's version back.

FerretDB v1 updates a document by reading it, applying the update in Go and writing the whole
document back, with nothing in between. An outbox clear (by ``_id``) that read version 1 can
therefore land after a claimed update to version 2 and undo it: a negotiation workspace lost
its investigation's result this way. ``deploy/local/stack.py`` puts a trigger on every FerretDB
table that refuses a write lowering a numeric ``version`` (the version fence).

The race is made deterministic here: a ``psql`` session locks the document's row, so both
FerretDB updates read version 1 and then queue on the lock, the versioned one first; when the
lock goes, the versioned update lands, then the stale clear. Without the fence (dropped on one
table) the clear wins and the update is lost; with it the update stays and the clear is skipped.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from shared.settings import CommonSettings
from tests.support.servers import Servers, psql, psql_command, skip_unless_own_postgresql


def _table(servers: Servers, db_name: str, collection: str) -> str:
    table = psql(
        servers,
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{db_name.lower()}' AND c.relkind = 'r' AND c.relname LIKE '{collection}%'",
    ).strip()
    assert table, f"FerretDB's table for {db_name}.{collection}"
    return table


async def _waiting(servers: Servers, table: str, n: int) -> None:
    """Until ``n`` statements wait on a lock of ``table``'s rows."""
    name = table.split(".")[-1].strip('"')
    for _ in range(600):
        # (psql in a thread: the event loop must go on sending the updates that are to queue)
        count = (await asyncio.to_thread(psql, servers, "SELECT count(*) FROM pg_stat_activity WHERE "
                                         f"wait_event_type = 'Lock' AND query LIKE 'UPDATE%{name}%'")).strip()
        if int(count) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{n} updates never queued on the row lock of {table}")


async def _race(servers: Servers, coll: AsyncCollection[dict[str, Any]], table: str) -> dict[str, Any]:
    """A claimed versioned update and a stale outbox clear of one document, clear landing last."""
    await coll.insert_one({"_id": "w1", "version": 1, "status": "awaiting_investigation",
                           "outbox": {"e1": {"topic": "negotiation.opened", "key": "w1", "value": "{}"}},
                           "outbox_pending": True})
    holder = await asyncio.create_subprocess_exec(*psql_command(servers), "-q", stdin=asyncio.subprocess.PIPE,
                                                  stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert holder.stdin is not None and holder.stdout is not None
    try:
        holder.stdin.write(f"BEGIN;\nSELECT 'locked' FROM {table} WHERE _jsonb->'_id' = '\"w1\"' FOR UPDATE;\n".encode())
        await holder.stdin.drain()
        assert (await asyncio.wait_for(holder.stdout.readline(), 60)).strip() == b"locked"
        versioned = asyncio.create_task(coll.update_one(
            {"_id": "w1", "version": 1}, {"$set": {"status": "negotiating"}, "$inc": {"version": 1}}))
        await _waiting(servers, table, 1)
        clear = asyncio.create_task(coll.update_one(
            {"_id": "w1"}, {"$unset": {"outbox.e1": ""}, "$set": {"outbox_pending": False}}))
        await _waiting(servers, table, 2)
        holder.stdin.write(b"COMMIT;\n")
        await holder.stdin.drain()
        # both report a match and a change: FerretDB applied them to what it had read
        assert (await versioned).modified_count == 1
        assert (await clear).modified_count == 1
    finally:
        if holder.returncode is None:
            holder.stdin.close()
            try:
                await asyncio.wait_for(holder.wait(), 30)
            except TimeoutError:
                holder.kill()
                await holder.wait()
    doc = await coll.find_one({"_id": "w1"})
    assert doc is not None
    return doc


async def test_a_stale_clear_cannot_undo_a_versioned_update(
    servers: Servers, settings: CommonSettings, mongo_client: AsyncMongoClient[Any]
) -> None:
    skip_unless_own_postgresql(servers)
    db_name = f"{settings.mongo.db_prefix}fence"
    db = mongo_client[db_name]
    await db.create_collection("fenced")
    await db.create_collection("bare")
    fenced, bare = _table(servers, db_name, "fenced"), _table(servers, db_name, "bare")
    # every table FerretDB creates gets the fence; here one has it taken off, to show the race
    assert psql(servers, f"SELECT count(*) FROM pg_trigger WHERE tgrelid = '{fenced}'::regclass "
                         "AND tgname = 'parley_version_fence'").strip() == "1"
    psql(servers, f"DROP TRIGGER parley_version_fence ON {bare}")

    lost = await _race(servers, db["bare"], bare)
    assert (lost["version"], lost["status"], lost["outbox"]) == (1, "awaiting_investigation", {}), lost

    kept = await _race(servers, db["fenced"], fenced)
    assert (kept["version"], kept["status"]) == (2, "negotiating"), kept
    # the clear was skipped: its event (published already) stays for the sweep to send again
    assert set(kept["outbox"]) == {"e1"} and kept["outbox_pending"] is True

    # writes that keep or raise the version, and documents without one, go through as before
    await db["fenced"].update_one({"_id": "w1"}, {"$set": {"outbox_pending": False}})
    await db["fenced"].update_one({"_id": "w1"}, {"$set": {"version": 7}})
    await db["fenced"].insert_one({"_id": "plain", "n": 1})
    await db["fenced"].update_one({"_id": "plain"}, {"$inc": {"n": 1}})
    assert await db["fenced"].find_one({"_id": "w1"}, {"_id": 0, "version": 1, "outbox_pending": 1}) == {
        "version": 7, "outbox_pending": False}
    assert (await db["fenced"].find_one({"_id": "plain"}) or {}).get("n") == 2
    # and a direct lowering is refused too
    await db["fenced"].update_one({"_id": "w1"}, {"$set": {"version": 3, "status": "closed"}})
    assert await db["fenced"].find_one({"_id": "w1"}, {"_id": 0, "version": 1, "status": 1}) == {
        "version": 7, "status": "negotiating"}
