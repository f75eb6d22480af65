"""The transactional outbox, in one document: a state change and the events it must publish.

MongoDB multi-document transactions need a replica set and FerretDB v1 has none, so a
handler writes its state change *and* the events it owes in the same single-document write:
``outbox.<event_id> = {"topic", "key", "value"}`` plus ``outbox_pending: true``. ``relay``
then publishes each pending event and removes it (``$unset``) once the broker acknowledged
it. A crash in between leaves the event in the document; the next redelivery or the
periodic ``relay_pending`` sweep publishes it again. Consumers dedupe on ``event_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from shared.contracts.envelope import Envelope

log = logging.getLogger(__name__)

#: How long a periodic sweep leaves a fresh outbox to the writer that is relaying it now.
SWEEP_GRACE = timedelta(seconds=10)

#: Publish (logical topic, key, value bytes) and return once acknowledged.
SendFn = Callable[[str, bytes, bytes], Awaitable[object]]


def outbox_fields(events: list[Envelope[Any]]) -> dict[str, Any]:
    """Return the ``$set`` fields that put ``events`` in a document's outbox."""
    fields: dict[str, Any] = {
        f"outbox.{e.event_id}": {
            "topic": e.event_type,
            "key": e.case_id,
            "value": e.model_dump_json(),
            # the server may reorder a document's fields: keep the order explicitly
            "order": f"{e.occurred_at.isoformat()}#{i:04d}",
        }
        for i, e in enumerate(events)
    }
    if events:
        fields["outbox_pending"] = True
        fields["outbox_at"] = datetime.now(UTC)
    return fields


def outbox_document(events: list[Envelope[Any]]) -> dict[str, Any]:
    """Return the fields that put ``events`` in a new document's outbox (for inserts)."""
    doc: dict[str, Any] = {"outbox": {}, "outbox_pending": False}
    for key, value in outbox_fields(events).items():
        if key.startswith("outbox."):
            doc["outbox"][key.removeprefix("outbox.")] = value
        else:
            doc[key] = value
    return doc


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
    the same events twice). Periodic sweeps pass ``grace=SWEEP_GRACE``.
    """
    if older_than is None and grace is not None:
        older_than = datetime.now(UTC) - grace
    query: dict[str, Any] = {"outbox_pending": True}
    if older_than is not None:
        query["$or"] = [{"outbox_at": {"$lt": older_than}}, {"outbox_at": {"$exists": False}}]
    total = 0
    async for doc in collection.find(query, {"_id": 1}).limit(limit):
        total += await relay(collection, doc["_id"], send)
    if total:
        log.info("relayed %d events left in outboxes", total)
    return total
