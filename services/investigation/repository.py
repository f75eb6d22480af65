"""Investigation's MongoDB collections: its case documents and the simulated core systems.

``investigations`` holds one document per case (``_id`` = case id: finding, evidence, facts,
outbox). The simulated core systems keep one document per customer in ``core_records``
(``_id`` = customer id) holding what an investigation reads — the customer's account,
contract, repayment schedule, payments, charges, collection contacts, service interactions
and sales records, one list each — and the ids of the customer's external appraisals, which
live in ``appraisals`` (``_id`` = ``AP-<case id>``) because the appraiser updates them on its
own. Reference data: ``products``, ``rate_caps``. Money is integer fen.

Every read on the per-message path is by ``_id`` (FerretDB v1 pushes down only a filter on
``_id`` alone on SQLite; ``$in`` is not pushed down on either backend): many keys are read
with concurrent ``find_one`` calls. Only the periodic sweep queries by ``status``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.investigation.ports import RecordsRequest
from services.investigation.records import PRODUCTS, CoreRecords, normalise
from services.investigation.settings import Settings
from shared.contracts.envelope import Envelope
from shared.mongo import find_by_ids, insert_new
from shared.outbox import open_ledger, outbox_fields

log = logging.getLogger(__name__)

#: the lists a customer's ``core_records`` document holds (appraisals are kept apart)
HELD = tuple(name for name in CoreRecords.COLLECTIONS if name != "appraisals")




async def _insert_if_missing(collection: AsyncCollection[dict[str, Any]], doc: dict[str, Any]) -> bool:
    """``$setOnInsert`` upsert that tolerates another process seeding the same ``_id`` at once
    (FerretDB's upsert is find-then-insert: two workers starting on a fresh database had one
    exit on a duplicate key). Return whether this call inserted it."""
    try:
        result = await collection.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True)
    except DuplicateKeyError:
        return False
    return result.upserted_id is not None

class RecordsRepository:
    """The simulated core systems' records in MongoDB, one document per customer, read by ``_id``.

    A ``RecordsBacking`` (see ``ports``): wrap it in ``records.SimulatedCoreSystems`` to get
    records created on first sight.
    """

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.customers = db["core_records"]
        self.appraisals = db["appraisals"]

    async def ensure_indexes(self) -> None:
        """Nothing beyond ``_id``: every read is by key."""

    async def seed_reference(self, settings: Settings) -> int:
        """Write products and their rate caps if missing; return how many were added."""
        added = 0
        for product in PRODUCTS:
            added += await _insert_if_missing(self.db["products"], product)
            if product.get("apr_cap") is not None:
                cap = {"_id": product["_id"], "apr_cap": str(min(settings.rate_cap_apr, Decimal(product["apr_cap"]))),
                       "hard_cap": str(settings.hard_cap_apr),
                       "basis_zh": "综合年化利率不超过 24%（司法保护上限参照），36% 以上部分无效",
                       "basis_en": "all-in APR at most 24% (judicial protection line); above 36% void"}
                await _insert_if_missing(self.db["rate_caps"], cap)
        return added

    async def load_many(self, requests: Sequence[RecordsRequest]) -> dict[str, CoreRecords]:
        """The records of the requested customers the store holds (two rounds of reads by ``_id``:
        the customers' documents, then the appraisals they name)."""
        return await self.load_customers([r.customer_id for r in requests])

    async def load_customers(self, customer_ids: Sequence[str]) -> dict[str, CoreRecords]:
        """The records of these customers the store holds, by customer id."""
        docs = await find_by_ids(self.customers, customer_ids)
        appraisal_ids = [a for d in docs.values() for a in d.get("appraisal_ids", [])]
        appraisals = await find_by_ids(self.appraisals, appraisal_ids) if appraisal_ids else {}
        out: dict[str, CoreRecords] = {}
        for cid, doc in docs.items():
            records = CoreRecords(**{name: doc.get(name, []) for name in HELD})
            records.appraisals = sorted((appraisals[a] for a in doc.get("appraisal_ids", []) if a in appraisals),
                                        key=lambda d: str(d["_id"]))
            out[cid] = records
        return out

    async def load(self, customer_id: str) -> CoreRecords | None:
        """One customer's records, or None."""
        return (await self.load_customers([customer_id])).get(customer_id)

    async def store_many(self, records: Sequence[CoreRecords]) -> set[str]:
        """Store each customer's records unless already there; return the customer ids that were.

        Appraisals first, then the customers' documents in one unordered bulk insert: a
        customer's document exists only once everything it names does. Lists are kept sorted
        by ``_id`` (``records.normalise``), the order every reader gets.
        """
        records = [normalise(r) for r in records]
        await insert_new(self.appraisals, [a for r in records for a in r.appraisals])
        docs = [{"_id": r.customer_id, **{name: getattr(r, name) for name in HELD},
                 "appraisal_ids": [a["_id"] for a in r.appraisals]} for r in records]
        return {str(i) for i in await insert_new(self.customers, docs)}

    async def store(self, records: CoreRecords) -> None:
        """Store one customer's records unless already there."""
        await self.store_many([records])


class Repository:
    """Investigation's own case documents (``investigations``)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.investigations = db["investigations"]

    async def ensure_indexes(self) -> None:
        await self.investigations.create_index([("status", ASCENDING)], name="status")
        await self.investigations.create_index([("outbox_pending", ASCENDING)], name="outbox_pending")

    async def get(self, case_id: str) -> dict[str, Any] | None:
        return await self.investigations.find_one({"_id": case_id})

    async def get_many(self, case_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return await find_by_ids(self.investigations, case_ids)

    async def insert_many(self, docs: Sequence[dict[str, Any]]) -> set[str]:
        already = await insert_new(self.investigations, await open_ledger(self.investigations, docs))
        return {d["_id"] for d in docs if d["_id"] not in already}

    async def replace(self, doc: dict[str, Any], expected: dict[str, Any], events: Sequence[Envelope[Any]]) -> bool:
        """Conditional update on ``_id`` and ``expected`` (the case's revision/status: rare paths,
        a linked complaint with new facts or a finished appraisal)."""
        fields = {k: v for k, v in doc.items() if k != "_id"}
        result = await self.investigations.update_one(
            {"_id": doc["_id"], **expected}, {"$set": {**fields, **outbox_fields(list(events))}})
        return result.matched_count == 1

    async def add_complaints(self, case_id: str, complaint_ids: Sequence[str]) -> None:
        await self.investigations.update_one({"_id": case_id},
                                             {"$addToSet": {"complaint_ids": {"$each": list(complaint_ids)}}})

    async def paused(self, limit: int = 200) -> list[dict[str, Any]]:
        """Cases waiting for an external appraisal (few; the periodic sweep looks whether theirs
        is done). A query on ``status``: not on the per-message path."""
        cursor = self.investigations.find({"status": "paused"}).sort("resume_at", 1).limit(limit)
        return [d async for d in cursor]
