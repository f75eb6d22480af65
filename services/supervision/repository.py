"""Supervision's MongoDB collections: ``cases`` (watch + timeline), ``dead_letters``, ``alerts``
(its own and every other service's, with who acknowledged and resolved them), ``lag_state``."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from services.supervision.handlers import CaseChange, status_of
from shared.buckets import Sweeper, aware, day_of, days_up_to, find_by_days
from shared.contracts.envelope import Envelope
from shared.contracts.supervision import SupervisionAlert
from shared.mongo import DUPLICATE_KEY
from shared.outbox import UPDATES_PER_COMMAND, outbox_document

#: Bulk commands of case upserts one ``apply_changes`` has in flight (each holds up to
#: ``UPDATES_PER_COMMAND`` of FerretDB's pooled PostgreSQL connections until it ends).
CHUNKS_IN_FLIGHT = 4


class Repository:
    """MongoDB access for supervision's own database."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.cases = db["cases"]
        self.dead_letters = db["dead_letters"]
        self.alerts = db["alerts"]
        self.lag_state = db["lag_state"]
        self.remediations = db["remediations"]
        self.heartbeats = db["heartbeats"]
        self._due_sweeps = Sweeper()  # cases_due_before: day buckets, a full scan hourly
        self._idle_sweeps: dict[int, Sweeper] = {}  # idle_cases, per stage

    async def ensure_indexes(self) -> None:
        await self.dead_letters.create_index(
            [("dlq_topic", ASCENDING), ("partition", ASCENDING), ("offset", ASCENDING)],
            unique=True, name="uniq_position",
        )
        await self.cases.create_index([("deadline_at", ASCENDING)], name="deadline")
        await self.alerts.create_index([("raised_at", ASCENDING)], name="raised_at")
        await self.cases.create_index([("r.received_at", ASCENDING)], name="received_at")
        await self.cases.create_index([("status_rank", ASCENDING), ("last_event_at", ASCENDING)], name="stage_idle")
        # the timers' day buckets (shared.buckets)
        await self.cases.create_index([("deadline_day", ASCENDING)], name="deadline_day")
        await self.cases.create_index([("last_event_day", ASCENDING), ("status_rank", ASCENDING)], name="idle_day")

    async def apply_changes(self, changes: list[CaseChange]) -> None:
        """Write each case's change with one upsert by ``_id``, in bulk.

        Idempotent without a read or a "seen" record: timeline entries go in with
        ``$addToSet`` (a redelivered event's entry is equal to the stored one), the status
        rank with ``$max``; the other fields are set to the same values again.

        The upserts go unordered in commands of at most ``UPDATES_PER_COMMAND`` (FerretDB v1
        holds a pooled connection per update until its command ends, docs/stack.md),
        ``CHUNKS_IN_FLIGHT`` commands at a time. Changes of one case (``fold_events`` makes one
        per batch; a caller may pass more) go in rounds, each round after the one before.
        """
        rounds: list[list[CaseChange]] = []
        seen: dict[str, int] = {}
        for change in changes:
            n = seen[change.case_id] = seen.get(change.case_id, -1) + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(change)
        gate = asyncio.Semaphore(CHUNKS_IN_FLIGHT)
        for batch in rounds:
            await asyncio.gather(*(self._write_chunk(batch[i:i + UPDATES_PER_COMMAND], gate)
                                   for i in range(0, len(batch), UPDATES_PER_COMMAND)))

    async def _write_chunk(self, changes: list[CaseChange], gate: asyncio.Semaphore) -> None:
        """Send one ``update`` command of unordered upserts.

        FerretDB v1's upsert is a find, then an insert: when two writers upsert the same new
        ``_id`` at once, one gets a duplicate key (11000). FerretDB then ends the command at
        that update, unordered or not, and answers with the error alone (no counts, which
        PyMongo's ``bulk_write`` fails on with ``KeyError('nModified')``): so the command is
        sent as such, and on a duplicate key the updates from the failed one on are sent
        again (the document exists now; the updates are idempotent). Other errors raise.
        """
        updates = [{"q": {"_id": c.case_id}, "u": case_update(c), "upsert": True} for c in changes]
        async with gate:
            for _ in range(len(updates) + 1):  # each round gets past at least one update
                reply = await self.db.command({"update": self.cases.name, "updates": updates, "ordered": False})
                errors = sorted(reply.get("writeErrors") or [], key=lambda e: e["index"])
                if not errors:
                    return
                failed = next((e for e in errors if e.get("code") != DUPLICATE_KEY), errors[0])
                if failed.get("code") != DUPLICATE_KEY:
                    raise OperationFailure(failed.get("errmsg", "write error"), failed.get("code"), reply)
                updates = updates[failed["index"]:]
            raise OperationFailure("case upserts kept failing on duplicate keys", DUPLICATE_KEY, reply)

    async def add_dead_letter(self, record: dict[str, Any]) -> bool:
        try:
            await self.dead_letters.insert_one(record)
        except DuplicateKeyError:
            return False
        return True

    async def raise_alert(self, alert_id: str, envelope: Envelope[SupervisionAlert]) -> bool:
        """Keep one of supervision's own alerts with its event in the outbox (published from there)."""
        return await self._insert_alert(alert_id, envelope, outbox_document([envelope]))

    async def store_alert(self, alert_id: str, envelope: Envelope[SupervisionAlert]) -> bool:
        """Keep an alert another service raised (already on Kafka: no outbox)."""
        return await self._insert_alert(alert_id, envelope, {"event_id": str(envelope.event_id)})

    async def _insert_alert(self, alert_id: str, envelope: Envelope[SupervisionAlert],
                            extra: dict[str, Any]) -> bool:
        doc = {
            "_id": alert_id,
            "case_id": envelope.case_id,
            "kind": envelope.payload.kind,
            "severity": envelope.payload.severity,
            "message": envelope.payload.message,
            "due_at": envelope.payload.due_at,
            "raised_at": envelope.occurred_at,
            "producer": envelope.producer,
            "status": "open",
            **extra,
        }
        try:
            await self.alerts.insert_one(doc)
        except DuplicateKeyError:
            return False
        await self.cases.update_one({"_id": envelope.case_id}, {"$push": {"alerts": envelope.payload.kind}})
        return True

    async def alert(self, alert_id: str) -> dict[str, Any] | None:
        return await self.alerts.find_one({"_id": alert_id}, {"outbox": 0})

    async def set_alert_fields(self, alert_id: str, fields: dict[str, Any], *, unless: tuple[str, ...]) -> None:
        """Set ``fields`` on an alert only while none of ``unless`` is recorded on it (the first
        acknowledgement or resolution stays, also when two people act at once)."""
        await self.alerts.update_one({"_id": alert_id, **{name: None for name in unless}}, {"$set": fields})

    async def lag_above(self) -> dict[str, datetime]:
        """Consumer groups above the lag threshold at the last check, with since when."""
        return {doc["_id"]: doc["since"] async for doc in self.lag_state.find({})}

    async def set_lag_above(self, group: str, since: datetime | None) -> None:
        """Record that ``group`` went above the threshold at ``since`` (None: back below)."""
        if since is None:
            await self.lag_state.delete_one({"_id": group})
        else:
            await self.lag_state.update_one({"_id": group}, {"$set": {"since": since}}, upsert=True)

    async def deadline_counts(self, day_start: datetime, day_end: datetime, finished_from_rank: int) -> dict[str, int]:
        """Cases on the clock due within [day_start, day_end), and cases breached."""
        due = await self.cases.count_documents({
            "deadline_at": {"$gte": day_start, "$lt": day_end},
            "status_rank": {"$lt": finished_from_rank}, "paused": {"$ne": True},
        })
        breached = await self.alerts.count_documents({"kind": "deadline_breached"})
        return {"due_today": due, "breached": breached}

    async def alert_status_counts(self) -> dict[str, int]:
        resolved = await self.alerts.count_documents({"status": "resolved"})
        acknowledged = await self.alerts.count_documents({"status": "acknowledged"})
        total = await self.alerts.count_documents({})
        return {"open": total - resolved - acknowledged, "acknowledged": acknowledged, "resolved": resolved}

    async def cases_due_before(self, when: datetime, finished_from_rank: int) -> list[dict[str, Any]]:
        """Cases on the clock due by ``when``: open ones, and finished ones the sweep has not
        settled yet (``clock_stopped``; a finished case may still owe its breach).

        By the Beijing day of the deadline for the two weeks up to ``when`` (indexed equality,
        ``shared.buckets``); the first sweep and one an hour read every case.
        """
        del finished_from_rank  # finished cases are read once, then marked clock_stopped
        on_clock = {"paused": {"$ne": True}, "clock_stopped": {"$ne": True}}
        if self._due_sweeps.full_scan_due():
            cursor = self.cases.find({"deadline_at": {"$lte": when}, **on_clock}, {"timeline": 0}).limit(1000)
            return [_with_status(doc) async for doc in cursor]
        docs = await find_by_days(self.cases, "deadline_day", days_up_to(when), on_clock, {"timeline": 0},
                                  lambda d: aware(d["deadline_at"]) <= when, 1000)
        return [_with_status(doc) for doc in docs]

    async def clock_stopped(self, case_id: str) -> None:
        await self.cases.update_one({"_id": case_id}, {"$set": {"clock_stopped": True}})

    async def case(self, case_id: str) -> dict[str, Any] | None:
        doc = await self.cases.find_one({"_id": case_id})
        return None if doc is None else _with_status(doc)

    async def list_alerts(self, kind: str | None, limit: int, status: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"kind": kind} if kind else {}
        if status == "open":  # alerts stored before statuses were recorded have none
            query["status"] = {"$nin": ["acknowledged", "resolved"]}
        elif status:
            query["status"] = status
        cursor = self.alerts.find(query, {"outbox": 0}).sort("raised_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def list_dead_letters(self, limit: int) -> list[dict[str, Any]]:
        cursor = self.dead_letters.find({}).sort("seen_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def status_counts(self) -> dict[str, int]:
        rows = self.cases.aggregate([{"$group": {"_id": "$status_rank", "n": {"$sum": 1}}}])
        return {status_of(row["_id"]): row["n"] async for row in await rows}


    # ------------------------------------------------------------------ evaluation report

    async def cases_received(self, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
        """The watches of cases received in [start, end): the report's facts, clock and timeline."""
        cursor = self.cases.find(
            {"r.received_at": {"$gte": start, "$lt": end}},
            {"r": 1, "timeline": 1, "deadline_at": 1, "finished_at": 1, "paused": 1, "alerts": 1, "status_rank": 1},
        ).limit(limit)
        return [doc async for doc in cursor]

    async def list_remediations(self, root_cause: str | None = None) -> list[dict[str, Any]]:
        query = {"root_cause": root_cause} if root_cause else {}
        return [doc async for doc in self.remediations.find(query).sort("due_date", 1)]

    async def add_remediation(self, item: dict[str, Any]) -> bool:
        try:
            await self.remediations.insert_one(item)
        except DuplicateKeyError:
            return False
        return True

    async def remediation(self, remediation_id: str) -> dict[str, Any] | None:
        return await self.remediations.find_one({"_id": remediation_id})

    async def edit_remediation(self, remediation_id: str, fields: dict[str, Any], history: dict[str, Any]) -> None:
        await self.remediations.update_one({"_id": remediation_id},
                                           {"$set": fields, "$push": {"history": history}})

    # ------------------------------------------------------------------ stuck cases, deadline board

    async def idle_cases(self, rank: int, before: datetime, limit: int = 500) -> list[dict[str, Any]]:
        """Cases in the status of ``rank`` whose last event is older than ``before``, not paused,
        not yet alerted as stuck there (any event clears the mark).

        By the Beijing day of the last event for the two weeks up to ``before`` (indexed
        equality, ``shared.buckets``); the first sweep of each stage and one an hour read all.
        """
        waiting = {"paused": {"$ne": True}, "stuck": {"$ne": True}}
        sweeps = self._idle_sweeps.setdefault(rank, Sweeper())
        if sweeps.full_scan_due():
            cursor = self.cases.find({"status_rank": rank, "last_event_at": {"$lt": before}, **waiting},
                                     {"timeline": 0}).limit(limit)
            return [_with_status(doc) async for doc in cursor]
        docs = await find_by_days(self.cases, "last_event_day", days_up_to(before), {"status_rank": rank, **waiting},
                                  {"timeline": 0}, lambda d: aware(d["last_event_at"]) < before, limit)
        return [_with_status(doc) for doc in docs]

    async def mark_stuck(self, case_id: str, last_event_at: datetime) -> None:
        """Note the stuck alert (unless an event came in meanwhile)."""
        await self.cases.update_one({"_id": case_id, "last_event_at": last_event_at}, {"$set": {"stuck": True}})

    async def moved_on_stuck_alerts(self, limit: int = 500) -> list[str]:
        """Ids of unresolved ``case_stuck`` alerts whose case has had an event since (no mark)."""
        alerts = [doc async for doc in self.alerts.find(
            {"kind": "case_stuck", "resolved": None}, {"_id": 1, "case_id": 1}).limit(limit)]
        if not alerts:
            return []
        still = {doc["_id"] async for doc in self.cases.find(
            {"_id": {"$in": sorted({a["case_id"] for a in alerts})}, "stuck": True}, {"_id": 1})}
        return [a["_id"] for a in alerts if a["case_id"] not in still]

    async def resolve_alert_ids(self, alert_ids: list[str], by: str, note: str, now: datetime) -> int:
        """Resolve these alerts (those not resolved yet) as ``by``."""
        if not alert_ids:
            return 0
        result = await self.alerts.update_many(
            {"_id": {"$in": alert_ids}, "resolved": None},
            {"$set": {"status": "resolved", "resolved": {"by": by, "at": now, "note": note}}})
        return result.modified_count

    async def cases_due_between(self, start: datetime | None, end: datetime, finished_from_rank: int,
                                limit: int = 500) -> list[dict[str, Any]]:
        """Cases on the clock (not finished, not paused) due in [start, end), earliest first."""
        due: dict[str, Any] = {"$lt": end}
        if start is not None:
            due["$gte"] = start
        cursor = self.cases.find(
            {"deadline_at": due, "status_rank": {"$lt": finished_from_rank}, "paused": {"$ne": True}},
            {"timeline": 0},
        ).sort("deadline_at", 1).limit(limit)
        return [_with_status(doc) async for doc in cursor]

    async def breached_cases(self, limit: int = 500) -> list[dict[str, Any]]:
        """Cases with a ``deadline_breached`` alert, newest deadline first."""
        cursor = self.cases.find({"alerts": "deadline_breached"}, {"timeline": 0}).sort("deadline_at", -1).limit(limit)
        return [_with_status(doc) async for doc in cursor]

    # ------------------------------------------------------------------ heartbeats

    async def heartbeat_states(self) -> dict[str, dict[str, Any]]:
        return {doc["_id"]: doc async for doc in self.heartbeats.find({})}

    async def save_heartbeat(self, group: str, state: dict[str, Any]) -> None:
        await self.heartbeats.replace_one({"_id": group}, {k: v for k, v in state.items() if k != "_id"},
                                          upsert=True)

    async def resolve_open_alerts(self, prefix: str, by: str, note: str, now: datetime) -> int:
        """Resolve the open alerts whose id starts with ``prefix`` (a condition that ended by itself)."""
        import re

        result = await self.alerts.update_many(
            {"_id": {"$regex": "^" + re.escape(prefix)}, "resolved": None},
            {"$set": {"status": "resolved", "resolved": {"by": by, "at": now, "note": note}}})
        return result.modified_count


def case_update(change: CaseChange) -> dict[str, Any]:
    """The update that writes one batch's ``change`` on its case's watch (upserted by ``_id``)."""
    update: dict[str, Any] = {
        "$addToSet": {"timeline": {"$each": change.timeline}},
        "$setOnInsert": {"alerts": []},
        "$max": {"status_rank": change.status_rank or 0},
        "$set": {"last_event_type": change.last_event_type, "last_event_at": change.last_event_at,
                 "last_event_day": day_of(change.last_event_at),
                 **{f"r.{name}": value for name, value in change.facts.items()}},
        "$unset": {"stuck": ""},  # an event: the case is not stuck in its stage (any more)
    }
    if change.deadline_at is not None:
        update["$set"]["deadline_at"] = change.deadline_at
        update["$set"]["deadline_day"] = day_of(change.deadline_at)
    if change.paused is not None:
        update["$set"]["paused"] = change.paused
    if change.case_number:
        update["$set"]["case_number"] = change.case_number
    if change.provisional is not None:
        update["$set"]["deadline_provisional"] = change.provisional
    if change.correlation_id:
        update["$set"]["correlation_id"] = change.correlation_id
    if change.finished_at is not None:
        update["$min"] = {"finished_at": change.finished_at}
    return update


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
