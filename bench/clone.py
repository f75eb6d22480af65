"""Grow the services' stores to a level of stored cases by copying the cases the run made.

Sending 50,000 complaints through the pipeline takes longer than the whole benchmark's
budget on the 2-core machine, so the levels of ``time per complaint with N cases stored``
are reached by copying: a sample of the per-case documents the services stored during the run (intake's
cases, complaints, customers and sealed personal data; investigation's findings and records;
negotiation's workspaces; supervision's timelines; …) is copied ``k`` times with every
identifier in it renamed (``<id>~<k>``), so copy ``k`` is a consistent set of other
customers' cases — new ``_id`` values, case numbers, customer and case references — and the
unique indexes hold. Through FerretDB the copies are written with ``insert_many``. When
FerretDB runs on PostgreSQL (the local default) the copies are made inside PostgreSQL
(``Postgres``, ``Session``): each sample goes once, in the very form FerretDB stores it with a
mark where each identifier ends, into a temporary table of one ``psql`` session per collection,
and each round of copies is one ``INSERT … SELECT replace(text, mark, suffix)::jsonb`` per
collection, all collections at once — no copy crosses ``psql``. Measured on the 2-core machine
(other sessions kept the load at 3–7) on the stores of a 1,500-complaint ``python -m
bench.burst``, copied to 10,000 and then to 50,000 cases (75,571 and 356,467 documents, each
run from the same saved copy of the data; ``python -m bench.clone 10000 50000``, and the same
``Copier.grow`` calls with the earlier module): the earlier ``COPY`` of copies built in Python
did 2,047–2,150 and 2,086 documents/s (37 s and 171 s; PostgreSQL 147 CPU-s and Python 95
CPU-s in all) — the full runs saw 1,300–1,800/s with the services running — and this does
3,900–4,600 and 5,700–6,900/s (16–20 s and 52–63 s; PostgreSQL 81–90 CPU-s, Python 6; the
first level includes reading the samples). PostgreSQL's own work per document is now the bound
(``perf`` on its backends: the JSON parser about a fifth, lz4 compression 6 %, btree and GIN
upkeep about 2 %; a 64 MB GIN pending list for the copying sessions, merged afterwards with
``gin_clean_pending_list``, was no faster: 14.5 against 13.7 PostgreSQL CPU-s to 10,000, so the
server's settings stay as they are for the copies too). Either way
the server's tables and indexes grow exactly as they would; only the pipeline's work to make
them is skipped. Chains and bookkeeping (audit chains, outbox ledgers, counters, claims,
seeds, agents, alerts) are not per-case and are left as they are.

The per-case collections are named in ``PER_CASE``; each contributes a sample of up to
``SAMPLE`` documents, read once and copied over and over.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
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

#: collections written at once through FerretDB (its JSON encoding is the bound; it has two cores)
PARALLEL = 4
#: on PostgreSQL, about how long one round of copies takes (a progress line each, and the
#: deadline is checked between rounds)
ROUND_S = 10.0
#: where a copy's suffix goes in a stored document's text: a control character, which JSON
#: text never holds unescaped
MARK = "\x01"


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

    def _argv(self, *extra: str) -> list[str]:
        return [str(self.psql), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port),
                "-U", self.user, "-d", self.database, *extra]

    async def run(self, sql: str, stdin: bytes | None = None) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            *self._argv("-c", sql),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(stdin)
        if proc.returncode:
            raise RuntimeError(f"psql failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
        return out

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """One ``psql`` process (one PostgreSQL session) for several statements; ended on exit."""
        proc = await asyncio.create_subprocess_exec(
            *self._argv(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            yield Session(proc)
        finally:
            if proc.returncode is None:
                assert proc.stdin is not None
                proc.stdin.close()  # psql ends after the statement it is running
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()

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


class Session:
    """Statements sent one after another to one ``psql`` on its stdin, so a temporary table
    lives from one to the next; each waits for psql's echo of a marker after it."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc, self.sent = proc, 0

    async def run(self, sql: str, rows: Iterable[Sequence[object]] | None = None) -> str:
        """Run one statement (with ``rows`` as CSV for a ``COPY … FROM STDIN``); its output."""
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        self.sent += 1
        marker = f"__parley_clone_{self.sent}__"
        buf = io.StringIO()
        buf.write(sql.rstrip().rstrip(";") + ";\n")
        if rows is not None:
            csv.writer(buf, lineterminator="\n").writerows(rows)  # \n: psql's "\." ends it
            buf.write("\\.\n")
        buf.write(f"\\echo {marker}\n")
        stdin.write(buf.getvalue().encode())
        lines: list[bytes] = []
        try:
            await stdin.drain()
            while (line := await stdout.readline()).rstrip(b"\n") != marker.encode():
                if not line:
                    raise ConnectionResetError
                lines.append(line)
        except (ConnectionResetError, BrokenPipeError):  # ON_ERROR_STOP: psql stopped at an error
            assert self.proc.stderr is not None
            err = await self.proc.stderr.read()
            raise RuntimeError(f"psql failed ({await self.proc.wait()}): {err.decode(errors='replace')[-500:]}") from None
        return b"".join(lines).decode()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Stored:
    """One stored document in FerretDB's JSON text with ``MARK`` right after every identifier
    value in it (before its closing quote): replacing the marks by ``~<k>`` renames them as
    ``renamed`` does, without parsing the document."""

    text: str
    object_id: bool  # an ObjectId ``_id``: each copy needs a new one

    @classmethod
    def of(cls, text: str, doc: dict[str, Any], ids: set[str]) -> Stored:
        """``text`` as PostgreSQL writes ``jsonb`` (``"key": value``, ``, `` between items),
        ``doc`` its parse."""
        assert MARK not in text
        # FerretDB's type schema (the top-level "$s", where nested objects' schemas live too)
        # lists the field names as strings ("$k"): a field named like an identifier keeps its
        # name, so nothing in it is renamed
        schema = text.find(_SCHEMA_KEY)
        skip = range(0)
        if schema >= 0:
            skip = range(schema, _DECODER.raw_decode(text, schema + len(_SCHEMA_KEY))[1])
        found: set[str] = set()
        _known({k: v for k, v in doc.items() if k != "$s"}, ids, found)
        ends: list[int] = []
        for value in found:
            # the value as a JSON string token, escaped as PostgreSQL escapes it; a value (not a
            # key) follows "[" or a space and is followed by ",", "]" or "}" (any quote inside a
            # string is escaped, so this finds whole tokens only)
            token = json.dumps(value, ensure_ascii=False)
            at = text.find(token)
            while at >= 0:
                end = at + len(token)
                if at not in skip and text[at - 1] in "[ " and text[end:end + 1] in (",", "]", "}"):
                    ends.append(end - 1)
                at = text.find(token, at + 1)
        parts, last = [], 0
        for end in sorted(ends):
            parts.append(text[last:end])
            last = end
        parts.append(text[last:])
        schema = doc.get("$s", {}).get("p", {}).get("_id", {})
        return cls(MARK.join(parts), schema.get("t") == "objectId")


_SCHEMA_KEY = '"$s": '
_DECODER = json.JSONDecoder()


def _known(doc: Any, ids: set[str], out: set[str]) -> None:
    """Collect the string values (not keys) of ``doc`` that are known identifiers, at any depth."""
    if isinstance(doc, str):
        if doc in ids:
            out.add(doc)
    elif isinstance(doc, dict):
        for value in doc.values():
            _known(value, ids, out)
    elif isinstance(doc, list):
        for value in doc:
            _known(value, ids, out)


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


#: one round of copies: (suffix, share of the sample) per copy
Rounds = list[tuple[str, float]]

#: the temporary table a session keeps its collection's sample in
SAMPLE_TABLE = "parley_clone_sample"
#: a new ObjectId for a copy: the time now (4 bytes) and 8 random bytes, as FerretDB's hex
NEW_OBJECT_ID = ("lpad(to_hex(extract(epoch FROM clock_timestamp())::bigint), 8, '0') "
                 "|| left(md5(random()::text), 16)")


def _take(n: int, share: float) -> int:
    """How many of a sample of ``n`` a copy of ``share`` of it takes."""
    return max(1, round(n * share))


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

        async def read(db: str, name: str) -> tuple[str, list[str]] | None:
            table = await pg.table(db, name)
            return None if table is None else (table, await pg.sample(db, table, SAMPLE))

        fields = set(ID_FIELDS)
        kept: dict[tuple[str, str], tuple[str, list[tuple[str, dict[str, Any]]]]] = {}
        for pair, found in zip(pairs, await asyncio.gather(*(read(*p) for p in pairs)), strict=True):
            if found is None:
                continue
            table, rows = found
            docs = [(t, doc) for t in rows if not _excluded(pair[1], doc := json.loads(t))]
            kept[pair] = (table, docs)
            self.originals[pair] = [{k: v for k, v in doc.items() if k != "$s"} for _, doc in docs]
            for doc in self.originals[pair]:
                _ids_of(doc, fields, self.ids)
        self.stored = {pair: (table, [Stored.of(t, doc, self.ids) for t, doc in docs])
                       for pair, (table, docs) in kept.items()}
        self.seed = len(self.originals.get((f"{self.db_prefix}intake", "cases"), []))

    @contextlib.asynccontextmanager
    async def _writer(self) -> AsyncIterator[Callable[[Rounds], Awaitable[int]]]:
        """What writes a round of copies of every collection (and says how many documents)."""
        if self.postgres is None:
            sem = asyncio.Semaphore(PARALLEL)

            async def insert(pair: tuple[str, str], rounds: Rounds) -> int:
                async with sem:
                    n = 0
                    docs = self.originals[pair]
                    coll = self.client[pair[0]][pair[1]]
                    for suffix, share in rounds:
                        some = docs[: _take(len(docs), share)]
                        for start in range(0, len(some), CHUNK):
                            batch = [renamed(d, self.ids, suffix) for d in some[start:start + CHUNK]]
                            await coll.insert_many(batch, ordered=False)
                        n += len(some)
                    return n

            async def through_ferretdb(rounds: Rounds) -> int:
                return sum(await asyncio.gather(*(insert(pair, rounds) for pair in self.originals)))

            yield through_ferretdb
            return

        pg = self.postgres
        async with contextlib.AsyncExitStack() as stack:
            sessions = {pair: await stack.enter_async_context(pg.session()) for pair in self.stored}

            async def upload(pair: tuple[str, str]) -> None:
                session = sessions[pair]
                await session.run(f"CREATE TEMP TABLE {SAMPLE_TABLE} (n int, object_id boolean, text text)")
                rows = ((n, "t" if d.object_id else "f", d.text) for n, d in enumerate(self.stored[pair][1]))
                await session.run(f"COPY {SAMPLE_TABLE} FROM STDIN (FORMAT csv)", rows)

            await asyncio.gather(*(upload(pair) for pair in self.stored))

            async def insert_select(pair: tuple[str, str], rounds: Rounds) -> int:
                table, docs = self.stored[pair]
                copies = [(suffix, _take(len(docs), share)) for suffix, share in rounds]
                values = ", ".join(f"({_literal(suffix)}, {n})" for suffix, n in copies)
                doc = f"replace(s.text, chr({ord(MARK)}), k.suffix)::jsonb"
                await sessions[pair].run(
                    f"INSERT INTO {_ident(pair[0])}.{_ident(table)} (_jsonb) "
                    f"SELECT CASE WHEN s.object_id THEN jsonb_set({doc}, '{{_id}}', to_jsonb({NEW_OBJECT_ID})) "
                    f"ELSE {doc} END FROM {SAMPLE_TABLE} s CROSS JOIN (VALUES {values}) AS k(suffix, upto) "
                    "WHERE s.n < k.upto")
                return sum(n for _, n in copies)

            async def in_postgresql(rounds: Rounds) -> int:
                # every collection at once: PostgreSQL spreads them over its cores (and each
                # statement ends before an error is raised, so no session is left mid-statement)
                done = await asyncio.gather(*(insert_select(pair, rounds) for pair in self.stored), return_exceptions=True)
                for result in done:
                    if isinstance(result, BaseException):
                        raise result
                return sum(n for n in done if isinstance(n, int))

            yield in_postgresql

    async def settle(self) -> float:
        """``VACUUM (ANALYZE)`` the tables copies went into (PostgreSQL path); return the seconds.

        Hundreds of thousands of rows inserted in a minute start autovacuum on those tables right
        after the copying, and a probe taken then measures the vacuum as much as the stored cases
        (investigation's time per complaint at 50,000 was 2.3x the time at 0 in such a run, with
        autovacuum working through the copied tables beside it). A desk's server that has grown to
        that many cases over months has long been vacuumed; so the copies are vacuumed here, once,
        before the probe. Through FerretDB (other backends) nothing is done.
        """
        if self.postgres is None or not self.stored:
            return 0.0
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tables = ", ".join(f"{_ident(db)}.{_ident(table)}" for (db, _), (table, _) in self.stored.items())
        await self.postgres.run(f"VACUUM (ANALYZE) {tables}")
        return round(loop.time() - t0, 1)

    async def grow(self, target: int, stored: int, deadline: Callable[[], float] | None = None) -> dict[str, Any]:
        """Copy until about ``target`` cases are stored (``stored`` now); ``deadline`` (seconds
        left) stops early."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        if not self.originals:
            await self._read(stored)
        have = before = stored
        written = copies = 0
        busy = 0.0  # seconds spent in rounds of copies
        per_copy = sum(len(docs) for docs in self.originals.values())
        async with self._writer() as write:
            while self.seed and have < target and (deadline is None or deadline() > 0):
                # on PostgreSQL a round holds as many copies as the rate so far fits in ROUND_S
                # seconds and in the time left (the first, one copy, measures the rate)
                k = 1
                if self.postgres is not None and written:
                    per_s = written / max(busy, 1e-3) / max(per_copy, 1)  # copies per second
                    k = max(1, min(math.ceil((target - have) / self.seed), int(ROUND_S * per_s)))
                    if deadline is not None:
                        k = max(1, min(k, int(deadline() * per_s)))
                rounds: Rounds = []
                left = target - have
                for _ in range(k):
                    share = min(1.0, left / self.seed)
                    rounds.append((f"~{self.next_copy}", share))
                    self.next_copy += 1
                    left -= round(self.seed * share)
                t = loop.time()
                written += await write(rounds)
                busy += loop.time() - t
                added = sum(round(self.seed * share) for _, share in rounds)
                have += added
                self.copied += added
                copies += len(rounds)
                rate = written / max(loop.time() - t0, 1e-3)
                self.say(f"  copied: {have:,}/{target:,} cases stored ({written:,} documents, {rate:,.0f}/s)")
        return {"copies": copies, "cases_before": before, "cases_after": have, "seed_cases": self.seed,
                "made_by_pipeline": self.made,
                "collections": sorted(f"{db.removeprefix(self.db_prefix)}.{name}" for db, name in self.originals),
                "documents": written, "seconds": round(loop.time() - t0, 1)}


async def _measure(args: argparse.Namespace) -> None:
    """Copy a running stack's stored cases to each level and say how fast (``main``)."""
    from bench.stack import REPO, Ports, Stack, tree_cpu_s

    stack_dir = Path(args.stack_dir) if args.stack_dir else REPO / ".parley" / f"burst-stack-{args.port_base}"
    stack = Stack(stack_dir, Ports(args.port_base), say=print)
    client: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongo_url)
    try:
        prefix = args.prefix
        if prefix is None:
            found = {n.removesuffix("intake") for n in await client.list_database_names() if n.endswith("intake")}
            if len(found) != 1:
                raise SystemExit(f"which run's databases? --prefix one of {sorted(found)}")
            prefix = found.pop()
        postgres = None if args.through_ferretdb else stack.postgres()
        copier = Copier(client, prefix, postgres=postgres)
        have = await client[f"{prefix}intake"].cases.count_documents({})
        pid = stack.server_pids().get("postgresql")
        print(f"{have:,} cases stored in {prefix}*; copies written "
              + ("inside PostgreSQL" if postgres else "with insert_many through FerretDB"))
        for level in args.levels:
            cpu = tree_cpu_s(pid) if pid else None
            done = await copier.grow(level, have)
            have = done["cases_after"]
            used = tree_cpu_s(pid) if pid else None
            pg = f"; PostgreSQL {used - cpu:.1f} CPU-s" if cpu is not None and used is not None else ""
            print(f"to {level:,}: {done['documents']:,} documents in {done['seconds']} s "
                  f"({done['documents'] / max(done['seconds'], 0.1):,.0f}/s){pg}")
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.clone",
        description="Copy the cases stored in a running stack (by default the one `python -m bench.burst` "
                    "left, restarted with deploy/local/stack.py) up to each level, timing each. The copies "
                    "are named ~1, ~2, …: run it once per stack (a second run's copies would collide).")
    parser.add_argument("levels", type=int, nargs="+", help="cases stored after each step, e.g. 10000 50000")
    parser.add_argument("--port-base", type=int, default=16000, help="the stack's ports, as bench.burst's (16000)")
    parser.add_argument("--stack-dir", help="default: .parley/burst-stack-<port base>")
    parser.add_argument("--prefix", help="the run's database prefix (found when there is one)")
    parser.add_argument("--through-ferretdb", action="store_true", help="insert_many through FerretDB, as on other backends")
    asyncio.run(_measure(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
