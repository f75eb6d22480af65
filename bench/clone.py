"""Grow the services' stores to a level of stored cases by copying the cases the run made.

Sending 50,000 complaints through the pipeline takes longer than the whole benchmark's
budget on the 2-core machine, so the levels of ``time per complaint with N cases stored``
are reached by copying: a sample of the per-case documents the services stored during the run (intake's
cases, complaints, customers and sealed personal data; investigation's findings and records;
negotiation's workspaces; supervision's timelines; …) is copied ``k`` times with every
identifier in it renamed (``<id>~<k>``), so copy ``k`` is a consistent set of other
customers' cases — new ``_id`` values, case numbers, customer and case references — and the
unique indexes hold. Through FerretDB the copies are written with ``insert_many``; when
FerretDB runs on PostgreSQL (the local default) they are written straight into its tables with
``COPY`` (``Postgres``), in the very form FerretDB stores them — two to three times faster in
the benchmark (1,300–1,800 documents/s against ~800/s), which brings the 50,000 level near the
budget. Either way the server's tables and indexes grow exactly as they would; only the
pipeline's work to make them is skipped. Chains and bookkeeping (audit chains, outbox ledgers,
counters, claims, seeds, agents, alerts) are not per-case and are left as they are.

The per-case collections are named in ``PER_CASE``; each contributes a sample of up to
``SAMPLE`` documents, read once and copied over and over.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
#: documents of a sample that are not copied, by collection: (field, value). A case paused for an
#: external appraisal waits on an appraisal record the copies do not have (``appraisals`` is not
#: per case), so its copies would stay paused for ever and the periodic sweep would read more of
#: them every round — a pile-up a desk never has (its paused cases resume within days).
EXCLUDE = {"investigations": ("status", "paused")}

#: collections written at once (FerretDB's JSON encoding is the bound; it has two cores)
PARALLEL = 4
#: most copies written in one COPY per collection (PostgreSQL path)
PG_COPIES = 5


@dataclass
class Postgres:
    """FerretDB's PostgreSQL backend, reached with ``psql``.

    FerretDB v1 keeps each database in a schema of the same name and each collection in a
    table with one ``_jsonb`` column (the document's values plus its type schema under
    ``$s``); ``_ferretdb_database_metadata`` maps collection names to tables.
    """

    psql: Path
    host: str
    port: int
    user: str = "postgres"
    database: str = "ferretdb"

    async def run(self, sql: str, stdin: bytes | None = None) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            str(self.psql), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port),
            "-U", self.user, "-d", self.database, "-c", sql,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(stdin)
        if proc.returncode:
            raise RuntimeError(f"psql failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
        return out

    async def table(self, db: str, collection: str) -> str | None:
        """The table holding ``db.collection``, or None when it does not exist."""
        meta = f"{_ident(db)}._ferretdb_database_metadata"
        if not (await self.run(f"SELECT to_regclass({_literal(meta)})")).strip():
            return None  # no such database
        out = await self.run(f"SELECT _jsonb->>'table' FROM {meta} WHERE _jsonb->>'_id' = {_literal(collection)}")
        name = out.decode().strip()
        return name or None

    async def sample(self, db: str, table: str, n: int) -> list[str]:
        """Up to ``n`` stored documents of a table, as FerretDB's JSON text."""
        out = await self.run(f"COPY (SELECT _jsonb::text FROM {_ident(db)}.{_ident(table)} LIMIT {int(n)}) "
                             "TO STDOUT (FORMAT csv)")
        return [row[0] for row in csv.reader(io.StringIO(out.decode()))]

    async def append(self, db: str, table: str, texts: list[str]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf)
        for text in texts:
            writer.writerow([text])
        await self.run(f"COPY {_ident(db)}.{_ident(table)} (_jsonb) FROM STDIN (FORMAT csv)", buf.getvalue().encode())


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


#: a JSON string token, and the colon after it when it is an object's key
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?')


@dataclass
class Stored:
    """One stored document in FerretDB's JSON form, cut where its identifiers end.

    A copy is ``suffix.join(parts)``: the suffix lands right after every identifier value,
    which renames them as ``renamed`` does, without parsing the document again.
    """

    parts: list[str]
    object_id: bool  # an ObjectId ``_id``: each copy needs a new one (the slow way)
    text: str

    @classmethod
    def of(cls, text: str, ids: set[str]) -> Stored:
        parts, last = [], 0
        for m in _TOKEN.finditer(text):
            if m.group(2) is None and m.group(1) in ids:
                parts.append(text[last:m.end(1)])
                last = m.end(1)
        parts.append(text[last:])
        schema = json.loads(text).get("$s", {}).get("p", {}).get("_id", {})
        return cls(parts, schema.get("t") == "objectId", text)

    def copy(self, suffix: str, ids: set[str]) -> str:
        if not self.object_id:
            return suffix.join(self.parts)
        doc = json.loads(self.text)
        schema = doc.pop("$s")
        doc.pop("_id")
        out = renamed(doc, ids, suffix)
        return json.dumps({"$s": schema, "_id": str(ObjectId()), **out}, ensure_ascii=False)


def _excluded(collection: str, doc: dict[str, Any]) -> bool:
    field, value = EXCLUDE.get(collection, ("", None))
    return bool(field) and doc.get(field) == value


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

    def __init__(self, client: AsyncMongoClient[Any], db_prefix: str, *, say: Callable[[str], None] = print,
                 postgres: Postgres | None = None) -> None:
        self.client, self.db_prefix, self.say, self.postgres = client, db_prefix, say, postgres
        self.originals: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.stored: dict[tuple[str, str], tuple[str, list[Stored]]] = {}  # with ``postgres``: table, documents
        self.ids: set[str] = set()
        self.seed = 0  # intake cases among the originals (copied each round)
        self.made = 0  # intake's cases when the originals were read (made by the pipeline)
        self.copied = 0  # cases added by copying so far
        self.next_copy = 1

    async def _read(self, stored: int) -> None:
        self.made = stored
        pairs = [(f"{self.db_prefix}{service}", name) for service, names in PER_CASE.items() for name in names]
        if self.postgres is not None:
            await self._read_tables(pairs)
            return

        async def read(db: str, name: str) -> list[dict[str, Any]]:
            cursor = self.client[db][name].find({}, batch_size=SAMPLE).limit(SAMPLE)
            return [d async for d in cursor if not _excluded(name, d)]

        for pair, docs in zip(pairs, await asyncio.gather(*(read(*p) for p in pairs)), strict=True):
            self.originals[pair] = docs
        self.seed = len(self.originals.get((f"{self.db_prefix}intake", "cases"), []))
        fields = set(ID_FIELDS)
        for docs in self.originals.values():
            for doc in docs:
                _ids_of(doc, fields, self.ids)

    async def _read_tables(self, pairs: list[tuple[str, str]]) -> None:
        """The samples straight from FerretDB's tables (``postgres``)."""
        pg = self.postgres
        assert pg is not None
        texts: dict[tuple[str, str], tuple[str, list[str]]] = {}
        for db, name in pairs:
            table = await pg.table(db, name)
            if table is not None:
                texts[(db, name)] = (table, await pg.sample(db, table, SAMPLE))
        fields = set(ID_FIELDS)
        kept: dict[tuple[str, str], list[str]] = {}
        for pair, (_, rows) in texts.items():
            parsed = [(t, json.loads(t)) for t in rows]
            kept[pair] = [t for t, doc in parsed if not _excluded(pair[1], doc)]
            self.originals[pair] = [{k: v for k, v in doc.items() if k != "$s"}
                                    for _, doc in parsed if not _excluded(pair[1], doc)]
            for doc in self.originals[pair]:
                _ids_of(doc, fields, self.ids)
        self.stored = {pair: (table, [Stored.of(t, self.ids) for t in kept[pair]]) for pair, (table, _) in texts.items()}
        self.seed = len(self.originals.get((f"{self.db_prefix}intake", "cases"), []))

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
        per_copy = sum(len(docs) for docs in self.originals.values())
        while self.seed and have < target and (deadline is None or deadline() > 0):
            # on PostgreSQL several copies go in one COPY per collection (fewer psql runs), as many
            # as the rate so far fits in the time left (at most PG_COPIES)
            k = 1
            if self.postgres is not None and written:
                rate = written / max(loop.time() - t0, 1e-3)
                k = max(1, min(PG_COPIES, math.ceil((target - have) / self.seed)))
                if deadline is not None:
                    k = max(1, min(k, int(deadline() * rate / max(per_copy, 1))))
            rounds: list[tuple[str, float]] = []
            left = target - have
            for _ in range(k):
                share = min(1.0, left / self.seed)
                rounds.append((f"~{self.next_copy}", share))
                self.next_copy += 1
                left -= round(self.seed * share)

            async def copy(pair: tuple[str, str], rounds: list[tuple[str, float]] = rounds) -> int:
                async with sem:
                    if self.postgres is not None:
                        table, stored = self.stored[pair]
                        texts = [d.copy(suffix, self.ids) for suffix, share in rounds
                                 for d in stored[: max(1, round(len(stored) * share))]]
                        await self.postgres.append(pair[0], table, texts)
                        return len(texts)
                    n = 0
                    for suffix, share in rounds:
                        docs = self.originals[pair]
                        docs = docs[: max(1, round(len(docs) * share))]
                        coll = client[pair[0]][pair[1]]
                        for start in range(0, len(docs), CHUNK):
                            batch = [renamed(d, self.ids, suffix) for d in docs[start:start + CHUNK]]
                            await coll.insert_many(batch, ordered=False)
                        n += len(docs)
                    return n

            written += sum(await asyncio.gather(*(copy(p) for p in self.originals)))
            added = sum(round(self.seed * share) for _, share in rounds)
            have += added
            self.copied += added
            copies += len(rounds)
            rate = written / max(loop.time() - t0, 1e-3)
            self.say(f"  copied: {have:,}/{target:,} cases stored ({written:,} documents, {rate:,.0f}/s)")
        return {"copies": copies, "cases_before": before, "cases_after": have, "seed_cases": self.seed, "made_by_pipeline": self.made,
                "collections": sorted(f"{db.removeprefix(self.db_prefix)}.{name}" for db, name in self.originals),
                "documents": written, "seconds": round(loop.time() - t0, 1)}
