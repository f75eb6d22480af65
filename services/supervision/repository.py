"""Supervision's MongoDB collections: ``cases`` (watch + timeline), ``dead_letters``, ``alerts``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.supervision.handlers import CaseChange, status_of
from shared.contracts.envelope import Envelope
from shared.contracts.supervision import SupervisionAlert
from shared.outbox import outbox_document
from shared.service import each_by_key


class Repository:
    """MongoDB access for supervision's own database."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.cases = db["cases"]
        self.dead_letters = db["dead_letters"]
        self.alerts = db["alerts"]

    async def ensure_indexes(self) -> None:
        await self.dead_letters.create_index(
            [("dlq_topic", ASCENDING), ("partition", ASCENDING), ("offset", ASCENDING)],
            unique=True, name="uniq_position",
        )
        await self.cases.create_index([("deadline_at", ASCENDING)], name="deadline")
        await self.alerts.create_index([("raised_at", ASCENDING)], name="raised_at")

    async def apply_changes(self, changes: list[CaseChange]) -> None:
        """Write each case's change with one upsert by ``_id``, several cases at a time.

        Idempotent without a read or a "seen" record: timeline entries go in with
        ``$addToSet`` (a redelivered event's entry is equal to the stored one), the status
        rank with ``$max``; the other fields are set to the same values again.
        """
        await each_by_key(changes, lambda c: c.case_id, self._apply)

    async def _apply(self, change: CaseChange) -> None:
        update: dict[str, Any] = {
            "$addToSet": {"timeline": {"$each": change.timeline}},
            "$setOnInsert": {"alerts": []},
            "$max": {"status_rank": change.status_rank or 0},
            "$set": {"last_event_type": change.last_event_type, "last_event_at": change.last_event_at},
        }
        if change.deadline_at is not None:
            update["$set"]["deadline_at"] = change.deadline_at
        if change.paused is not None:
            update["$set"]["paused"] = change.paused
        if change.case_number:
            update["$set"]["case_number"] = change.case_number
        if change.provisional is not None:
            update["$set"]["deadline_provisional"] = change.provisional
        if change.finished_at is not None:
            update["$min"] = {"finished_at": change.finished_at}
        await self.cases.update_one({"_id": change.case_id}, update, upsert=True)

    async def add_dead_letter(self, record: dict[str, Any]) -> bool:
        try:
            await self.dead_letters.insert_one(record)
        except DuplicateKeyError:
            return False
        return True

    async def raise_alert(self, alert_id: str, envelope: Envelope[SupervisionAlert]) -> bool:
        doc = {
            "_id": alert_id,
            "case_id": envelope.case_id,
            "kind": envelope.payload.kind,
            "severity": envelope.payload.severity,
            "message": envelope.payload.message,
            "due_at": envelope.payload.due_at,
            "raised_at": envelope.occurred_at,
            **outbox_document([envelope]),
        }
        try:
            await self.alerts.insert_one(doc)
        except DuplicateKeyError:
            return False
        await self.cases.update_one({"_id": envelope.case_id}, {"$push": {"alerts": envelope.payload.kind}})
        return True

    async def cases_due_before(self, when: datetime, finished_from_rank: int) -> list[dict[str, Any]]:
        """Cases on the clock due by ``when``: open ones, and finished ones the sweep has not
        settled yet (``clock_stopped``; a finished case may still owe its breach)."""
        del finished_from_rank  # finished cases are read once, then marked clock_stopped
        cursor = self.cases.find(
            {"deadline_at": {"$lte": when}, "paused": {"$ne": True}, "clock_stopped": {"$ne": True}},
            {"timeline": 0},
        ).limit(1000)
        return [_with_status(doc) async for doc in cursor]

    async def clock_stopped(self, case_id: str) -> None:
        await self.cases.update_one({"_id": case_id}, {"$set": {"clock_stopped": True}})

    async def case(self, case_id: str) -> dict[str, Any] | None:
        doc = await self.cases.find_one({"_id": case_id})
        return None if doc is None else _with_status(doc)

    async def list_alerts(self, kind: str | None, limit: int) -> list[dict[str, Any]]:
        query = {"kind": kind} if kind else {}
        cursor = self.alerts.find(query, {"outbox": 0}).sort("raised_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def list_dead_letters(self, limit: int) -> list[dict[str, Any]]:
        cursor = self.dead_letters.find({}).sort("seen_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def status_counts(self) -> dict[str, int]:
        rows = self.cases.aggregate([{"$group": {"_id": "$status_rank", "n": {"$sum": 1}}}])
        return {status_of(row["_id"]): row["n"] async for row in await rows}


def _with_status(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the status the stored rank stands for, and drop a redelivered event's repeat
    from the timeline (only possible for entries written before ``$addToSet``)."""
    doc["status"] = status_of(doc.get("status_rank"))
    seen: set[str] = set()
    timeline = []
    for entry in doc.get("timeline", []):
        if entry.get("event_id") not in seen:
            seen.add(entry.get("event_id"))
            timeline.append(entry)
    if "timeline" in doc:
        doc["timeline"] = timeline
    return doc
