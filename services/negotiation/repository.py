"""MongoDB access for negotiation's own collections.

* ``cases`` — one document per case (the workspace), with ``version`` for optimistic
  concurrency and the outbox of events it owes (``shared.outbox``).
* ``agents`` — the agent directory (skills, capacity, conflicts).
* ``audit`` — append-only: inserted, never updated or deleted by any code path.
* ``settlement_refs`` — past settlements for the fairness comparison.
* ``dossiers`` — escalation dossiers (JSON and HTML).
* ``settlement_ref_cells`` — ``{_id: "category|band|hardship", bp: {ref: relief_bp}}``: the
  reference set folded per fairness cell, so an offer's peers are read by ``_id``.
* ``customers`` — ``{_id: customer_id, case_ids, version}``: which cases are a customer's,
  so the workspace's customer history and the customer's own list read by ``_id`` only.
* ``agent_loads`` — ``{_id: agent_id, case_ids, version}``: the open cases each agent holds,
  so assignment reads an agent's load by ``_id`` (not a count over all cases).

Hot paths read by ``_id`` only (FerretDB v1 scans a whole collection for any other filter):
``get``, ``save`` (and the per-customer and per-agent documents it keeps current, each
changed with a unique version claim like the case), ``customer_cases``, ``load``,
``get_agent``, ``get_dossier``, ``add_ref``, ``peer_pcts`` (the cells a scope spans). Still
queries, and why: the staff list page (``list_cases``) and the audit trail (``audit_trail``)
are pages staff open, not per-request reads of a case; ``list_agents`` reads the small
directory (also in assignment); ``open_near_deadline`` and the outbox sweep run on the
worker's timer; start-up folds (``_backfill_keyed_documents``, ``_build_ref_cells``) scan once.

Money is stored as integer fen: a ``Decimal`` field ``x`` becomes ``x_fen`` (an int);
percentages (``*_pct`` and the fairness statistics) are stored as decimal strings; dates as
ISO strings. FerretDB v1 has no Decimal128.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.negotiation.errors import Conflict, StaleVersion
from services.negotiation.fairness import BANDS
from services.negotiation.models import AgentProfile, Workspace
from services.negotiation.plan import from_fen, to_fen
from shared.buckets import Sweeper, aware, day_of, days_up_to, find_by_days
from shared.contracts.common import Category
from shared.contracts.envelope import Envelope
from shared.mongo import bounded, claim_next_version, find_by_ids, insert_new
from shared.outbox import (
    SWEEP_GRACE,
    UPDATES_PER_COMMAND,
    SendFn,
    outbox_document,
    outbox_fields,
    relay,
    relay_pending,
)

log = logging.getLogger(__name__)

PCT_KEYS = frozenset({"p10", "median", "p90", "mad"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _is_pct(key: str) -> bool:
    return key.endswith("_pct") or key in PCT_KEYS


def to_store(value: Any, key: str = "") -> Any:
    """Turn a model dump into BSON-safe values: money → fen, percentages → strings."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(v, Decimal) and not _is_pct(k):
                out[f"{k}_fen"] = to_fen(v)
            else:
                out[k] = to_store(v, k)
        return out
    if isinstance(value, list):
        return [to_store(v, key) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)  # what BSON keeps
    if isinstance(value, date):
        return value.isoformat()
    return value


def from_store(value: Any) -> Any:
    """Reverse ``to_store`` (fen → Decimal); pydantic parses the strings."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k.endswith("_fen") and isinstance(v, int):
                out[k[:-4]] = from_fen(v)
            else:
                out[k] = from_store(v)
        return out
    if isinstance(value, list):
        return [from_store(v) for v in value]
    return value


#: statuses whose cases get the regular progress notice (``handlers.reports``)
PROGRESS_STATUSES = ("awaiting_investigation", "open", "agreed")
#: the progress sweep's bucket of cases whose first notice is not planned yet
UNPLANNED = "unplanned"

#: How long a process answers an agent's profile from memory (``Repository.get_agent``).
AGENT_PROFILE_TTL_S = 2.0

#: How many outboxes ``get_many`` remembers for ``save_many``, by (case, version); oldest
#: forgotten first (a forgotten one costs ``save_many``'s caller a read of the outbox).
OUTBOX_READ_MEMORY = 20_000


async def _replace_or_insert(collection: Any, doc: dict[str, Any]) -> None:
    """``replace_one(..., upsert=True)`` that tolerates a concurrent writer of the same ``_id``:
    FerretDB v1's upsert is a find then an insert, so the worker and the API seeding a fresh
    database at the same moment had one of them fail with a duplicate key (the API exited)."""
    try:
        await collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)
    except DuplicateKeyError:
        await collection.replace_one({"_id": doc["_id"]}, doc)

class Repository:
    """The service's collections in its own database."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.cases = db["cases"]
        self.claims = db["version_claims"]
        self.agents = db["agents"]
        self.audit = db["audit"]
        self.refs = db["settlement_refs"]
        self.dossiers = db["dossiers"]
        self.customers = db["customers"]
        self.customer_claims = db["customer_version_claims"]
        self.loads = db["agent_loads"]
        self.load_claims = db["agent_load_claims"]
        self.meta = db["meta"]
        self.ref_cells = db["settlement_ref_cells"]
        self.cell_claims = db["settlement_ref_cell_claims"]
        self._linked: set[tuple[str, str]] = set()  # (customer, case) pairs known to be linked
        self._agents: dict[str, tuple[float, AgentProfile | None]] = {}  # get_agent's memory
        self._deadline_sweeps = Sweeper()  # open_near_deadline: day buckets, a full scan hourly
        self._progress_sweeps = Sweeper()  # progress_due: likewise
        # the outbox get_many read at each (case, version): at that version the outbox holds at
        # most these items for good, since items are added only by writes that move the version
        # (publishers only remove them); save_many hands them on with its own (see there)
        self._outbox_read: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()

    async def ensure_indexes(self) -> None:
        """Create the indexes queries and idempotency rely on."""
        await self.cases.create_index([("team", ASCENDING), ("status", ASCENDING)], name="by_team")
        await self.cases.create_index([("outbox_pending", ASCENDING)], name="by_outbox")
        await self.cases.create_index([("progress_due_at", ASCENDING)], name="by_progress_due")
        await self.cases.create_index([("deadline_day", ASCENDING)], name="by_deadline_day")
        await self.cases.create_index([("progress_day", ASCENDING)], name="by_progress_day")
        await self.agents.create_index([("team", ASCENDING)], name="by_team")
        await self.audit.create_index([("case_id", ASCENDING), ("at", ASCENDING)], name="by_case")
        await self.refs.create_index([("ref_id", ASCENDING)], unique=True, name="uniq_ref")
        await self.dossiers.create_index([("case_id", ASCENDING)], name="by_case")
        await self._backfill_keyed_documents()

    async def _backfill_keyed_documents(self) -> None:
        """Build the per-customer and per-agent documents once for cases stored before them.

        A one-off scan at start-up (a marker in ``meta`` says it ran); afterwards every
        ``save`` keeps them current.
        """
        if await self.meta.find_one({"_id": "keyed_documents_v1"}) is not None:
            return
        loads: dict[str, list[str]] = {}
        async for doc in self.cases.find({}, {"customer_id": 1, "assigned_agent": 1, "status": 1}):
            if doc.get("customer_id"):
                await self.link_customer(doc["customer_id"], doc["_id"])
            if doc.get("status") == "open" and doc.get("assigned_agent"):
                loads.setdefault(doc["assigned_agent"], []).append(doc["_id"])
        for agent_id, case_ids in loads.items():
            for case_id in case_ids:
                await self._move_load(case_id, None, agent_id)
        try:
            await self.meta.insert_one({"_id": "keyed_documents_v1", "at": datetime.now(UTC)})
        except DuplicateKeyError:
            pass

    # ------------------------------------------------------------------ cases

    async def get(self, case_id: str) -> Workspace | None:
        """Return a case's workspace, or None."""
        doc = await self.cases.find_one({"_id": case_id}, {"outbox": 0})
        return _workspace(doc) if doc else None

    async def get_many(self, case_ids: list[str]) -> dict[str, Workspace]:
        """Return the workspaces of ``case_ids`` that exist: concurrent reads by ``_id``
        (FerretDB v1 does not push ``$in`` down)."""
        docs = await find_by_ids(self.cases, case_ids)  # with the outbox: usually empty
        for case_id, doc in docs.items():
            self._outbox_read[(case_id, int(doc.get("version", 0)))] = doc.get("outbox") or {}
        while len(self._outbox_read) > OUTBOX_READ_MEMORY:
            self._outbox_read.popitem(last=False)
        return {c: _workspace(d) for c, d in docs.items()}

    async def find(self, query: dict[str, Any], *, limit: int = 200) -> list[Workspace]:
        """Return workspaces matching a query, newest first."""
        cursor = self.cases.find(query, {"outbox": 0}).sort("opened_at", -1).limit(limit)
        return [_workspace(d) async for d in cursor]

    async def list_cases(self, *, status: str | None = None, team: str | None = None,
                         assigned_agent: str | None = None, limit: int = 200) -> list[Workspace]:
        """Return the staff list page: cases past investigation, newest first (a query, not a hot path)."""
        query: dict[str, Any] = {"status": status or {"$ne": "awaiting_investigation"}}
        if team is not None:
            query["team"] = team
        if assigned_agent is not None:
            query["assigned_agent"] = assigned_agent
        return await self.find(query, limit=limit)

    async def customer_cases(self, customer_id: str, *, exclude: str | None = None) -> list[Workspace]:
        """Return a customer's cases, newest first: the customer's document, then each case, by ``_id``."""
        doc = await self.customers.find_one({"_id": customer_id})
        ids = [c for c in (doc or {}).get("case_ids", []) if c != exclude]
        found = await asyncio.gather(*(self.get(c) for c in ids))
        cases = [ws for ws in found if ws is not None and ws.customer_id == customer_id]
        cases.sort(key=lambda ws: ws.opened_at or _EPOCH, reverse=True)
        return cases

    async def link_customer(self, customer_id: str, case_id: str) -> None:
        """Record that ``case_id`` belongs to ``customer_id`` (idempotent; by ``_id`` only).

        The per-customer document ``{_id: customer_id, case_ids, version}`` is changed with the
        same compare-and-set as cases (a unique claim first), so two cases of one customer
        linked at once both stay.
        """
        if (customer_id, case_id) in self._linked:
            return
        for _ in range(8):
            doc = await self.customers.find_one({"_id": customer_id})
            if doc is not None and case_id in doc.get("case_ids", []):
                break
            if doc is None:
                try:
                    await self.customers.insert_one({"_id": customer_id, "case_ids": [case_id], "version": 1})
                    break
                except DuplicateKeyError:
                    continue
            version = doc.get("version", 0)
            if await claim_next_version(self.customer_claims, self.customers, customer_id, version):
                done = await self.customers.update_one(
                    {"_id": customer_id, "version": version},
                    {"$set": {"case_ids": [*doc.get("case_ids", []), case_id], "version": version + 1}},
                )
                if done.modified_count:
                    break
            await asyncio.sleep(0.01)
        else:
            raise Conflict(f"could not link case {case_id} to its customer; try again")
        if len(self._linked) > 100_000:  # a cache, not a record: start again rather than grow
            self._linked.clear()
        self._linked.add((customer_id, case_id))

    async def save(
        self, ws: Workspace, expected_version: int, events: list[Envelope[Any]]
    ) -> Workspace:
        """Write the workspace and its owed events in one document write, if unchanged.

        Raises ``Conflict`` when the stored version is not ``expected_version``.
        """
        doc = _document(ws)
        holder = doc["load_holder"]
        if ws.customer_id:
            await self.link_customer(ws.customer_id, ws.case_id)  # before the case: never a case unlinked
        if expected_version == 0:
            try:
                await self.cases.insert_one(
                    {"_id": ws.case_id, **doc, "version": 1, **outbox_document(events)}
                )
            except DuplicateKeyError:
                raise StaleVersion(f"case {ws.case_id} was created concurrently") from None
            await self._move_load(ws.case_id, None, holder)
            return ws.model_copy(update={"version": 1})
        claimed = await claim_next_version(self.claims, self.cases, ws.case_id, expected_version)
        before = None if not claimed else await self.cases.find_one_and_update(
            {"_id": ws.case_id, "version": expected_version},
            {"$set": {**doc, **outbox_fields(events)}, "$inc": {"version": 1}},
            return_document=ReturnDocument.BEFORE,  # (FerretDB v1's findAndModify takes no projection)
        )
        if before is not None:
            previous = before["load_holder"] if "load_holder" in before else (
                before.get("assigned_agent") if before.get("status") == "open" else None)
            await self._move_load(ws.case_id, previous, holder)
            return _workspace({"_id": ws.case_id, **doc, "version": expected_version + 1})
        if before is None:
            current = await self.cases.find_one({"_id": ws.case_id}, {"version": 1})
            found = current.get("version") if current else None
        raise StaleVersion(
            f"case {ws.case_id} is at version {found}, not {expected_version}: "
            "it changed since you read it; reload and try again"
        )

    async def save_many(self, items: list[tuple[Workspace | None, Workspace, list[Envelope[Any]]]]
                        ) -> tuple[dict[str, dict[str, Any] | None], set[str]]:
        """Write many workspaces as ``save`` does, in bulk commands; one item per case.

        Each item is (the workspace as read, or None for a new one; the workspace to write;
        the events it owes). New workspaces go in with one unordered ``insert_many``; changed
        ones win their version claims with one, then move version ``v`` to ``v + 1`` in update
        commands of at most ``UPDATES_PER_COMMAND``. Customers are linked first (never a case
        unlinked) and agents' loads moved after, once per agent. Returns, per case written that
        owes events, its outbox for ``Written``: the items of a new workspace (no read to publish
        them), None for a changed one — its outbox may still hold events an earlier writer left
        unpublished (a worker killed between its write and its relay), which the relay must read
        and publish with these, or clearing the flag would strand them. Unless ``get_many`` read
        that version (it remembers what it read): then its outbox as read plus these events is
        the whole outbox or more (items are added only by writes that move the version, and
        ours moved it from the one read; publishers only remove them), handed over without a
        read. Publishing an item again is harmless (same event id). Also the ids of cases not
        written because someone else wrote them first: the caller takes those the one-by-one
        way (``save``), which reads them again.
        """
        if not items:
            return {}, set()
        docs = {after.case_id: _document(after) for _, after, _ in items}
        await self._link_customers([after for _, after, _ in items])
        stale: set[str] = set()
        outboxes: dict[str, dict[str, Any] | None] = {}
        new = [(after, events) for before, after, events in items if before is None]
        if new:
            rows = [{"_id": ws.case_id, **docs[ws.case_id], "version": 1, **outbox_document(events)}
                    for ws, events in new]
            refused = {str(i) for i in await insert_new(self.cases, rows)}
            stale |= refused
            outboxes.update({row["_id"]: row["outbox"] for row in rows if row["outbox"] and row["_id"] not in refused})
        changed = [(before, after, events) for before, after, events in items if before is not None]
        if changed:
            taken = await insert_new(self.claims, [
                {"_id": f"{before.case_id}#{before.version + 1}", "at": datetime.now(UTC)} for before, _, _ in changed])
            stale |= {str(key).rsplit("#", 1)[0] for key in taken}
            moving = [(before, after, events) for before, after, events in changed if before.case_id not in stale]
            fields = {before.case_id: outbox_fields(events) for before, _, events in moving}
            ops = [UpdateOne({"_id": before.case_id, "version": before.version},
                             {"$set": {**docs[before.case_id], **fields[before.case_id]}, "$inc": {"version": 1}})
                   for before, _, _ in moving]
            parts = [list(range(i, min(i + UPDATES_PER_COMMAND, len(ops)))) for i in range(0, len(ops), UPDATES_PER_COMMAND)]

            async def write(part: list[int]) -> None:
                result = await self.cases.bulk_write([ops[i] for i in part], ordered=False)
                if result.matched_count < len(part):  # the claim was won but the version moved: which?
                    for i in part:
                        before = moving[i][0]
                        now_at = await self.cases.find_one({"_id": before.case_id}, {"version": 1})
                        # with our claim on v + 1 only our update moves it there; beyond it, a
                        # later writer moved on from ours: written either way
                        if int((now_at or {}).get("version", 0)) <= before.version:
                            stale.add(before.case_id)

            await bounded([functools.partial(write, p) for p in parts], 4)
            for before, _, events in moving:
                if before.case_id not in stale and events:
                    as_read = self._outbox_read.pop((before.case_id, before.version), None)
                    outboxes[before.case_id] = None if as_read is None else {**as_read, **{
                        key.removeprefix("outbox."): item for key, item in fields[before.case_id].items()
                        if key.startswith("outbox.")}}
        moves: dict[str, tuple[list[str], list[str]]] = {}
        for read, after, _ in items:
            if after.case_id in stale:
                continue
            old, holder = (_holder(read) if read is not None else None), docs[after.case_id]["load_holder"]
            if old != holder:
                if old is not None:
                    moves.setdefault(old, ([], []))[1].append(after.case_id)
                if holder is not None:
                    moves.setdefault(holder, ([], []))[0].append(after.case_id)
        await bounded([functools.partial(self._change_loads, a, add=m[0], remove=m[1]) for a, m in moves.items()], 4)
        return outboxes, stale

    async def _link_customers(self, workspaces: list[Workspace]) -> None:
        """``link_customer`` for many cases: one insert for customers seen the first time, then
        the one-by-one way for the others (an existing customer, two cases of one customer)."""
        wanted = [(ws.customer_id, ws.case_id) for ws in workspaces
                  if ws.customer_id and (ws.customer_id, ws.case_id) not in self._linked]
        first: dict[str, str] = {}
        for customer_id, case_id in wanted:
            first.setdefault(customer_id, case_id)
        refused = await insert_new(self.customers, [{"_id": c, "case_ids": [k], "version": 1} for c, k in first.items()])
        for customer_id, case_id in first.items():
            if customer_id not in refused:
                self._linked.add((customer_id, case_id))
        rest = [(c, k) for c, k in wanted if (c, k) not in self._linked]
        await bounded([functools.partial(self.link_customer, c, k) for c, k in rest], 8)

    async def relay(self, case_id: str, send: SendFn) -> int:
        """Publish a case's pending events."""
        return await relay(self.cases, case_id, send)

    async def relay_pending(self, send: SendFn) -> int:
        """Publish whatever crashed writers left in outboxes."""
        return await relay_pending(self.cases, send, grace=SWEEP_GRACE)

    async def open_near_deadline(self, before: datetime, *, limit: int = 100) -> list[str]:
        """Return ids of open cases whose deadline is before ``before``.

        By the Beijing day of the deadline (an indexed equality, ``shared.buckets``) for the
        last two weeks up to ``before``; the first sweep and one an hour scan every open case.
        """
        if self._deadline_sweeps.full_scan_due():
            cursor = self.cases.find({"status": "open", "deadline_at": {"$lt": before}}, {"_id": 1}).limit(limit)
            return [d["_id"] async for d in cursor]
        docs = await find_by_days(
            self.cases, "deadline_day", days_up_to(before), {"status": "open"}, {"_id": 1, "deadline_at": 1},
            lambda d: d.get("deadline_at") is not None and aware(d["deadline_at"]) < before, limit)
        return [d["_id"] for d in docs]

    async def progress_due(self, now: datetime, *, limit: int = 200) -> list[str]:
        """Return ids of cases neither closed nor escalated whose progress notice is due, or was
        never planned (``handlers.reports``).

        By the day the notice is due (``shared.buckets``) for two weeks up to today, and the
        unplanned ones; the first sweep and one an hour scan every case.
        """
        if self._progress_sweeps.full_scan_due():
            cursor = self.cases.find(
                {"status": {"$in": list(PROGRESS_STATUSES)}, "closure": None,
                 "$or": [{"progress_due_at": None}, {"progress_due_at": {"$lte": now}}]},
                {"_id": 1},
            ).limit(limit)
            return [d["_id"] async for d in cursor]
        docs = await find_by_days(
            self.cases, "progress_day", [UNPLANNED, *days_up_to(now)], {}, {"_id": 1, "progress_due_at": 1},
            lambda d: d.get("progress_due_at") is None or aware(d["progress_due_at"]) <= now, limit)
        return [d["_id"] for d in docs]

    # ------------------------------------------------------------------ agents

    async def put_agent(self, agent: AgentProfile) -> None:
        """Create or replace an agent's profile."""
        doc = agent.model_dump(mode="json")
        await self.agents.replace_one({"_id": agent.agent_id}, {"_id": agent.agent_id, **doc}, upsert=True)
        self._agents.pop(agent.agent_id, None)

    async def get_agent(self, agent_id: str) -> AgentProfile | None:
        """Return an agent's profile, or None.

        Every staff request reads its caller's profile (conflicts of interest, 回避) once or
        twice; a profile read in the last ``AGENT_PROFILE_TTL_S`` seconds is answered from
        this process's memory (a change made through this repository is seen at once; one
        made through another process within that time).
        """
        now = time.monotonic()
        hit = self._agents.get(agent_id)
        if hit is not None and now - hit[0] < AGENT_PROFILE_TTL_S:
            return hit[1]
        doc = await self.agents.find_one({"_id": agent_id})
        profile = None
        if doc is not None:
            doc.pop("_id")
            profile = AgentProfile.model_validate(doc)
        if len(self._agents) > 10_000:
            self._agents.clear()
        self._agents[agent_id] = (now, profile)
        return profile

    async def list_agents(self, team: str | None = None) -> list[AgentProfile]:
        """Return agents, of one team if given."""
        query = {"team": team} if team else {}
        out = []
        async for doc in self.agents.find(query).sort("_id", 1):
            doc.pop("_id")
            out.append(AgentProfile.model_validate(doc))
        return out

    async def load(self, agent_id: str) -> int:
        """Return how many open cases an agent holds (the agent's load document, by ``_id``)."""
        doc = await self.loads.find_one({"_id": agent_id})
        return len((doc or {}).get("case_ids", []))

    async def _move_load(self, case_id: str, old: str | None, new: str | None) -> None:
        """Move a case from one agent's open cases to another's (either may be None)."""
        if old == new:
            return
        if old is not None:
            await self._change_loads(old, remove=[case_id])
        if new is not None:
            await self._change_loads(new, add=[case_id])

    async def _change_loads(self, agent_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        """Add cases to and remove cases from an agent's open cases, in one compare-and-set write."""
        for _ in range(8):
            doc = await self.loads.find_one({"_id": agent_id})
            held = list((doc or {}).get("case_ids", []))
            ids = [c for c in held if c not in remove] + [c for c in dict.fromkeys(add) if c not in held]
            if ids == held:
                return
            if doc is None:
                try:
                    await self.loads.insert_one({"_id": agent_id, "case_ids": ids, "version": 1})
                    return
                except DuplicateKeyError:
                    continue
            version = doc.get("version", 0)
            if await claim_next_version(self.load_claims, self.loads, agent_id, version):
                done = await self.loads.update_one(
                    {"_id": agent_id, "version": version}, {"$set": {"case_ids": ids, "version": version + 1}}
                )
                if done.modified_count:
                    return
            await asyncio.sleep(0.01)
        log.warning("could not update an agent's load; assignment may be unbalanced until the next change")

    # ------------------------------------------------------------------ audit

    async def record(self, entry: dict[str, Any]) -> None:
        """Append an audit entry (never updated, never deleted)."""
        await self.audit.insert_one(dict(entry))

    async def audit_entries(self, query: dict[str, Any], *, limit: int = 500) -> list[dict[str, Any]]:
        """Return audit entries, oldest first."""
        cursor = self.audit.find(query, {"_id": 0}).sort("at", 1).limit(limit)
        return [d async for d in cursor]

    async def audit_trail(self, *, case_id: str | None = None, outcome: str | None = None,
                          limit: int = 500) -> list[dict[str, Any]]:
        """Return audit entries of one case and/or outcome, oldest first (the auditors' page)."""
        query: dict[str, Any] = {}
        if case_id:
            query["case_id"] = case_id
        if outcome:
            query["outcome"] = outcome
        return await self.audit_entries(query, limit=limit)

    # ------------------------------------------------------------------ fairness refs

    async def seed_refs(self, docs: list[dict[str, Any]]) -> int:
        """Insert the seeded reference set once; return how many were new. Builds the cells."""
        inserted = 0
        if docs and await self.refs.count_documents({"source": "seed"}) < len(docs):
            try:
                result = await self.refs.insert_many(docs, ordered=False)
                inserted = len(result.inserted_ids)
            except BulkWriteError as exc:  # another process seeded concurrently
                inserted = int(exc.details.get("nInserted", 0))
        await self._build_ref_cells(force=inserted > 0)
        return inserted

    async def _build_ref_cells(self, *, force: bool = False) -> None:
        """Fold the reference set into one document per fairness cell (start-up, once)."""
        if not force and await self.meta.find_one({"_id": "ref_cells_v1"}) is not None:
            return
        cells: dict[str, dict[str, int]] = {}
        async for doc in self.refs.find({}, {"ref_id": 1, "category": 1, "band": 1, "hardship": 1, "relief_bp": 1}):
            cell = _cell_id(doc["category"], doc["band"], bool(doc["hardship"]))
            cells.setdefault(cell, {})[_ref_key(doc["ref_id"])] = int(doc["relief_bp"])
        versions = {d["_id"]: int(d.get("version", 0))
                    async for d in self.ref_cells.find({"_id": {"$in": list(cells)}}, {"version": 1})}
        for cell, bp in cells.items():
            # a rebuild moves a cell's version on, never back (the local stack refuses a write
            # that lowers a version: deploy/local/stack.py, the version fence)
            await _replace_or_insert(self.ref_cells, {"_id": cell, "bp": bp, "version": versions.get(cell, 0) + 1})
        await _replace_or_insert(self.meta, {"_id": "ref_cells_v1", "at": datetime.now(UTC)})

    async def peer_pcts(self, query: dict[str, Any]) -> list[Decimal]:
        """Return the relief ratios (%) of past settlements in a fairness scope, read by ``_id``.

        ``query`` is a ``fairness.Cell.widening()`` scope (category, band, hardship, or fewer
        of them); the cells it spans are read by their ids.
        """
        categories = [query["category"]] if "category" in query else [c.value for c in Category]
        bands = [query["band"]] if "band" in query else [*(b for b, _, _ in BANDS), "unknown"]
        hardships = [bool(query["hardship"])] if "hardship" in query else [False, True]
        ids = [_cell_id(c, b, h) for c in categories for b in bands for h in hardships]
        docs = await find_by_ids(self.ref_cells, ids)
        return [Decimal(bp) / 100 for d in docs.values() for bp in d.get("bp", {}).values()]

    async def add_ref(self, doc: dict[str, Any]) -> None:
        """Add an agreed settlement to the reference set and its cell (idempotent on ref_id)."""
        try:
            await self.refs.update_one({"_id": doc["ref_id"]}, {"$setOnInsert": doc}, upsert=True)
        except DuplicateKeyError:
            pass  # stored before references were keyed by their ref_id: already there
        cell, key = _cell_id(doc["category"], doc["band"], bool(doc["hardship"])), _ref_key(doc["ref_id"])
        for _ in range(8):
            current = await self.ref_cells.find_one({"_id": cell})
            if current is not None and key in current.get("bp", {}):
                return
            if current is None:
                try:
                    await self.ref_cells.insert_one({"_id": cell, "bp": {key: doc["relief_bp"]}, "version": 1})
                    return
                except DuplicateKeyError:
                    continue
            version = current.get("version", 0)
            if await claim_next_version(self.cell_claims, self.ref_cells, cell, version):
                done = await self.ref_cells.update_one(
                    {"_id": cell, "version": version},
                    {"$set": {f"bp.{key}": doc["relief_bp"], "version": version + 1}},
                )
                if done.modified_count:
                    return
            await asyncio.sleep(0.01)
        log.warning("could not add a settlement to its fairness cell; it joins at the next start")

    # ------------------------------------------------------------------ dossiers

    async def put_dossier(self, dossier_id: str, case_id: str, data: dict[str, Any], html: str) -> None:
        """Store a dossier (idempotent on its id; two workers' deadline sweeps escalating the
        same case at once both store it, and one of them then loses the case's save)."""
        await _replace_or_insert(
            self.dossiers, {"_id": dossier_id, "case_id": case_id, "json": to_store(data), "html": html})

    async def get_dossier(self, dossier_id: str) -> dict[str, Any] | None:
        """Return a stored dossier: ``{"json": ..., "html": ...}``."""
        doc = await self.dossiers.find_one({"_id": dossier_id})
        if doc is None:
            return None
        return {"json": from_store(doc["json"]), "html": doc["html"]}


def _cell_id(category: str, band: str, hardship: bool) -> str:
    return f"{category}|{band}|{int(hardship)}"


def _ref_key(ref_id: str) -> str:
    return ref_id.replace(".", "_").replace("$", "_")  # a field name in the cell document


def _document(ws: Workspace) -> dict[str, Any]:
    """A workspace as stored: without ``case_id`` and ``version`` (the ``_id`` and the counter),
    with what its sweeps find it by (the agent's load it counts towards, day buckets)."""
    doc: dict[str, Any] = to_store(ws.model_dump(mode="python", exclude={"version"}))
    doc.pop("case_id")
    doc["load_holder"] = _holder(ws)
    # the near-deadline sweep's day bucket (shared.buckets): open cases only
    doc["deadline_day"] = day_of(ws.deadline_at) if ws.status == "open" else None
    # the progress sweep's: cases still owed regular notices, by the day the next is due
    reported = ws.status in PROGRESS_STATUSES and ws.closure is None
    doc["progress_day"] = (day_of(ws.progress_due_at) or UNPLANNED) if reported else None
    return doc


def _holder(ws: Workspace) -> str | None:
    """The agent whose load an open case counts towards."""
    return ws.assigned_agent if ws.status == "open" else None


def _workspace(doc: dict[str, Any]) -> Workspace:
    doc.pop("outbox", None)  # findAndModify on FerretDB v1 takes no projection
    doc.pop("load_holder", None)
    doc.pop("deadline_day", None)
    doc.pop("progress_day", None)
    data = from_store(doc)
    data["case_id"] = data.pop("_id")
    return Workspace.model_validate(data)
