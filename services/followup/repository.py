"""Follow-up's MongoDB collection ``executions`` (one document per case).

Each change and the events it owes are one single-document write (``shared.outbox``),
guarded by ``version`` so concurrent edits are detected. Amounts are stored as decimal
strings (FerretDB v1 has no Decimal128).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.followup.errors import Conflict
from services.followup.models import Execution
from shared.contracts.envelope import Envelope
from shared.mongo import claim_next_version
from shared.outbox import outbox_document, outbox_fields


def _storable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def to_document(execution: Execution) -> dict[str, Any]:
    data = _storable(execution.model_dump())
    data["_id"] = data.pop("case_id")
    return data


def from_document(doc: dict[str, Any]) -> Execution:
    data = {k: v for k, v in doc.items() if k not in ("outbox", "outbox_pending")}
    data["case_id"] = data.pop("_id")
    return Execution.model_validate(data)


class Repository:
    """MongoDB access for follow-up's own database."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.executions = db["executions"]
        self.claims = db["version_claims"]

    async def ensure_indexes(self) -> None:
        await self.executions.create_index([("status", ASCENDING)], name="status")

    async def create(self, execution: Execution, events: list[Envelope[Any]]) -> bool:
        """Insert a new execution with its events; False if the case already has one."""
        try:
            await self.executions.insert_one({**to_document(execution), **outbox_document(events)})
        except DuplicateKeyError:
            return False
        return True

    async def get(self, case_id: str) -> Execution | None:
        doc = await self.executions.find_one({"_id": case_id})
        return from_document(doc) if doc else None

    async def save(self, execution: Execution, events: list[Envelope[Any]]) -> Execution:
        """Write a changed execution if nobody changed it meanwhile; raise ``Conflict`` if so."""
        doc = to_document(execution)
        doc.pop("_id")
        doc["version"] = execution.version + 1
        if not await claim_next_version(self.claims, self.executions, execution.case_id, execution.version):
            raise Conflict(f"case {execution.case_number} changed meanwhile; read it again")
        saved = await self.executions.find_one_and_update(
            {"_id": execution.case_id, "version": execution.version},
            {"$set": {**doc, **outbox_fields(events)}},
            return_document=ReturnDocument.AFTER,
        )
        if saved is None:
            raise Conflict(f"case {execution.case_number} changed meanwhile; read it again")
        return from_document(saved)

    async def open_executions(self, limit: int = 1000) -> list[Execution]:
        cursor = self.executions.find({"status": {"$in": ["executing", "monitoring", "executed", "reopened"]}}).limit(limit)
        return [from_document(d) async for d in cursor]

    async def list(self, status: str | None, limit: int) -> list[Execution]:
        query = {"status": status} if status else {}
        cursor = self.executions.find(query).sort("_id", 1).limit(limit)
        return [from_document(d) async for d in cursor]
