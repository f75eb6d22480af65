"""MongoDB access for every service: one async client, one database per service.

Uses PyMongo's ``AsyncMongoClient`` (motor's successor). Queries stay within what both
MongoDB and FerretDB v1 serve: single-document atomic writes, unique indexes, upserts,
``find_one_and_update``, and the aggregation stages listed in docs/stack.md — no
multi-document transactions, no change streams, no ``$lookup``/``$facet``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.settings import MongoSettings

T = TypeVar("T")

#: The server's duplicate-key error code.
DUPLICATE_KEY = 11000


class CommandCounts(monitoring.CommandListener):
    """Counts the commands a process sends, by command and collection (``find cases``,
    ``update cases``, ``insert outbox_ledger``), into a JSON file at most once a second: how
    many round trips a stage costs per complaint (``python -m bench.burst``). Off unless
    ``PARLEY_MONGO_COMMAND_COUNTS`` names the file (``{pid}`` in it: this process's id)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path.replace("{pid}", str(os.getpid())))
        self.counts: Counter[str] = Counter()
        self._written = 0.0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.counts[f"{event.command_name} {target}" if isinstance(target, str) else event.command_name] += 1
        if time.monotonic() - self._written >= 1.0:
            self.write()

    def write(self) -> None:
        self._written = time.monotonic()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(self.counts)))
        os.replace(tmp, self.path)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Counted when started."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Counted when started."""


def make_client(settings: MongoSettings) -> AsyncMongoClient[dict[str, Any]]:
    """Return an async client; it connects lazily on first use."""
    listeners = [CommandCounts(settings.command_counts)] if settings.command_counts else []
    return AsyncMongoClient(
        settings.url,
        serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
        tz_aware=True,
        uuidRepresentation="standard",
        appname="parley",
        # bounded, so that every process together stays below the server's pool (FerretDB on
        # PostgreSQL deadlocks when its own pool runs dry during a DDL; see docs/stack.md)
        maxPoolSize=settings.max_pool_size,
        event_listeners=listeners,
    )


def service_database(
    client: AsyncMongoClient[dict[str, Any]], settings: MongoSettings, service: str
) -> AsyncDatabase[dict[str, Any]]:
    """Return the database a service owns (``<db_prefix><service>``)."""
    return client[settings.database(service)]


async def claim_next_version(
    claims: AsyncCollection[dict[str, Any]],
    collection: AsyncCollection[dict[str, Any]],
    doc_id: Any,
    expected_version: int,
    *,
    stale_after: timedelta = timedelta(seconds=30),
) -> bool:
    """Claim the right to move ``doc_id`` from ``expected_version`` to the next; False if taken.

    Optimistic concurrency usually rests on ``find_one_and_update({"_id", "version": v})``
    being atomic. On MongoDB it is; on FerretDB v1 concurrent calls can all match (it reads,
    then writes), so four concurrent edits of one version all succeeded. An insert into a
    unique ``_id`` is atomic on both, so the one writer whose claim document goes in first
    may update; the others get ``False`` and answer 409. A claim left by a writer that died
    before its update (the document still at ``expected_version`` after ``stale_after``) is
    removed and claimed afresh. Writes outside the claims (an outbox clear) could still undo a
    claimed update on FerretDB; the local stack fences those (a write lowering ``version`` is
    refused: ``deploy/local/stack.py``, docs/stack.md).
    """
    key = f"{doc_id}#{expected_version + 1}"
    for _ in range(2):
        try:
            await claims.insert_one({"_id": key, "at": datetime.now(UTC)})
            return True
        except DuplicateKeyError:
            claim = await claims.find_one({"_id": key})
            current = await collection.find_one({"_id": doc_id}, {"version": 1})
            stale = (
                claim is not None
                and current is not None
                and current.get("version") == expected_version
                and claim["at"] < datetime.now(UTC) - stale_after
            )
            if not stale or claim is None:  # (claim is not None when stale; said for the checker)
                return False
            await claims.delete_one({"_id": key, "at": claim["at"]})
    return False


async def bounded(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run ``calls`` with at most ``limit`` in flight; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def insert_new(collection: AsyncCollection[dict[str, Any]], docs: Sequence[dict[str, Any]], *,
                     chunk: int = 250, parallel: int = 2) -> set[Any]:
    """Insert ``docs`` unordered, in bulk commands of ``chunk`` documents (``parallel`` at a
    time); return the ``_id``s refused as duplicates.

    Idempotent inserts without a read: a document already there is refused by its unique
    ``_id`` (or another unique index; the caller tells them apart) and the rest go in. Any
    other write error is raised.
    """
    refused: set[Any] = set()

    async def one(part: list[dict[str, Any]]) -> None:
        try:
            await collection.insert_many(part, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            refused.update(part[e["index"]]["_id"] for e in errors)

    parts = [list(docs[i:i + chunk]) for i in range(0, len(docs), chunk)]
    await bounded([functools.partial(one, p) for p in parts], parallel)
    return refused


async def find_by_ids(collection: AsyncCollection[dict[str, Any]], ids: Sequence[Any], *,
                      projection: dict[str, Any] | None = None, parallel: int = 16) -> dict[Any, dict[str, Any]]:
    """Read documents by ``_id``: one ``find_one`` each, ``parallel`` at a time; those found.

    Not ``{"_id": {"$in": ids}}``: FerretDB v1 does not push ``$in`` down to its backend, so
    that reads the whole collection, where each ``find_one`` by ``_id`` is an index lookup.
    """
    unique = list(dict.fromkeys(ids))
    docs = await bounded([functools.partial(collection.find_one, {"_id": i}, projection) for i in unique], parallel)
    return {i: d for i, d in zip(unique, docs, strict=True) if d is not None}
