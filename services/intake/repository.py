"""MongoDB access for intake's own collections (database ``<prefix>intake``).

Collections:

- ``complaints`` — one document per channel complaint, ``_id = "<channel>:<channel id>"``
  (plus a unique index on ``(channel, channel_complaint_id)``): the idempotency record.
  It is written in one insert together with the events it owes (``shared.outbox``).
- ``cases`` — one document per case; unique ``case_number``. A new case's ``_id`` is derived
  from the complaint that opened it, so a crash between writing the case and the complaint
  converges on redelivery instead of opening a second case.
- ``case_number_blocks`` — one document per block of case numbers a worker claimed,
  ``_id = "<prefix>-<day>-<first sequence>"`` (``CaseNumbers``); ``counters`` — per day and
  prefix, the highest sequence claimed so far (``seq``), a hint where the next block starts.
- ``customers`` — per customer, the ids of their cases and, for complaints being linked to
  an open case, which case (``placements``). It exists so the hot path reads by ``_id`` only:
  FerretDB v1 answers any other filter by scanning the whole collection. It is also where
  several worker processes agree on one customer: it carries a ``version`` moved by a
  compare-and-set (``claim_customers`` then ``commit_customers``) and the effects of its
  last placement still being applied (``pending``, ``pending_at``); see ``handlers``.
- ``customer_claims`` — ``_id = "<customer id>#<version>"``: who may move a customer document
  to that version (an insert into a unique ``_id`` is atomic on FerretDB v1, where a
  conditional update is read-then-write and can let two writers through).
- ``conflicts`` — a complaint id seen again with different content (``conflicting_duplicate``),
  ``_id = "<complaint key>#<content hash>"``: which fields differ (never their values), for the
  desk; the second version's bytes are on ``complaint.received.dlq``.
- ``personal_data`` — the originals of personal data (``_id`` = complaint key), sealed field by
  field (``shared.crypto``; which fields: ``pii.SEALED_FIELDS``, each at ``data.<field>``, bound
  to its path and the document's ``_id``; ``kid`` = the key they are under), with the hashes of
  the submission as first received (``content_hash`` in clear; ``field_hashes`` sealed too,
  since an unsalted hash of a phone number can be reversed by trying them all). Written by
  ``store_personal_data_batch``; originals are read only by ``read_personal_data``, which
  records each read (``original_reads``, ``shared.originals``); ``erase_personal_data`` removes
  them when retention ends (``erased_at``, ``kid`` = ``NO_KEY``); ``rotate_personal_data``
  re-encrypts under the active key.
- ``retention`` — ``_id`` = case id, ``closed_at`` (indexed): closed cases whose originals are
  still kept, written when intake learns of the closing; the retention sweep reads those closed
  before the cut-off, erases their complaints' originals and removes the entry.
- ``original_reads`` — one appended record per read of originals (who, why, when, which).

Queries stay within what FerretDB v1 serves (no transactions, no ``$lookup``/``$facet``).

Cost on FerretDB v1.24.2 (PostgreSQL backend), measured: an insert is checked against the
unique ``_id`` index (flat as data grows), but *every* filter, ``_id`` included, is answered
by a sequential scan (FerretDB sends ``_jsonb->'_id' @> $1``, which the btree on ``_id`` cannot
serve: ~1 ms at 1,000 documents, ~60–200 ms at 50,000), ``$in`` is not pushed down at all,
and one ``update`` command holding more than ~49 updates that match a document deadlocks
the server (each update's cursor keeps a pooled connection until the command ends; the pool
has 50). So the batch path writes with ``insert_many`` and uses an insert's duplicate-key
answer as its existence check; it reads by ``_id`` only for what already existed (redelivery,
returning customers, linking), and it never sends many updates in one command.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.intake import pii, rules
from services.intake.errors import RegistrationConflict
from shared import outbox
from shared.contracts.envelope import Envelope
from shared.crypto import NO_KEY, KeyRing, RotationReport, default_keyring, is_sealed, rotate
from shared.mongo import bounded
from shared.mongo import insert_new as shared_insert_new
from shared.originals import record_read

log = logging.getLogger(__name__)

Doc = dict[str, Any]
T = TypeVar("T")

#: Most by-``_id`` reads or writes one batch keeps in flight (FerretDB's pool has 50 connections
#: for every client together).
PARALLEL = 16
#: Documents per ``insert_many`` command, and how many such commands run at once (the
#: server inserts concurrent commands on several connections).
INSERT_CHUNK = 250
INSERT_PARALLEL = 2


class KeyedLocks:
    """In-process asyncio locks by key: work on one customer's index and cases takes turns."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of all ``keys`` (taken in sorted order, so two holders cannot deadlock)."""
        ordered = sorted(set(keys))
        for key in ordered:
            self._users[key] = self._users.get(key, 0) + 1
        taken: list[asyncio.Lock] = []
        try:
            for key in ordered:
                lock = self._locks.setdefault(key, asyncio.Lock())
                await lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in taken:
                lock.release()
            for key in ordered:
                self._users[key] -= 1
                if not self._users[key]:
                    del self._users[key]
                    self._locks.pop(key, None)

    async def __call__(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` holding ``key``'s lock."""
        async with self.hold([key]):
            return await work()


async def _bounded(calls: list[Callable[[], Awaitable[T]]], limit: int = PARALLEL) -> list[T]:
    """Run ``calls`` with at most ``limit`` in flight; results in order."""
    return await bounded(calls, limit)


async def insert_new(collection: AsyncCollection[Doc], docs: list[Doc]) -> set[Any]:
    """Insert ``docs`` (unordered, in concurrent chunks); return the ``_id``s refused as duplicates.

    A duplicate may be on ``_id`` or on another unique index; the caller tells them apart.
    """
    return await shared_insert_new(collection, docs, chunk=INSERT_CHUNK, parallel=INSERT_PARALLEL)


class NumberStore(Protocol):
    """What ``CaseNumbers`` needs of the store (``IntakeRepository``, or a fake in unit tests)."""

    async def claim_number_block(self, series: str, start: int, size: int, owner: str) -> bool: ...
    async def number_block(self, series: str, start: int) -> Doc | None: ...
    async def number_hint(self, series: str) -> int: ...
    async def raise_number_hint(self, series: str, at_least: int) -> None: ...


@dataclass(frozen=True)
class Commit:
    """Move a customer document from ``version`` to ``version + 1`` (after winning its claim).

    ``version`` 0 with ``exists=False``: the document is created. ``legacy``: it was written
    before documents had versions (no ``version`` field), which counts as 0.
    """

    version: int
    case_ids: list[str]
    placements: list[Doc]
    pending: list[Doc]
    at: datetime
    exists: bool = True
    legacy: bool = False


class RegistrationStore(Protocol):
    """What ``handlers.register_batch`` needs of the store (``IntakeRepository``, or a fake)."""

    complaints: AsyncCollection[Doc]
    customer_locks: KeyedLocks

    async def store_personal_data_batch(
        self, data: dict[str, Doc], fingerprints: dict[str, Doc] | None = None
    ) -> set[str]: ...
    async def personal_fingerprints(self, keys: Iterable[str]) -> dict[str, Doc]: ...
    async def record_conflicts(self, docs: list[Doc]) -> None: ...
    async def find_complaints(self, keys: Iterable[str]) -> dict[str, Doc]: ...
    async def insert_complaints(self, docs: list[Doc]) -> set[str]: ...
    async def insert_customer_indexes(self, docs: list[Doc]) -> set[str]: ...
    async def customer_indexes(self, customer_ids: Iterable[str]) -> dict[str, Doc]: ...
    async def claim_customers(
        self, versions: dict[str, int], *, stale_after: timedelta
    ) -> set[str]: ...
    async def commit_customers(self, commits: dict[str, Commit]) -> set[str]: ...
    async def cases_by_ids(self, case_ids: Iterable[str]) -> dict[str, Doc]: ...
    async def insert_cases(self, docs: list[Doc]) -> set[str]: ...
    async def link_complaints(self, links: list[tuple[str, list[str], Doc]]) -> list[str]: ...


class IntakeRepository:
    """Intake's store."""

    def __init__(self, db: AsyncDatabase[Doc], *, keyring: KeyRing | None = None) -> None:
        self.db = db
        #: seals the originals in ``personal_data`` (default: the process's, from the environment)
        self.keyring = keyring or default_keyring()
        self.retention: AsyncCollection[Doc] = db["retention"]
        self.cases: AsyncCollection[Doc] = db["cases"]
        self.complaints: AsyncCollection[Doc] = db["complaints"]
        self.counters: AsyncCollection[Doc] = db["counters"]
        self.number_blocks: AsyncCollection[Doc] = db["case_number_blocks"]
        self.customers: AsyncCollection[Doc] = db["customers"]
        self._personal: AsyncCollection[Doc] = db["personal_data"]
        self.customer_claims: AsyncCollection[Doc] = db["customer_claims"]
        self.conflicts: AsyncCollection[Doc] = db["conflicts"]
        #: in this process, one batch at a time places a given customer's complaints
        self.customer_locks = KeyedLocks()
        self.case_numbers: CaseNumbers | None = None  # the process's allocator, made on first use

    async def ensure_indexes(self) -> None:
        """Create the indexes intake relies on (idempotent)."""
        await self.complaints.create_index(
            [("channel", ASCENDING), ("channel_complaint_id", ASCENDING)],
            unique=True, name="uniq_channel_complaint",
        )
        await self.complaints.create_index([("outbox_pending", ASCENDING)], name="outbox_pending")
        await self.complaints.create_index([("case_id", ASCENDING)], name="by_case")
        await self.cases.create_index([("case_number", ASCENDING)], unique=True, name="uniq_case_number")
        await self.cases.create_index(
            [("customer_id", ASCENDING), ("last_received_at", DESCENDING)], name="by_customer"
        )
        await self.cases.create_index([("received_at", DESCENDING)], name="by_received")
        await self.cases.create_index([("status", ASCENDING)], name="by_status")
        await self.retention.create_index([("closed_at", ASCENDING)], name="by_closed_at")
        await self._personal.create_index([("kid", ASCENDING)], name="by_kid")  # rotation sweeps

    # ------------------------------------------------------------- complaints

    async def find_complaint(self, key: str) -> Doc | None:
        """Return the registration record of a channel complaint, if registered."""
        return await self.complaints.find_one({"_id": key}, {"outbox": 0})

    async def find_complaints(self, keys: Iterable[str]) -> dict[str, Doc]:
        """Return the registration records of these complaints that exist (by ``_id``, concurrently)."""
        wanted = list(dict.fromkeys(keys))
        docs = await _bounded([functools.partial(self.find_complaint, k) for k in wanted])
        return {k: d for k, d in zip(wanted, docs, strict=True) if d is not None}

    async def insert_complaints(self, docs: list[Doc]) -> set[str]:
        """Insert complaint records (each with its events, ``shared.outbox.ledger_document``);
        return the keys that existed already. The batch's ledger entry is written first."""
        return await insert_new(self.complaints, await outbox.open_ledger(self.complaints, docs))

    async def insert_complaint(self, doc: Doc, events: list[Envelope[Any]]) -> Doc | None:
        """Insert a complaint record together with the events it owes.

        Returns the outbox written (event id → item), or None if the record existed.
        """
        owed = outbox.outbox_document(events)
        try:
            await self.complaints.insert_one({**doc, **owed})
        except DuplicateKeyError:
            return None
        written: Doc = owed["outbox"]
        return written

    async def relay(self, key: str, send: outbox.SendFn) -> int:
        """Publish the events a complaint record still owes (``shared.outbox.relay``)."""
        return await outbox.relay(self.complaints, key, send)

    async def publish_outbox(self, key: str, pending: Doc, send: outbox.SendFn) -> int:
        """Publish outbox items just written (no re-read), then clear them in one write."""
        return await outbox.relay(self.complaints, key, send, pending=pending)

    async def relay_pending(
        self, send: outbox.SendFn, *, older_than: datetime | None = None, limit: int = 500
    ) -> int:
        """Publish what crashed writers left in complaint outboxes written before ``older_than``."""
        return await outbox.relay_pending(self.complaints, send, older_than=older_than, limit=limit)

    # ------------------------------------------------------------- customers

    async def customer_index(self, customer_id: str) -> Doc:
        """Return a customer's index: ``case_ids`` and ``placements`` (``[{key, case_id}]``)."""
        return await self.customers.find_one({"_id": customer_id}) or {}

    async def customer_indexes(self, customer_ids: Iterable[str]) -> dict[str, Doc]:
        """Return the indexes of these customers (empty for a customer without one)."""
        wanted = list(dict.fromkeys(customer_ids))
        docs = await _bounded([functools.partial(self.customer_index, c) for c in wanted])
        return dict(zip(wanted, docs, strict=True))

    async def insert_customer_indexes(self, docs: list[Doc]) -> set[str]:
        """Insert the indexes of customers seen for the first time; return those that existed."""
        return await insert_new(self.customers, docs)

    async def claim_customers(self, versions: dict[str, int], *, stale_after: timedelta) -> set[str]:
        """Claim the move of each customer document from ``versions[cid]`` to the next one.

        Returns the customers won. One ``insert_many`` into ``customer_claims`` (a unique
        ``_id`` per customer and version, atomic on FerretDB v1 and MongoDB alike); for a claim
        refused, a claim older than ``stale_after`` whose document is still at that version was
        left by a writer that died before its commit: it is removed and claimed afresh.
        """
        if not versions:
            return set()
        now = datetime.now(UTC)
        ids = {cid: f"{cid}#{v + 1}" for cid, v in versions.items()}
        refused = await insert_new(self.customer_claims, [
            {"_id": claim, "customer_id": cid, "at": now} for cid, claim in ids.items()
        ])
        lost = {cid for cid, claim in ids.items() if claim in refused}

        async def retake(cid: str) -> bool:
            claim = await self.customer_claims.find_one({"_id": ids[cid]})
            if claim is None or claim["at"] >= datetime.now(UTC) - stale_after:
                return False
            current = await self.customers.find_one({"_id": cid}, {"version": 1})
            if current is not None and int(current.get("version", 0)) != versions[cid]:
                return False
            await self.customer_claims.delete_one({"_id": ids[cid], "at": claim["at"]})
            log.warning("customer %s: took over a claim left for %s", cid, claim["at"])
            try:
                await self.customer_claims.insert_one(
                    {"_id": ids[cid], "customer_id": cid, "at": datetime.now(UTC)})
            except DuplicateKeyError:
                return False
            return True

        ordered = sorted(lost)
        retaken = await _bounded([functools.partial(retake, c) for c in ordered])
        return (set(versions) - lost) | {c for c, ok in zip(ordered, retaken, strict=True) if ok}

    async def commit_customers(self, commits: dict[str, Commit]) -> set[str]:
        """Apply claimed moves (one conditional write per customer); return the customers not moved.

        A customer without a document gets one (``insert_many``; refused: someone else made it);
        the others are updated by ``_id`` on the condition that they are still at the claimed
        version. One command per update: many updates in one command can deadlock FerretDB v1.
        """
        creates = [{"_id": cid, "version": 1, "case_ids": c.case_ids, "placements": c.placements,
                    "pending": c.pending, "pending_at": c.at}
                   for cid, c in commits.items() if not c.exists]
        failed: set[str] = set(await insert_new(self.customers, creates)) if creates else set()

        async def move(cid: str, c: Commit) -> bool:
            query: Doc = {"_id": cid, "version": {"$exists": False} if c.legacy else c.version}
            update: Doc = {"$set": {"version": c.version + 1, "pending": c.pending, "pending_at": c.at}}
            add: Doc = {}
            if c.case_ids:
                add["case_ids"] = {"$each": c.case_ids}
            if c.placements:
                add["placements"] = {"$each": c.placements}
            if add:
                update["$addToSet"] = add
            result = await self.customers.update_one(query, update)
            return result.modified_count == 1

        moves = [(cid, c) for cid, c in commits.items() if c.exists]
        done = await _bounded([functools.partial(move, cid, c) for cid, c in moves])
        failed.update(cid for (cid, _), ok in zip(moves, done, strict=True) if not ok)
        return failed

    # ------------------------------------------------------------- cases

    async def find_case(self, case_id: str) -> Doc | None:
        """Return a case by id."""
        return await self.cases.find_one({"_id": case_id})

    async def find_case_by_number(self, number: str) -> Doc | None:
        """Return a case by its human number (a scan on FerretDB: API only, not the hot path)."""
        return await self.cases.find_one({"case_number": number})

    async def cases_by_ids(self, case_ids: Iterable[str]) -> dict[str, Doc]:
        """Return the cases with these ids that exist (by ``_id``, concurrently)."""
        wanted = list(dict.fromkeys(case_ids))
        docs = await _bounded([functools.partial(self.find_case, c) for c in wanted])
        return {c: d for c, d in zip(wanted, docs, strict=True) if d is not None}

    async def insert_cases(self, docs: list[Doc]) -> set[str]:
        """Insert new cases; return the ids refused (the id or the case number existed)."""
        return await insert_new(self.cases, docs)

    async def link_complaints(self, links: list[tuple[str, list[str], Doc]]) -> list[str]:
        """Apply ``(case_id, keys, update)`` to open cases not holding any of ``keys`` yet.

        Returns the case ids where nothing changed (closed meanwhile, or linked already).
        """

        async def link(case_id: str, keys: list[str], update: Doc) -> bool:
            result = await self.cases.update_one(
                {"_id": case_id, "status": "open", "complaint_keys": {"$nin": keys}}, update
            )
            return result.modified_count == 1

        done = await _bounded([functools.partial(link, *a) for a in links])
        return [case_id for (case_id, _, _), ok in zip(links, done, strict=True) if not ok]

    async def close_case(self, case_id: str, *, closed_at: datetime, outcome: str, event_id: str) -> bool:
        """Mark a case closed once; False if it was closed already."""
        result = await self.cases.update_one(
            {"_id": case_id, "status": {"$ne": "closed"}},
            {
                "$set": {"status": "closed", "closed_at": closed_at, "outcome": outcome,
                         "updated_at": closed_at},
                "$push": {"timeline": {"at": closed_at, "what": "closed", "outcome": outcome,
                                       "event_id": event_id}},
            },
        )
        return result.modified_count == 1

    async def search_cases(
        self, query: Doc, *, skip: int, limit: int
    ) -> tuple[list[Doc], int]:
        """Return one page of cases matching ``query`` (newest first) and the total."""
        total = await self.cases.count_documents(query)
        cursor = self.cases.find(query).sort([("received_at", DESCENDING), ("_id", ASCENDING)])
        items = [d async for d in cursor.skip(skip).limit(limit)]
        return items, total

    # ------------------------------------------------------------- case numbers

    async def claim_number_block(self, series: str, start: int, size: int, owner: str) -> bool:
        """Claim sequences ``start .. start+size-1`` of ``series``; False if a block starts there."""
        try:
            await self.number_blocks.insert_one({
                "_id": f"{series}-{start:06d}", "series": series, "start": start, "size": size,
                "owner": owner, "claimed_at": datetime.now(UTC),
            })
        except DuplicateKeyError:
            return False
        return True

    async def number_block(self, series: str, start: int) -> Doc | None:
        """Return the block of ``series`` starting at ``start``, if claimed."""
        return await self.number_blocks.find_one({"_id": f"{series}-{start:06d}"})

    async def number_hint(self, series: str) -> int:
        """Return the highest sequence of ``series`` known claimed (0 if none): where to look next."""
        doc = await self.counters.find_one({"_id": series})
        return 0 if doc is None else int(doc.get("seq", 0))

    async def raise_number_hint(self, series: str, at_least: int) -> None:
        """Move the hint of ``series`` up to ``at_least`` (a hint only: a lost raise costs a walk)."""
        try:
            await self.counters.update_one({"_id": series}, {"$max": {"seq": at_least}}, upsert=True)
        except DuplicateKeyError:
            await self.counters.update_one({"_id": series}, {"$max": {"seq": at_least}})

    # ------------------------------------------------------------- personal data

    def _sealed_document(self, key: str, data: Doc, extra: Doc | None = None) -> Doc:
        """The ``personal_data`` document of a complaint: ``pii.SEALED_FIELDS`` sealed, the rest clear."""
        ring = self.keyring
        sealed = {name: (ring.seal(value, field=f"data.{name}", doc_id=key)
                         if name in pii.SEALED_FIELDS and value is not None else value)
                  for name, value in data.items()}
        doc: Doc = {"_id": key, "kid": ring.active, "data": sealed}
        for name, value in (extra or {}).items():
            doc[name] = (ring.seal(value, field=name, doc_id=key)
                         if name == "field_hashes" and value is not None else value)
        return doc

    async def store_personal_data(self, key: str, data: Doc) -> None:
        """Keep (or replace) the originals of one complaint's personal data, sealed."""
        doc = self._sealed_document(key, data)
        await self._personal.update_one({"_id": key}, {"$set": {"data": doc["data"], "kid": doc["kid"]}},
                                        upsert=True)

    async def store_personal_data_batch(
        self, data: dict[str, Doc], fingerprints: dict[str, Doc] | None = None
    ) -> set[str]:
        """Keep the originals of many complaints' personal data (sealed); return the keys already stored.

        ``fingerprints`` (key → ``content_hash``, ``field_hashes``) are kept beside them: what
        a later message with the same key is compared with. The insert is also the batch's
        existence check: a key stored before was seen by an earlier attempt, so only those
        keys need reading back (redelivery, crash recovery).
        """
        extra = fingerprints or {}
        return await insert_new(
            self._personal, [self._sealed_document(k, d, extra.get(k)) for k, d in data.items()]
        )

    async def personal_fingerprints(self, keys: Iterable[str]) -> dict[str, Doc]:
        """Return the hashes kept with these complaints' originals (by ``_id``, concurrently)."""
        wanted = list(dict.fromkeys(keys))

        async def one(key: str) -> Doc | None:
            doc = await self._personal.find_one({"_id": key}, {"content_hash": 1, "field_hashes": 1})
            if doc is not None and is_sealed(doc.get("field_hashes")):
                doc["field_hashes"] = self.keyring.open_json(doc["field_hashes"], field="field_hashes",
                                                             doc_id=key)
            return doc

        docs = await _bounded([functools.partial(one, k) for k in wanted])
        return {k: d for k, d in zip(wanted, docs, strict=True) if d is not None}

    async def record_conflicts(self, docs: list[Doc]) -> None:
        """Record conflicting duplicates for the desk (idempotent: one per key and content)."""
        await insert_new(self.conflicts, docs)

    async def read_personal_data(self, key: str, *, reader: str, purpose: str) -> Doc | None:
        """Return the originals of a complaint (opened), recording who read them and why.

        The one way to the originals: the read is recorded in ``original_reads`` before they
        are handed out (``shared.originals.record_read``; a read that cannot be recorded
        fails). None when the complaint has none (unknown, or erased by retention).
        """
        doc = await self._personal.find_one({"_id": key}, {"data": 1, "kid": 1})
        data: Doc | None = None if doc is None else doc.get("data")
        await record_read(self.db, reader=reader, purpose=purpose, collection=self._personal.name,
                          record_id=key, fields=sorted(data) if data else [], found=data is not None)
        if data is None:
            return None
        return {name: (self.keyring.open_text(value, field=f"data.{name}", doc_id=key)
                       if is_sealed(value) else value)
                for name, value in data.items()}

    async def erase_personal_data(self, keys: Iterable[str], *, at: datetime) -> int:
        """Erase the originals (and field hashes) of these complaints; return how many held any.

        The document stays with its ``content_hash`` and ``erased_at`` (a redelivery of the
        complaint is still recognised); ``kid`` becomes ``NO_KEY``. By ``_id``, one at a time.
        """

        async def erase(key: str) -> bool:
            result = await self._personal.update_one(
                {"_id": key, "erased_at": {"$exists": False}},
                {"$unset": {"data": "", "field_hashes": ""}, "$set": {"kid": NO_KEY, "erased_at": at}},
            )
            return result.modified_count == 1

        done = await _bounded([functools.partial(erase, k) for k in dict.fromkeys(keys)])
        return sum(done)

    async def rotate_personal_data(
        self, *, batch_size: int = 100, pause_s: float = 0.05, plaintext: bool = False
    ) -> RotationReport:
        """Re-encrypt originals still under an old key (``shared.crypto.rotate``); with
        ``plaintext``, also seal documents stored before sealing (reads the whole collection)."""
        fields = [f"data.{name}" for name in pii.SEALED_FIELDS] + ["field_hashes"]
        return await rotate(self._personal, keyring=self.keyring, fields=fields,
                            batch_size=batch_size, pause_s=pause_s, plaintext=plaintext)

    # ------------------------------------------------------------- retention

    async def schedule_erasure(self, case_id: str) -> bool:
        """Note a closed case for the retention sweep (idempotent); False if it is not closed."""
        case = await self.cases.find_one({"_id": case_id}, {"status": 1, "closed_at": 1})
        if case is None or case.get("status") != "closed" or case.get("closed_at") is None:
            return False
        try:
            await self.retention.insert_one({"_id": case_id, "closed_at": case["closed_at"]})
        except DuplicateKeyError:
            pass
        return True

    async def erasures_due(self, closed_before: datetime, *, limit: int) -> list[Doc]:
        """Closed cases whose originals are still kept and that closed before ``closed_before``."""
        cursor = self.retention.find({"closed_at": {"$lt": closed_before}}).limit(limit)
        return [d async for d in cursor]

    async def originals_erased(self, case_id: str, *, at: datetime) -> None:
        """Record on the case that its originals are gone, and drop it from the retention list."""
        await self.cases.update_one({"_id": case_id}, {"$set": {"originals_erased_at": at}})
        await self.retention.delete_one({"_id": case_id})


class CaseNumbers:
    """Hand out case numbers (``rules.case_number``: prefix-day-sequence) without a race or a scan.

    Each process claims *blocks* of sequences by inserting one document per block into
    ``case_number_blocks`` with ``_id = "<prefix>-<day>-<first sequence>"``. An insert into a
    unique ``_id`` is atomic on FerretDB and MongoDB alike (``$inc`` and
    ``find_one_and_update`` are not, on FerretDB v1), so two processes can never own the same
    block start. Blocks are chained: a block is only ever claimed where another ends (or at
    the start of the day), so blocks never overlap; a claim that clashes reads the clashing
    block by ``_id`` and moves to its end. Each process remembers where its last block ended
    and keeps the numbers it holds in memory behind an asyncio lock, so one batch needs one
    insert for all its new cases. ``counters`` keeps per day the highest sequence claimed (a
    hint, ``$max``; a stale hint only means a longer walk), so a process starting mid-day
    does not walk the whole chain. A block is exactly as large as the batch needs
    (``min_block`` at least), so numbers are lost (gaps) only where a process died or a write
    failed between claiming and using them; the unique index on ``case_number`` remains the
    safety net.
    """

    def __init__(self, repo: NumberStore, *, min_block: int = 1, owner: str | None = None) -> None:
        self._repo = repo
        self._min_block = min_block
        self._owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._lock = asyncio.Lock()
        self._free: dict[str, list[int]] = {}  # series -> numbers held, ascending
        self._next_start: dict[str, int] = {}  # series -> where this process tries its next block
        self._hint: asyncio.Task[None] | None = None  # the last hint raise, off the batch's path

    async def take(self, prefix: str, day: str, count: int) -> list[str]:
        """Return ``count`` unused case numbers of ``day``, ascending."""
        if count <= 0:
            return []
        series = f"{prefix}-{day}"
        async with self._lock:
            held = self._free.setdefault(series, [])
            if len(held) < count:
                start, size = await self._claim(series, max(count - len(held), self._min_block))
                held = self._free[series]
                held.extend(range(start, start + size))
            taken, self._free[series] = held[:count], held[count:]
        return [rules.case_number(prefix, day, n) for n in taken]

    async def _raise_hint(self, series: str, at_least: int) -> None:
        try:
            await self._repo.raise_number_hint(series, at_least)
        except Exception:  # noqa: BLE001 - a hint only: a lost raise costs the next process a walk
            log.warning("could not raise the case-number hint of %s", series, exc_info=True)

    def give_back(self, numbers: Iterable[str]) -> None:
        """Return numbers taken but certainly not used, to be handed out again."""
        for number in numbers:
            prefix, day, sequence = number.rsplit("-", 2)
            held = self._free.setdefault(f"{prefix}-{day}", [])
            held.append(int(sequence))
            held.sort()

    async def _claim(self, series: str, size: int) -> tuple[int, int]:
        start = self._next_start.get(series)
        if start is None:
            start = await self._repo.number_hint(series) + 1
        for attempt in range(1, 10_001):
            if start + size - 1 > rules.MAX_CASE_SEQUENCE:
                raise RegistrationConflict(f"case numbers of {series} are used up")
            if await self._repo.claim_number_block(series, start, size, self._owner):
                self._next_start[series] = start + size
                # the hint is only where the next process starts looking: the batch does not wait
                # for it (one round trip less per batch); one raise in flight at a time
                if self._hint is not None:
                    await self._hint
                self._hint = asyncio.ensure_future(self._raise_hint(series, start + size - 1))
                return start, size
            block = await self._repo.number_block(series, start)
            if block is not None:
                start = int(block["start"]) + int(block["size"])
            if attempt % 16 == 0:  # far behind: jump to the end of the highest known block
                start = max(start, await self._repo.number_hint(series) + 1)
        raise RegistrationConflict(f"could not claim case numbers of {series}")
