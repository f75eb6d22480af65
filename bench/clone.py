"""Grow the services' stores to a level of stored cases by copying the cases the run made.

Sending 50,000 complaints through the pipeline takes longer than the whole benchmark's
budget on the 2-core machine, so the levels of ``time per complaint with N cases stored``
are reached by copying: a sample of the per-case documents the services stored during the run (intake's
cases, complaints, customers and sealed personal data; investigation's findings and records;
negotiation's workspaces; supervision's timelines; …) is copied ``k`` times with every
identifier in it renamed (``<id>~<k>``), so copy ``k`` is a consistent set of other
customers' cases — new ``_id`` values, case numbers, customer and case references — and the
unique indexes hold. The copies are written with ``insert_many`` through FerretDB, so the
server's tables and indexes grow exactly as they would; only the pipeline's work to make them
is skipped. Chains and bookkeeping (audit chains, outbox ledgers, counters, claims, seeds,
agents, alerts) are not per-case and are left as they are.

The per-case collections are named in ``PER_CASE``; each contributes a sample of up to
``SAMPLE`` documents, read once and copied over and over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient

#: the collections holding about one document per case (or per complaint), by service: what is
#: copied. (Named rather than found by counting: FerretDB v1 counts by reading the table.)
PER_CASE = {
    "intake": ("cases", "complaints", "customers", "personal_data"),
    "investigation": ("investigations", "core_records"),
    "negotiation": ("cases", "customers"),
    "supervision": ("cases",),
}
ID_FIELDS = ("_id", "case_id", "case_number", "customer_id", "complaint_id", "channel_complaint_id",
             "account_id", "ref_id", "case_ids", "related_case_ids")
CHUNK = 1_000
#: documents read from each per-case collection and copied over and over: reading every
#: stored document through FerretDB took longer than the copying (~2 min for 4,300 cases)
SAMPLE = 600
#: collections written at once (FerretDB's JSON encoding is the bound; it has two cores)
PARALLEL = 4


def _ids_of(doc: Any, fields: set[str], out: set[str]) -> None:
    """Collect the string values of identifier fields, at any depth."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in fields:
                if isinstance(value, str):
                    out.add(value)
                elif isinstance(value, list):
                    out.update(v for v in value if isinstance(v, str))
            _ids_of(value, fields, out)
    elif isinstance(doc, list):
        for value in doc:
            _ids_of(value, fields, out)


def renamed(doc: Any, ids: set[str], suffix: str) -> Any:
    """A copy of ``doc`` with every string that is a known identifier renamed (at any depth)."""
    if isinstance(doc, str):
        return doc + suffix if doc in ids else doc
    if isinstance(doc, dict):
        out = {k: renamed(v, ids, suffix) for k, v in doc.items()}
        if isinstance(out.get("_id"), ObjectId):
            out["_id"] = ObjectId()
        return out
    if isinstance(doc, list):
        return [renamed(v, ids, suffix) for v in doc]
    return doc


class Copier:
    """Copies of one run's per-case documents; the originals are read once, at the first level."""

    def __init__(self, client: AsyncMongoClient[Any], db_prefix: str, *, say: Callable[[str], None] = print) -> None:
        self.client, self.db_prefix, self.say = client, db_prefix, say
        self.originals: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.ids: set[str] = set()
        self.seed = 0  # intake cases among the originals (copied each round)
        self.made = 0  # intake's cases when the originals were read (made by the pipeline)
        self.copied = 0  # cases added by copying so far
        self.next_copy = 1

    async def _read(self, stored: int) -> None:
        self.made = stored
        pairs = [(f"{self.db_prefix}{service}", name) for service, names in PER_CASE.items() for name in names]

        async def read(db: str, name: str) -> list[dict[str, Any]]:
            cursor = self.client[db][name].find({}, batch_size=SAMPLE).limit(SAMPLE)
            return [d async for d in cursor]

        for pair, docs in zip(pairs, await asyncio.gather(*(read(*p) for p in pairs)), strict=True):
            self.originals[pair] = docs
        self.seed = len(self.originals.get((f"{self.db_prefix}intake", "cases"), []))
        fields = set(ID_FIELDS)
        for docs in self.originals.values():
            for doc in docs:
                _ids_of(doc, fields, self.ids)

    async def grow(self, target: int, stored: int, deadline: Callable[[], float] | None = None) -> dict[str, Any]:
        """Copy until about ``target`` cases are stored (``stored`` now); ``deadline`` (seconds
        left) stops early."""
        if not self.originals:
            await self._read(stored)
        client = self.client
        have = before = stored
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        written = copies = 0
        sem = asyncio.Semaphore(PARALLEL)
        while self.seed and have < target and (deadline is None or deadline() > 0):
            suffix = f"~{self.next_copy}"
            share = min(1.0, (target - have) / self.seed)

            async def copy(pair: tuple[str, str], suffix: str = suffix, share: float = share) -> int:
                async with sem:
                    docs = self.originals[pair]
                    docs = docs[: max(1, round(len(docs) * share))]
                    coll = client[pair[0]][pair[1]]
                    for start in range(0, len(docs), CHUNK):
                        batch = [renamed(d, self.ids, suffix) for d in docs[start:start + CHUNK]]
                        await coll.insert_many(batch, ordered=False)
                    return len(docs)

            written += sum(await asyncio.gather(*(copy(p) for p in self.originals)))
            added = round(self.seed * share)
            have += added
            self.copied += added
            copies += 1
            self.next_copy += 1
            rate = written / max(loop.time() - t0, 1e-3)
            self.say(f"  copied: {have:,}/{target:,} cases stored ({written:,} documents, {rate:,.0f}/s)")
        return {"copies": copies, "cases_before": before, "cases_after": have, "seed_cases": self.seed, "made_by_pipeline": self.made,
                "collections": sorted(f"{db.removeprefix(self.db_prefix)}.{name}" for db, name in self.originals),
                "documents": written, "seconds": round(loop.time() - t0, 1)}
