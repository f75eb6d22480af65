"""Supervision's MongoDB collections: ``cases`` (watch + timeline), ``dead_letters``, ``alerts``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.supervision.handlers import STATUS_RANK
from shared.contracts.envelope import Envelope
from shared.contracts.supervision import SupervisionAlert
from shared.outbox import outbox_document


class Repository:
    """MongoDB access for supervision's own database."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.cases = db["cases"]
        self.seen = db["seen_events"]
        self.dead_letters = db["dead_letters"]
        self.alerts = db["alerts"]

    async def ensure_indexes(self) -> None:
        await self.dead_letters.create_index(
            [("dlq_topic", ASCENDING), ("partition", ASCENDING), ("offset", ASCENDING)],
            unique=True, name="uniq_position",
        )
        await self.cases.create_index([("deadline_at", ASCENDING)], name="deadline")
        await self.alerts.create_index([("raised_at", ASCENDING)], name="raised_at")

    async def add_to_timeline(
        self, envelope: Envelope[Any], status: str | None, deadline_at: datetime | None,
        paused: bool | None = None,
    ) -> bool:
        try:  # the event id is the idempotency key
            await self.seen.insert_one({"_id": str(envelope.event_id), "case_id": envelope.case_id})
        except DuplicateKeyError:
            return False
        entry = {
            "event_id": str(envelope.event_id),
            "event_type": envelope.event_type,
            "occurred_at": envelope.occurred_at,
            "producer": envelope.producer,
        }
        update: dict[str, Any] = {
            "$push": {"timeline": entry},
            "$setOnInsert": {"alerts": []},
            "$set": {"last_event_type": envelope.event_type, "last_event_at": envelope.occurred_at},
        }
        update["$setOnInsert"].update(status="open", status_rank=0)
        if deadline_at is not None:
            update["$set"]["deadline_at"] = deadline_at
        if paused is not None:
            update["$set"]["paused"] = paused
        number = getattr(envelope.payload, "case_number", None)
        if number:
            update["$set"]["case_number"] = number
        await self.cases.update_one({"_id": envelope.case_id}, update, upsert=True)
        if status:  # only forward along the lifecycle
            rank = STATUS_RANK[status]
            await self.cases.update_one(
                {"_id": envelope.case_id, "status_rank": {"$lt": rank}},
                {"$set": {"status": status, "status_rank": rank}},
            )
        return True

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

    async def cases_due_before(self, when: datetime, finished: set[str]) -> list[dict[str, Any]]:
        cursor = self.cases.find(
            {"deadline_at": {"$lte": when}, "status": {"$nin": sorted(finished)}, "paused": {"$ne": True}},
            {"timeline": 0},
        ).limit(1000)
        return [doc async for doc in cursor]

    async def case(self, case_id: str) -> dict[str, Any] | None:
        return await self.cases.find_one({"_id": case_id})

    async def list_alerts(self, kind: str | None, limit: int) -> list[dict[str, Any]]:
        query = {"kind": kind} if kind else {}
        cursor = self.alerts.find(query, {"outbox": 0}).sort("raised_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def list_dead_letters(self, limit: int) -> list[dict[str, Any]]:
        cursor = self.dead_letters.find({}).sort("seen_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def status_counts(self) -> dict[str, int]:
        rows = self.cases.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
        return {row["_id"]: row["n"] async for row in await rows}
