"""The transactional outbox, in one document: a state change and the events it must publish.

MongoDB multi-document transactions need a replica set and FerretDB v1 has none, so a
handler writes its state change *and* the events it owes in the same single-document write:
``outbox.<event_id> = {"topic", "key", "value"}`` plus ``outbox_pending: true``. ``relay``
then publishes each pending event and removes it (``$unset``) once the broker acknowledged
it. A crash in between leaves the event in the document; the next redelivery or the
periodic ``relay_pending`` sweep publishes it again. Consumers dedupe on ``event_id``.

**The batch ledger**, for documents a batch *inserts* (``ledger_document``): their events go
into the batch's entries in the ledger collection (``open_ledger``, written before the
documents, at most ``LEDGER_ENTRY_DOCS`` documents' events an entry), and the documents carry
only the batch's token (``ledger_batch``). Publishing the batch deletes its entries instead of
updating every document (FerretDB v1 rewrites a whole document and all its index entries for
an update: about 2 ms a document, three times its insert). A batch that died before
publishing leaves its entries; a redelivery (``Written(..., ledger=token)`` with no document)
or the sweep (``relay_ledgers``) publishes the events of the documents that were inserted
under the token, and deletes them. Nothing of an event stays at rest once it is published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from shared import metrics
from shared.contracts.envelope import Envelope
from shared.mongo import find_by_ids

log = logging.getLogger(__name__)

#: How long a periodic sweep leaves a fresh outbox to the writer that is relaying it now.
#: A sweep that takes over a live writer's outbox publishes its events a second time (same
#: event ids; consumers dedupe, but the work is done twice downstream). Under load a batch
#: of 500 takes several seconds from its write to its clear, and with 10 s the fault suite
#: saw one republish per complaint (two workers' sweeps racing the writers); a writer that
#: crashed is redelivered its batch and relays it itself, so the sweep is only the last
#: resort and may wait a minute.
SWEEP_GRACE = timedelta(seconds=60)

#: Publish (logical topic, key, value bytes) and return once acknowledged.
SendFn = Callable[[str, bytes, bytes], Awaitable[object]]


#: The token of the batch being handled (``batch_token``): documents *inserted* with an outbox
#: in one batch carry it (``outbox_batch``), so their outboxes are cleared with one
#: ``update_many`` on it after publishing instead of one update per document.
_BATCH: ContextVar[str | None] = ContextVar("parley_outbox_batch", default=None)


@contextlib.contextmanager
def batch_token() -> Iterator[str]:
    """Give the documents inserted inside this block one batch token (the runtime wraps each
    batch, timer run and request in one)."""
    token = uuid.uuid4().hex
    reset = _BATCH.set(token)
    try:
        yield token
    finally:
        _BATCH.reset(reset)


def outbox_fields(events: list[Envelope[Any]]) -> dict[str, Any]:
    """Return the ``$set`` fields that put ``events`` in a document's outbox.

    Each item carries ``at``, the time of this write, equal to the document's ``outbox_at``
    (milliseconds, as the server keeps them): the publisher clears the outbox in one update
    only if ``outbox_at`` is still that time, i.e. nobody added events meanwhile.
    """
    now = datetime.now(UTC)
    at = now.replace(microsecond=now.microsecond // 1000 * 1000)
    fields: dict[str, Any] = {
        f"outbox.{e.event_id}": {
            "topic": e.event_type,
            "key": e.case_id,
            "value": e.model_dump_json(),
            # the server may reorder a document's fields: keep the order explicitly
            "order": f"{e.occurred_at.isoformat()}#{i:04d}",
            "at": at,
        }
        for i, e in enumerate(events)
    }
    if events:
        fields["outbox_pending"] = True
        fields["outbox_at"] = at
        # an update's events never join a batch clear: the document may hold older events
        fields["outbox_batch"] = uuid.uuid4().hex
    return fields


def outbox_document(events: list[Envelope[Any]]) -> dict[str, Any]:
    """Return the fields that put ``events`` in a new document's outbox (for inserts).

    Inside ``batch_token`` the document and each of its items carry the batch's token: a new
    document's outbox holds only these events, so once they are published the whole outbox
    of every document still carrying the token can be cleared in one ``update_many``.
    """
    doc: dict[str, Any] = {"outbox": {}, "outbox_pending": False}
    for key, value in outbox_fields(events).items():
        if key.startswith("outbox."):
            doc["outbox"][key.removeprefix("outbox.")] = value
        else:
            doc[key] = value
    token = _BATCH.get()
    if events and token is not None:
        doc["outbox_batch"] = token
        for item in doc["outbox"].values():
            item["batch"] = token
    return doc


#: The collection (in each service's database) of open ledger entries.
LEDGER_COLLECTION = "outbox_ledger"

#: Most documents whose events one ledger entry holds (an entry stays far below 16 MB).
LEDGER_ENTRY_DOCS = 200


def ledger_document(events: list[Envelope[Any]]) -> dict[str, Any]:
    """Return the fields of a new document whose ``events`` the batch ledger carries.

    Inside ``batch_token`` only (outside one, this is ``outbox_document``). The inserter passes
    the documents through ``open_ledger``, which moves the events into the batch's ledger
    entries and returns the documents to insert (they keep only ``ledger_batch``), then returns
    ``Written(collection, doc_id, doc["outbox_ledger"], ledger=doc["ledger_batch"])`` for each
    document it inserted. The document's own ``outbox`` starts empty, for events later updates owe.
    """
    token = _BATCH.get()
    if token is None or not events:
        return outbox_document(events)
    items = outbox_document(events)["outbox"]
    return {"outbox": {}, "outbox_pending": False, "outbox_ledger": items, "ledger_batch": token}


async def open_ledger(collection: AsyncCollection[dict[str, Any]],
                      docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write the batch's ledger entries (its documents' events) and return the documents to
    insert, without their events. Call it before inserting them."""
    out: list[dict[str, Any]] = []
    by_token: dict[str, dict[str, Any]] = {}
    for d in docs:
        if d.get("ledger_batch") and "outbox_ledger" in d:
            by_token.setdefault(d["ledger_batch"], {})[str(d["_id"])] = d["outbox_ledger"]
            out.append({k: v for k, v in d.items() if k != "outbox_ledger"})
        else:
            out.append(d)
    ledger = collection.database[LEDGER_COLLECTION]
    at = datetime.now(UTC)
    for token, events in by_token.items():
        ids = list(events)
        # the events as one JSON string: FerretDB converts a document field by field, and
        # hundreds of nested items cost it far more than one string of the same size
        entries = [{"_id": f"{collection.name}:{token}:{n}", "collection": collection.name, "token": token,
                    "at": at, "events": json.dumps({i: _compact(events[i]) for i in ids[start:start + LEDGER_ENTRY_DOCS]},
                                                   ensure_ascii=False, separators=(",", ":"))}
                   for n, start in enumerate(range(0, len(ids), LEDGER_ENTRY_DOCS))]
        try:
            await ledger.insert_many(entries, ordered=False)
        except BulkWriteError as exc:  # the same batch opened again (a retry in this process)
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
    return out


def _compact(items: dict[str, Any]) -> list[list[str]]:
    """A document's outbox items as ``[event_id, topic, key, value, order]`` rows (what sending needs)."""
    return [[event_id, it["topic"], it["key"], it["value"], it.get("order", "")] for event_id, it in items.items()]


def _items(rows: list[list[str]]) -> dict[str, Any]:
    return {event_id: {"topic": topic, "key": key, "value": value, "order": order}
            for event_id, topic, key, value, order in rows}


async def relay_ledgers(db: AsyncDatabase[dict[str, Any]], send: SendFn, *,
                        grace: timedelta | None = None, limit: int = 100) -> int:
    """Publish the batches whose writers died before publishing them; return the event count.

    The ledger holds only unpublished batches, so this reads a handful of entries however
    much data there is. Entries younger than ``grace`` are left to their writer.
    """
    cutoff = datetime.now(UTC) - grace if grace is not None else None
    left: dict[tuple[str, str], Written] = {}
    async for entry in db[LEDGER_COLLECTION].find({}, {"collection": 1, "token": 1, "at": 1}).limit(limit):
        if cutoff is not None and entry.get("at") is not None and entry["at"] >= cutoff:
            continue
        left.setdefault((entry["collection"], entry["token"]),
                        Written(db[entry["collection"]], None, None, ledger=entry["token"]))
    total = await publish_written(list(left.values()), send)
    if total:
        log.info("relayed %d events of %d unpublished batch(es)", total, len(left))
    return total


async def _expand_ledgers(items: list[Written]) -> list[Written]:
    """Replace each whole-batch ``Written`` by the documents of that batch (if still open):
    the events its entries hold for the documents that were inserted under its token."""
    out: list[Written] = []
    seen: set[tuple[int, str]] = set()
    for w in items:
        if w.doc_id is not None or w.ledger is None:
            out.append(w)
            continue
        key = (id(w.collection), w.ledger)
        if key in seen:
            continue
        seen.add(key)
        ledger = w.collection.database[LEDGER_COLLECTION]
        events: dict[str, dict[str, Any]] = {}
        opened: datetime | None = None
        async for entry in ledger.find({"token": w.ledger}):
            if entry.get("collection") == w.collection.name:
                events.update({i: _items(rows) for i, rows in json.loads(entry.get("events") or "{}").items()})
                at = entry.get("at")
                opened = at if opened is None or (at is not None and at < opened) else opened
        if not events:
            continue  # published and closed already (or never opened)
        found: set[str] = set()
        async for doc in w.collection.find({"ledger_batch": w.ledger}, {"_id": 1}):
            if str(doc["_id"]) in events:
                found.add(str(doc["_id"]))
        # Close the batch only when every document it announced is there, or when its writer is
        # surely gone (older than the sweep's grace: documents never inserted owe nothing). A
        # writer still inserting its batch (a rebalance handed the same complaints to another
        # worker meanwhile) must not find its batch closed under it: its late documents' events
        # would never go out. Not closing costs at most a second publication (same event ids).
        young = opened is not None and opened.tzinfo is not None and datetime.now(UTC) - opened < SWEEP_GRACE
        close = not (set(events) - found and young)
        for doc_id in sorted(found):
            out.append(Written(w.collection, doc_id, events[doc_id], ledger=w.ledger, close=close))
        if close:
            out.append(Written(w.collection, None, {}, ledger=w.ledger))
    return out


async def relay(
    collection: AsyncCollection[dict[str, Any]],
    doc_id: Any,
    send: SendFn,
    *,
    pending: dict[str, Any] | None = None,
) -> int:
    """Publish a document's pending events in the order they were written; return the count.

    ``pending`` is the outbox the caller has just written, which saves reading it back.
    Sent events are removed and the flag cleared in one update on ``_id`` alone (FerretDB
    serves those far faster than filters on other fields); if a concurrent writer added an
    event meanwhile, the flag is raised again so the sweep cannot miss it.
    """
    if pending is not None and not pending:
        return 0
    if pending is None:
        doc = await collection.find_one({"_id": doc_id}, {"outbox": 1})
        if doc is None:
            return 0
        pending = doc.get("outbox") or {}
    for item in sorted(pending.values(), key=lambda it: it.get("order", "")):
        await send(item["topic"], item["key"].encode(), item["value"].encode())
    update: dict[str, Any] = {"$set": {"outbox_pending": False}}
    if pending:
        update["$unset"] = {f"outbox.{event_id}": "" for event_id in pending}
    after = await collection.find_one_and_update(
        {"_id": doc_id}, update, return_document=ReturnDocument.AFTER
    )
    if after is not None and after.get("outbox"):
        await collection.update_one({"_id": doc_id}, {"$set": {"outbox_pending": True}})
    return len(pending)


async def relay_pending(
    collection: AsyncCollection[dict[str, Any]],
    send: SendFn,
    *,
    older_than: datetime | None = None,
    grace: timedelta | None = None,
    limit: int = 500,
) -> int:
    """Publish what crashed writers left in any document's outbox; return the count.

    With ``older_than`` (or ``grace``: now minus it), outboxes written after it are left to
    the writer that is relaying them right now (a sweep racing a live writer would publish
    the same events twice). Periodic sweeps pass ``grace=SWEEP_GRACE``. The query is the
    single equality ``outbox_pending: true`` (indexed, and pushed down by FerretDB); the
    age is checked here.
    """
    if older_than is None and grace is not None:
        older_than = datetime.now(UTC) - grace
    left: list[Written] = []
    async for doc in collection.find({"outbox_pending": True}, {"outbox": 1, "outbox_at": 1}).limit(limit):
        at = doc.get("outbox_at")
        if older_than is not None and at is not None and at >= older_than:
            continue
        left.append(Written(collection, doc["_id"], doc.get("outbox") or {}))
    total = await publish_written(left, send)
    if total:
        log.info("relayed %d events left in outboxes", total)
    return total


class _RecentlySent:
    """The ids of the last ``size`` events this process published (acknowledged by the broker).

    A batch is retried whole when something fails after some of its events went out (the
    broker or the database restarting): without this, every event of the batch would be sent
    again under its id. Consumers dedupe either way; this keeps the work off them. A process
    that dies forgets, and its successor may send some events twice (same ids) — at least once.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)


_SENT = _RecentlySent(200_000)




@dataclass(frozen=True)
class Written:
    """A document a handler wrote together with events to publish (its outbox).

    ``pending`` is the outbox the writer just wrote (event id -> item), which saves reading
    it back; None means "read it". It must be the document's *whole* outbox as that write left
    it: the publisher clears the flag once these items are gone, so an event an earlier writer
    left unpublished (killed between its write and its relay) and not listed here would be
    stranded where no sweep looks. A writer that did not read the outbox it updated passes
    None. Handlers return these; the runtime publishes them after the batch (``publish_written``).
    """

    collection: AsyncCollection[dict[str, Any]]
    doc_id: Any
    pending: dict[str, Any] | None = None
    #: the batch token when ``pending`` is the document's ``outbox_ledger`` (``ledger_document``);
    #: with ``doc_id`` None: "every document of that batch, if it is still unpublished"
    ledger: str | None = None
    #: with ``ledger``: whether publishing this may close the batch's ledger entries
    close: bool = True


async def publish_written(written: Iterable[Written | None], send: SendFn) -> int:
    """Publish the outboxes of many written documents, then clear them in bulk; return the count.

    Events of one document go out in the order they were written; documents whose events
    share a Kafka key go out in the order they were written; different keys go out
    concurrently (the producer batches them). Each document's sent events are then removed
    and its flag cleared, in one bulk write per collection, by ``_id`` only: the flag is
    cleared only where the outbox is empty afterwards, so an event a concurrent writer added
    meanwhile keeps its flag for the sweep.
    """
    items = await _expand_ledgers([w for w in written if w is not None])
    if not items:
        return 0
    missing: dict[int, tuple[AsyncCollection[dict[str, Any]], list[Any]]] = {}
    for w in items:
        if w.pending is None:
            missing.setdefault(id(w.collection), (w.collection, []))[1].append(w.doc_id)
    if missing:
        outboxes = {cid: await find_by_ids(collection, ids, projection={"outbox": 1})
                    for cid, (collection, ids) in missing.items()}
        items = [w if w.pending is not None else
                 Written(w.collection, w.doc_id, (outboxes[id(w.collection)].get(w.doc_id) or {}).get("outbox") or {})
                 for w in items]
    # the same document written twice in one batch: publish its latest outbox once (a
    # document's ledger events and its outbox events are kept apart: they are closed apart)
    latest: dict[tuple[int, Any, str | None], Written] = {}
    for w in items:
        key = (id(w.collection), w.doc_id, w.ledger)
        merged = {**(latest[key].pending or {})} if key in latest else {}
        merged.update(w.pending or {})
        close = w.close and (latest[key].close if key in latest else True)
        latest[key] = Written(w.collection, w.doc_id, merged, ledger=w.ledger, close=close)
    chains: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for w in latest.values():
        for event_id, item in sorted((w.pending or {}).items(), key=lambda kv: kv[1].get("order", "")):
            chains.setdefault(item["key"], []).append((event_id, item))

    async def chain(events: list[tuple[str, dict[str, Any]]]) -> None:
        for event_id, item in events:
            if event_id in _SENT:  # acknowledged by the broker earlier in this process: a retried
                continue           # batch (broker or database outage) does not send it again
            await send(item["topic"], item["key"].encode(), item["value"].encode())
            _SENT.add(event_id)
            metrics.EVENTS_PUBLISHED.labels(item["topic"]).inc()

    await asyncio.gather(*(chain(c) for c in chains.values()))
    by_collection: dict[int, tuple[AsyncCollection[dict[str, Any]], list[Written]]] = {}
    closed: dict[tuple[int, str], AsyncCollection[dict[str, Any]]] = {}
    kept: set[tuple[int, str]] = set()
    for w in latest.values():
        if w.ledger is not None:  # the batch's documents stay as they are: its entries go
            if w.close:
                closed[(id(w.collection), w.ledger)] = w.collection
            else:
                kept.add((id(w.collection), w.ledger))
            continue
        by_collection.setdefault(id(w.collection), (w.collection, []))[1].append(w)
    for (cid, token), collection in closed.items():
        if (cid, token) in kept:  # part of the batch may still be being written by its writer
            continue
        await collection.database[LEDGER_COLLECTION].delete_many({"token": token, "collection": collection.name})
    for collection, sent in by_collection.values():
        await _clear(collection, [w for w in sent if w.pending] , [w for w in sent if not w.pending])
    return sum(len(w.pending or {}) for w in latest.values() if w.doc_id is not None)


#: Most updates sent in one ``update`` command. FerretDB v1.24.2 keeps each update's cursor
#: (and its pooled PostgreSQL connection; the pool has 50) open until the whole command ends,
#: so one command with a few hundred updates that match documents deadlocks the server.
UPDATES_PER_COMMAND = 25


async def _bulk_in_commands(collection: AsyncCollection[dict[str, Any]], ops: list[UpdateOne]) -> int:
    """Run updates in commands of at most ``UPDATES_PER_COMMAND``; return how many matched."""
    matched = 0
    for start in range(0, len(ops), UPDATES_PER_COMMAND):
        result = await collection.bulk_write(ops[start:start + UPDATES_PER_COMMAND], ordered=False)
        matched += result.matched_count
    return matched


async def _clear(collection: AsyncCollection[dict[str, Any]], sent: list[Written],
                 empty: list[Written]) -> None:
    """Remove published events from their documents' outboxes and clear the flags.

    One ``update_many`` per batch for documents the batch inserted (their items carry its
    token, ``outbox_document``) and nobody wrote since; one update per document where the
    outbox was written once and nobody wrote since (``outbox_at`` still equals the items'
    ``at``); otherwise, and for outboxes written
    before items carried ``at``, the careful way: remove the sent events, then clear the
    flag only where the outbox is empty, so an event added meanwhile keeps its flag.
    """
    quick: list[Written] = []
    careful: list[Written] = list(empty)
    batches: dict[str, list[Written]] = {}
    rest: list[Written] = []
    for w in sent:
        tokens = {item.get("batch") for item in (w.pending or {}).values()}
        token = next(iter(tokens)) if len(tokens) == 1 else None
        (batches.setdefault(token, []) if token else rest).append(w)
    for token, group in batches.items():
        # one command for the batch's new documents that nobody wrote since (the token is still
        # theirs); FerretDB finds them by the token (indexed, pushed down) and checks the ids
        result = await collection.update_many(
            {"outbox_batch": token, "_id": {"$in": [w.doc_id for w in group]}},
            {"$set": {"outbox": {}, "outbox_pending": False}, "$unset": {"outbox_batch": ""}},
        )
        if result.matched_count < len(group):
            # someone wrote to some of them meanwhile: those are still pending (the flag is
            # indexed); only they go the per-document ways below, which are idempotent
            ids = [w.doc_id for w in group]
            left = {d["_id"] async for d in collection.find(
                {"outbox_pending": True, "_id": {"$in": ids}}, {"_id": 1})}
            rest.extend(w for w in group if w.doc_id in left)
    sent = rest
    for w in sent:
        ats = [item.get("at") for item in (w.pending or {}).values()]
        (quick if ats and None not in ats else careful).append(w)
    if quick:
        ops = [UpdateOne(
            {"_id": w.doc_id, "outbox_at": max(item["at"] for item in (w.pending or {}).values())},
            {"$unset": {f"outbox.{eid}": "" for eid in w.pending or {}},
             "$set": {"outbox_pending": False}},
        ) for w in quick]
        if await _bulk_in_commands(collection, ops) < len(ops):
            careful.extend(quick)  # someone wrote meanwhile; the careful way is idempotent
    if not careful:
        return
    await _bulk_in_commands(collection, [
        UpdateOne({"_id": w.doc_id}, {"$unset": {f"outbox.{eid}": "" for eid in w.pending or {}}})
        for w in careful if w.pending
    ])
    await _bulk_in_commands(collection, [
        UpdateOne({"_id": w.doc_id, "outbox": {}}, {"$set": {"outbox_pending": False}})
        for w in careful
    ])
