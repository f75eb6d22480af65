"""Investigation's MongoDB collections: its case documents and the simulated core systems.

``investigations`` holds one document per case (finding, evidence, facts, outbox). The
core-system collections (``accounts``, ``contracts``, ``repayment_schedules``,
``payments``, ``charges``, ``collection_contacts``, ``service_interactions``,
``sales_records``, ``appraisals``) and the reference data (``products``, ``rate_caps``)
stand for the institution's own systems (see ``records``). Money is integer fen.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.investigation.records import PRODUCTS, CoreRecords, account_id_of
from services.investigation.settings import Settings
from shared.contracts.envelope import Envelope
from shared.outbox import outbox_document, outbox_fields

log = logging.getLogger(__name__)

BY_ACCOUNT = ("contracts", "repayment_schedules", "payments", "charges", "collection_contacts",
              "sales_records", "appraisals")


class RecordsRepository:
    """The core systems' records, read per customer."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        for name in BY_ACCOUNT:
            await self.db[name].create_index([("account_id", ASCENDING)], name="account")
        await self.db["accounts"].create_index([("customer_id", ASCENDING)], name="customer")
        await self.db["service_interactions"].create_index([("customer_id", ASCENDING)], name="customer")

    async def seed_reference(self, settings: Settings) -> int:
        """Write products and their rate caps if missing; return how many were added."""
        added = 0
        for product in PRODUCTS:
            result = await self.db["products"].update_one({"_id": product["_id"]}, {"$setOnInsert": product}, upsert=True)
            added += result.upserted_id is not None
            if product.get("apr_cap") is not None:
                cap = {"_id": product["_id"], "apr_cap": str(min(settings.rate_cap_apr, Decimal(product["apr_cap"]))),
                       "hard_cap": str(settings.hard_cap_apr),
                       "basis_zh": "综合年化利率不超过 24%（司法保护上限参照），36% 以上部分无效",
                       "basis_en": "all-in APR at most 24% (judicial protection line); above 36% void"}
                await self.db["rate_caps"].update_one({"_id": product["_id"]}, {"$setOnInsert": cap}, upsert=True)
        return added

    async def load(self, customer_id: str) -> CoreRecords | None:
        account = await self.db["accounts"].find_one({"_id": account_id_of(customer_id)})
        if account is None:
            return None
        async def read(name: str, query: dict[str, Any]) -> list[dict[str, Any]]:
            return [d async for d in self.db[name].find(query).sort("_id", 1)]

        found = await asyncio.gather(
            *[read(name, {"account_id": account["_id"]}) for name in BY_ACCOUNT],
            read("service_interactions", {"customer_id": customer_id}),
        )
        out = CoreRecords(accounts=[account])
        for name, docs in zip([*BY_ACCOUNT, "service_interactions"], found, strict=True):
            setattr(out, name, docs)
        return out

    async def store(self, records: CoreRecords) -> None:
        """Insert the records; the account last, so a half-written customer is completed next time."""
        async def insert(name: str, docs: list[dict[str, Any]]) -> None:
            if not docs:
                return
            try:
                await self.db[name].insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise

        await asyncio.gather(*[insert(n, d) for n, d in records.items() if n != "accounts"])
        await insert("accounts", records.accounts)


class Repository:
    """Investigation's own case documents (``investigations``)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.investigations = db["investigations"]

    async def ensure_indexes(self) -> None:
        await self.investigations.create_index([("status", ASCENDING)], name="status")

    async def get(self, case_id: str) -> dict[str, Any] | None:
        return await self.investigations.find_one({"_id": case_id})

    async def create(self, doc: dict[str, Any], events: list[Envelope[Any]]) -> bool:
        try:
            await self.investigations.insert_one({**doc, **outbox_document(events)})
        except DuplicateKeyError:
            return False
        return True

    async def replace(self, doc: dict[str, Any], expected: dict[str, Any], events: list[Envelope[Any]]) -> bool:
        fields = {k: v for k, v in doc.items() if k != "_id"}
        result = await self.investigations.update_one(
            {"_id": doc["_id"], **expected}, {"$set": {**fields, **outbox_fields(events)}})
        return result.matched_count == 1

    async def add_complaint(self, case_id: str, complaint_id: str) -> None:
        await self.investigations.update_one({"_id": case_id}, {"$addToSet": {"complaint_ids": complaint_id}})

    async def paused(self, limit: int = 200) -> list[dict[str, Any]]:
        """Cases waiting for an external appraisal (few; each sweep looks whether theirs is done)."""
        cursor = self.investigations.find({"status": "paused"}).sort("resume_at", 1).limit(limit)
        return [d async for d in cursor]
