"""MongoDB access for intake's own collections (database ``<prefix>intake``).

Collections:

- ``complaints`` — one document per channel complaint, ``_id = "<channel>:<channel id>"``
  (plus a unique index on ``(channel, channel_complaint_id)``): the idempotency record.
  It is written in one insert together with the events it owes (``shared.outbox``).
- ``cases`` — one document per case; unique ``case_number``. A new case's ``_id`` is derived
  from the complaint that opened it, so a crash between writing the case and the complaint
  converges on redelivery instead of opening a second case.
- ``counters`` — one document per day and prefix; ``$inc`` hands out case-number sequences.
- ``customers`` — per customer, the ids of their cases and, for complaints being linked to
  an open case, which case (``placements``). It exists so the hot path reads by ``_id`` only:
  FerretDB v1 answers any other filter by scanning the whole collection.
- ``personal_data`` — the originals of personal data, behind ``store_personal_data`` /
  ``load_personal_data`` only, so encryption at rest can be added in one place.

Queries stay within what FerretDB v1 serves (no transactions, no ``$lookup``/``$facet``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.intake.errors import RegistrationConflict
from shared import outbox
from shared.contracts.envelope import Envelope

log = logging.getLogger(__name__)

Doc = dict[str, Any]


class IntakeRepository:
    """Intake's store."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.cases: AsyncCollection[Doc] = db["cases"]
        self.complaints: AsyncCollection[Doc] = db["complaints"]
        self.counters: AsyncCollection[Doc] = db["counters"]
        self.customers: AsyncCollection[Doc] = db["customers"]
        self.placements: AsyncCollection[Doc] = db["placements"]
        self._personal: AsyncCollection[Doc] = db["personal_data"]

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
        await self.cases.create_index([("complaint_keys", ASCENDING)], name="by_complaint_key")
        await self.cases.create_index([("received_at", DESCENDING)], name="by_received")
        await self.cases.create_index([("status", ASCENDING)], name="by_status")

    # ------------------------------------------------------------- complaints

    async def find_complaint(self, key: str) -> Doc | None:
        """Return the registration record of a channel complaint, if registered."""
        return await self.complaints.find_one({"_id": key}, {"outbox": 0})

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

    # ------------------------------------------------------------- cases

    async def find_case(self, case_id: str) -> Doc | None:
        """Return a case by id."""
        return await self.cases.find_one({"_id": case_id})

    async def find_case_by_number(self, number: str) -> Doc | None:
        """Return a case by its human number."""
        return await self.cases.find_one({"case_number": number})

    async def customer_index(self, customer_id: str) -> Doc:
        """Return a customer's index: ``case_ids`` and ``placements`` (``[{key, case_id}]``)."""
        return await self.customers.find_one({"_id": customer_id}) or {}

    async def note_placement(self, customer_id: str, key: str, case_id: str) -> None:
        """Remember which case a complaint is being added to, before adding it."""
        await self.customers.update_one(
            {"_id": customer_id}, {"$addToSet": {"placements": {"key": key, "case_id": case_id}}},
            upsert=True,
        )

    async def add_customer_case(self, customer_id: str, case_id: str) -> None:
        """Index a case under its customer (before the case is written; dangling ids are skipped)."""
        await self.customers.update_one(
            {"_id": customer_id}, {"$addToSet": {"case_ids": case_id}}, upsert=True
        )

    async def cases_by_id(self, case_ids: list[str]) -> list[Doc]:
        """Return the cases with these ids that exist, most recent complaint first."""
        cases = []
        for case_id in case_ids:
            case = await self.find_case(case_id)
            if case is not None:
                cases.append(case)
        return sorted(cases, key=lambda c: c["last_received_at"], reverse=True)

    async def next_sequence(self, counter_id: str) -> int:
        """Hand out the next value of a counter (atomic ``$inc`` with upsert)."""
        for _ in range(5):
            try:
                doc = await self.counters.find_one_and_update(
                    {"_id": counter_id}, {"$inc": {"seq": 1}}, upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                return int(doc["seq"])
            except DuplicateKeyError:
                # two first-of-the-day upserts raced; the loser's retry finds the document
                continue
        raise RegistrationConflict(f"counter {counter_id} kept conflicting")

    async def highest_case_sequence(self, number_prefix: str) -> int:
        """Return the highest sequence used in case numbers starting with ``number_prefix``."""
        doc = await self.cases.find_one(
            {"case_number": {"$gte": number_prefix, "$lt": number_prefix + "~"}},
            {"case_number": 1}, sort=[("case_number", DESCENDING)],
        )
        return 0 if doc is None else int(doc["case_number"].rsplit("-", 1)[1])

    async def raise_counter(self, counter_id: str, at_least: int) -> None:
        """Move a counter up to ``at_least`` (never down)."""
        try:
            await self.counters.update_one({"_id": counter_id}, {"$max": {"seq": at_least}}, upsert=True)
        except DuplicateKeyError:
            await self.counters.update_one({"_id": counter_id}, {"$max": {"seq": at_least}})

    async def insert_case(self, doc: Doc) -> Doc | None:
        """Insert a new case; if one with the same ``_id`` exists, return that one instead.

        Returns None when the case number is taken already: the caller draws a new number.
        (FerretDB v1 can hand the same ``$inc`` value to two concurrent writers; the unique
        index on ``case_number`` is what guarantees no number is ever used twice.)
        """
        try:
            await self.cases.insert_one(doc)
            return doc
        except DuplicateKeyError:
            existing = await self.find_case(doc["_id"])
            if existing is not None:
                log.info("case %s existed already; keeping number %s", doc["_id"], existing["case_number"])
                return existing
            if await self.find_case_by_number(doc["case_number"]) is not None:
                log.warning("case number %s taken already; drawing another", doc["case_number"])
                return None
            raise

    async def link_complaint(
        self, case_id: str, key: str, *, push: Doc, add: Doc, set_fields: Doc
    ) -> bool:
        """Add a complaint to an open case once; False if the case is closed or already has it."""
        result = await self.cases.update_one(
            {"_id": case_id, "status": "open", "complaint_keys": {"$ne": key}},
            {"$push": push, "$addToSet": {"complaint_keys": key, **add}, "$set": set_fields},
        )
        return result.modified_count == 1

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

    # ------------------------------------------------------------- personal data

    async def store_personal_data(self, key: str, data: Doc) -> None:
        """Keep the originals of a complaint's personal data (the one place to encrypt them)."""
        await self._personal.update_one({"_id": key}, {"$set": {"data": data}}, upsert=True)

    async def load_personal_data(self, key: str) -> Doc | None:
        """Return the originals stored for a complaint, or None."""
        doc = await self._personal.find_one({"_id": key})
        return None if doc is None else doc["data"]
