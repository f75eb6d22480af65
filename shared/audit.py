"""The tamper-evident audit trail: one append-only chain of records per service (issue 11).

Every state change and every privileged read a service wants on the record is appended with
``AuditChain.append``: who did it (a token's subject or a named job), in which role, what
(``action``), when (``at``), about which case, and a few ``details`` (a small JSON object,
never personal data). Each record holds the SHA-256 of the one before it, so editing,
removing or reordering any record breaks the chain at that point, and ``verify`` names it.

A record, in the service's own database, collection ``audit_chain``::

    {_id: seq, seq, at, who, role, action, case_id, details, prev, hash}

* ``seq`` — 1, 2, … per service chain, and the ``_id``: the unique ``_id`` is what keeps two
  writers (tasks, processes, replicas) from forking the chain. A writer inserts
  ``seq = head + 1`` with ``prev = hash(head)``; when the insert fails on the duplicate
  ``_id``, another writer took that seq first, so it finds the head again and retries on top
  of it. One record per seq, each pointing at the one record of seq - 1.
* ``prev`` — the previous record's ``hash`` (64 zeros for record 1).
* ``hash`` — SHA-256 (hex) of the canonical JSON of every other field (``_id`` aside):
  keys sorted, no spaces, UTF-8, ``at`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC, milliseconds:
  what BSON keeps). An exported line (``export``) is exactly those fields plus ``hash``, so
  anyone can recompute it.

**Finding the head.** Reads by ``_id`` are the fast path on FerretDB v1 (ranges, ``$in`` and
sorts on ``_id`` scan the collection), so the head is found by ``_id`` only: collection
``audit_head`` keeps one document ``{_id: "head", seq, hash}``, moved forward after each
append (best effort, a conditional upsert that never moves it back on MongoDB). It is a hint:
the writer reads it, then probes ``_id`` seq + 1, seq + 2, … until one is missing, so a hint
left behind by a crash between the two writes costs a probe, never a fork. ``verify`` also
uses it to notice records removed from the end of the chain, and compares its hash with the
last record's.

**What it proves, and what not.** Anyone who can write the database can rewrite the whole
chain from some record on and recompute every hash (and the head document): a chain held in
the same database proves the records were not changed *since a head someone kept elsewhere*.
That is what ``export`` is for: the regulator keeps the head of each export
(``{"head": ..., "seq": ...}``), and a later chain that does not contain that record at that
seq has been rewritten.

Command line (the Mongo URL from ``PARLEY_MONGO_URL``)::

    python -m shared.audit verify --db parley_negotiation
    python -m shared.audit export --db parley_negotiation --from 2026-11-01 --to 2026-12-01 --out nov.jsonl

``verify`` walks the chain by ``_id`` and prints the first edited, removed or reordered record
(exit 1) or ``chain intact: N records, head <hash>`` (exit 0). ``export`` writes the records
whose ``at`` is in ``[from, to)`` as JSON lines, then the chain head as the last line; it
verifies the whole chain while it walks and writes nothing when the chain is broken (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from pymongo.errors import DuplicateKeyError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The collection, in each service's own database, holding the chain (``_id`` = seq).
AUDIT_CHAIN = "audit_chain"
#: The collection holding the head hint (one document, ``_id`` = ``HEAD_ID``).
AUDIT_HEAD = "audit_head"
HEAD_ID = "head"
#: ``prev`` of record 1.
GENESIS = "0" * 64
#: The fields a record's hash covers (every field but ``hash``).
HASHED_FIELDS = ("seq", "at", "who", "role", "action", "case_id", "details", "prev")
#: Largest canonical JSON of ``details``, in bytes.
MAX_DETAILS_BYTES = 4096
MAX_TEXT = 300
#: How many records are read by ``_id`` at once when walking the chain.
READ_AHEAD = 32
#: How many times an append retries when other writers keep taking the next seq.
MAX_ATTEMPTS = 200


# ------------------------------------------------------------------ records


def canonical_time(at: datetime) -> str:
    """``at`` as the chain writes it: UTC, milliseconds, ``Z`` (a naive time is taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _plain(value: Any, path: str) -> Any:
    """Check that ``details`` holds only JSON values that survive BSON unchanged."""
    if value is None or isinstance(value, (str, bool, int)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            raise ValueError(f"audit details: {path} is too large an integer")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str) or k.startswith("$") or "." in k:
                raise ValueError(f"audit details: key {k!r} at {path or 'top'} is not a plain string")
            out[k] = _plain(v, f"{path}.{k}" if path else k)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"audit details: {path} is a {type(value).__name__}; use text, integers, booleans, lists")


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """The canonical JSON a record's hash is taken over."""
    body: dict[str, Any] = {k: record.get(k) for k in HASHED_FIELDS}
    at = body["at"]
    body["at"] = canonical_time(at) if isinstance(at, datetime) else at
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the record's canonical JSON (everything but ``hash`` and ``_id``)."""
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def _text(name: str, value: str | None, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValueError(f"an audit record needs {name}")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"audit record: {name} must be non-empty text")
    return value[:MAX_TEXT]


def make_record(
    *, seq: int, prev: str, who: str | None, role: str | None, action: str,
    case_id: str | None = None, details: Mapping[str, Any] | None = None, at: datetime | None = None,
) -> dict[str, Any]:
    """Build record ``seq`` chained to ``prev`` (with ``_id`` and ``hash``)."""
    when = (at or datetime.now(UTC))
    when = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    when = when.replace(microsecond=when.microsecond // 1000 * 1000)  # what BSON keeps
    plain = _plain(dict(details or {}), "")
    if len(json.dumps(plain, ensure_ascii=False).encode("utf-8")) > MAX_DETAILS_BYTES:
        raise ValueError(f"audit details must be at most {MAX_DETAILS_BYTES} bytes of JSON")
    record: dict[str, Any] = {
        "_id": seq, "seq": seq, "at": when,
        "who": _text("who", who), "role": _text("role", role), "action": _text("action", action, required=True),
        "case_id": _text("case_id", case_id), "details": plain, "prev": prev,
    }
    record["hash"] = record_hash(record)
    return record


def exported(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as an export line (and the API) shows it: the hashed fields (``at`` canonical) and ``hash``."""
    out = {k: record.get(k) for k in HASHED_FIELDS}
    at = out["at"]
    out["at"] = canonical_time(at) if isinstance(at, datetime) else at
    out["hash"] = record.get("hash")
    return out


# ------------------------------------------------------------------ stores


@dataclass(frozen=True)
class Head:
    """The last record of a chain (seq 0 and ``GENESIS`` for an empty chain)."""

    seq: int
    hash: str


EMPTY = Head(0, GENESIS)


class ChainStore(Protocol):
    """Where a chain lives: records by seq, and the head hint."""

    async def insert(self, record: dict[str, Any]) -> bool:
        """Insert a record; False when its seq is taken."""
        ...

    async def get(self, seq: int) -> dict[str, Any] | None:
        """The record stored under ``_id`` = seq, or None."""
        ...

    async def head_hint(self) -> Head | None:
        """The head last recorded (may lag behind the chain), or None."""
        ...

    async def set_head_hint(self, head: Head) -> None:
        """Move the head hint forward to ``head`` (never back)."""
        ...

    async def count(self) -> int:
        """How many records are stored."""
        ...


class MongoChainStore:
    """A chain in a service's database: ``audit_chain`` and ``audit_head``.

    Uses only ``insert_one``, ``find_one`` by ``_id``, one conditional upsert and a count,
    which MongoDB and FerretDB v1 both serve (the first two fast).
    """

    def __init__(self, database: Any) -> None:
        self.database = database
        self.records = database[AUDIT_CHAIN]
        self.head = database[AUDIT_HEAD]

    async def insert(self, record: dict[str, Any]) -> bool:
        try:
            await self.records.insert_one(dict(record))
        except DuplicateKeyError:
            return False
        return True

    async def get(self, seq: int) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await self.records.find_one({"_id": seq})
        return doc

    async def head_hint(self) -> Head | None:
        doc = await self.head.find_one({"_id": HEAD_ID})
        if doc is None or not isinstance(doc.get("seq"), int) or not isinstance(doc.get("hash"), str):
            return None
        return Head(int(doc["seq"]), str(doc["hash"]))

    async def set_head_hint(self, head: Head) -> None:
        try:
            await self.head.update_one({"_id": HEAD_ID, "seq": {"$lt": head.seq}},
                                       {"$set": {"seq": head.seq, "hash": head.hash}}, upsert=True)
        except DuplicateKeyError:
            pass  # the hint is already at or past this seq (the upsert's insert lost)

    async def count(self) -> int:
        return int(await self.records.count_documents({}))


# ------------------------------------------------------------------ the chain


class AuditChain:
    """Appends to one service's chain. Safe for concurrent tasks and processes."""

    def __init__(self, store: ChainStore) -> None:
        self.store = store
        self._head: Head | None = None
        self._locks: dict[int, asyncio.Lock] = {}

    def _lock(self) -> asyncio.Lock:
        loop = id(asyncio.get_running_loop())
        if loop not in self._locks:
            self._locks = {loop: asyncio.Lock()}  # one per running loop (tests run several)
        return self._locks[loop]

    async def find_head(self, at_least: Head | None = None) -> Head:
        """The current head: the hint (or ``at_least`` when further on), then probing ``_id`` forward."""
        head = at_least or EMPTY
        hint = await self.store.head_hint()
        if hint is not None and hint.seq > head.seq:
            head = hint
        while (doc := await self.store.get(head.seq + 1)) is not None:
            head = Head(head.seq + 1, str(doc.get("hash")))
        return head

    async def append(
        self, *, who: str | None, role: str | None, action: str, case_id: str | None = None,
        details: Mapping[str, Any] | None = None, at: datetime | None = None,
    ) -> dict[str, Any]:
        """Append one record on top of the head; return it (with ``seq`` and ``hash``)."""
        async with self._lock():
            head = self._head or await self.find_head()
            for _ in range(MAX_ATTEMPTS):
                record = make_record(seq=head.seq + 1, prev=head.hash, who=who, role=role, action=action,
                                     case_id=case_id, details=details, at=at)
                if await self.store.insert(record):
                    self._head = Head(record["seq"], record["hash"])
                    try:
                        await self.store.set_head_hint(self._head)
                    except Exception:  # noqa: BLE001 - only a hint: the next writer probes past it
                        log.warning("could not move the audit head hint to %s", record["seq"], exc_info=True)
                    return record
                # another writer took this seq: build on its record (and whatever followed it)
                self._head = None
                head = await self.find_head(at_least=head)
            raise RuntimeError(f"could not append to the audit chain after {MAX_ATTEMPTS} attempts")

    async def read(self, after: int = 0, limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
        """Records ``after + 1`` … ``after + limit`` (by ``_id``) and the cursor of the next page (None at the end)."""
        records: list[dict[str, Any]] = []
        async for _, doc in walk(self.store, start=after + 1, stop=after + limit):
            records.append(doc)
        if len(records) == limit and await self.store.get(after + limit + 1) is not None:
            return records, after + limit
        return records, None


async def walk(store: ChainStore, *, start: int = 1, stop: int | None = None) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """Yield ``(seq, record)`` by ``_id`` from ``start`` until a seq is missing (or past ``stop``)."""
    seq = start
    while stop is None or seq <= stop:
        n = READ_AHEAD if stop is None else min(READ_AHEAD, stop - seq + 1)
        docs = await asyncio.gather(*(store.get(s) for s in range(seq, seq + n)))
        for doc in docs:
            if doc is None:
                return
            yield seq, doc
            seq += 1


# ------------------------------------------------------------------ verification


@dataclass(frozen=True)
class Break:
    """Where and how a chain is broken."""

    seq: int
    kind: str  # "edited", "reordered", "unchained", "removed"
    message: str


@dataclass(frozen=True)
class Report:
    """What ``verify`` found: the records walked, the head, and the first break if any."""

    count: int
    head: Head
    broken: Break | None

    @property
    def intact(self) -> bool:
        return self.broken is None

    def __str__(self) -> str:
        if self.broken is None:
            return f"chain intact: {self.count} records, head {self.head.hash}"
        return f"chain broken at seq {self.broken.seq}: {self.broken.message}"


def check(seq: int, doc: Mapping[str, Any], prev: str) -> Break | None:
    """The break at record ``seq`` (stored under ``_id`` = seq), given the hash of record seq - 1."""
    if doc.get("seq") != seq:
        return Break(seq, "reordered", f"the record stored as {seq} says it is {doc.get('seq')!r}: "
                                       "records were reordered or renumbered")
    if doc.get("hash") != record_hash(doc):
        return Break(seq, "edited", f"record {seq} was edited: its content does not match its hash")
    if doc.get("prev") != prev:
        return Break(seq, "unchained", f"record {seq} does not chain to record {seq - 1} "
                                       f"(its prev is not record {seq - 1}'s hash): one of them was rewritten")
    return None


async def _tail_break(store: ChainStore, last: Head) -> Break | None:
    """After the walk: records missing beyond ``last``, or a head hint that disagrees with it."""
    nxt = last.seq + 1
    hint = await store.head_hint()
    if hint is not None and hint.seq > last.seq:
        return Break(nxt, "removed", f"record {nxt} was removed (the chain ends at {last.seq}, "
                                     f"its recorded head is {hint.seq})")
    total = await store.count()
    if total > last.seq:
        return Break(nxt, "removed", f"record {nxt} was removed ({total} records are stored, "
                                     f"the chain ends at {last.seq})")
    if hint is not None and hint.seq == last.seq and hint.hash != last.hash:
        return Break(last.seq, "edited", f"record {last.seq} is not the head recorded after it was appended "
                                         "(its hash differs): it was rewritten")
    return None


async def verify(store: ChainStore, kept: Head | None = None) -> Report:
    """Walk the whole chain by ``_id``; report the first broken record or the intact head.

    ``kept`` is a head kept outside the database (an export's last line): the chain must still
    hold that record with that hash, which catches a tail removed together with the head hint,
    or a chain rewritten with every later hash recomputed.
    """
    head = EMPTY
    async for seq, doc in walk(store):
        broken = check(seq, doc, head.hash)
        if broken is None and kept is not None and seq == kept.seq and doc["hash"] != kept.hash:
            broken = Break(seq, "edited", f"record {seq} is not the one the kept head names "
                                          "(its hash differs): the chain was rewritten since")
        if broken is not None:
            return Report(seq - 1, head, broken)
        head = Head(seq, str(doc["hash"]))
    if kept is not None and head.seq < kept.seq:
        return Report(head.seq, head, Break(head.seq + 1, "removed", f"record {head.seq + 1} was removed "
                                            f"(the chain ends at {head.seq}, the kept head is at {kept.seq})"))
    return Report(head.seq, head, await _tail_break(store, head))


def kept_head(path: str) -> Head:
    """The chain head an export recorded: its last line, ``{"head": <hash>, "seq": <n>}``."""
    with open(path, encoding="utf-8") as fh:
        lines = [line for line in fh.read().splitlines() if line.strip()]
    last = json.loads(lines[-1]) if lines else {}
    if not isinstance(last, dict) or not isinstance(last.get("seq"), int) or not isinstance(last.get("head"), str):
        raise ValueError(f"{path}: its last line is not an exported chain head")
    return Head(last["seq"], last["head"])


def _in_period(doc: Mapping[str, Any], since: datetime, until: datetime) -> bool:
    at = doc.get("at")
    if not isinstance(at, datetime):
        return False
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return since <= at < until


async def export(store: ChainStore, *, since: datetime, until: datetime, out: str) -> Report:
    """Write the records with ``since <= at < until`` as JSON lines to ``out``, then the chain head.

    The whole chain is verified on the way; when it is broken nothing is written.
    """
    tmp = f"{out}.partial"
    await asyncio.to_thread(_write_lines, tmp, [], "w")
    head, lines, broken = EMPTY, [], None
    async for seq, doc in walk(store):
        broken = check(seq, doc, head.hash)
        if broken is not None:
            break
        head = Head(seq, str(doc["hash"]))
        if _in_period(doc, since, until):
            lines.append(json.dumps(exported(doc), ensure_ascii=False, sort_keys=True))
            if len(lines) >= 1000:
                await asyncio.to_thread(_write_lines, tmp, lines, "a")
                lines = []
    else:
        broken = await _tail_break(store, head)
    if broken is not None:
        await asyncio.to_thread(os.unlink, tmp)
        return Report(head.seq, head, broken)
    lines.append(json.dumps({"head": head.hash, "seq": head.seq}))
    await asyncio.to_thread(_write_lines, tmp, lines, "a")
    await asyncio.to_thread(os.replace, tmp, out)
    return Report(head.seq, head, None)


def _write_lines(path: str, lines: list[str], mode: str) -> None:
    with open(path, mode, encoding="utf-8") as fh:
        fh.writelines(line + "\n" for line in lines)


# ------------------------------------------------------------------ one chain per database, per process

_CHAINS: dict[tuple[int, str], AuditChain] = {}


def chain_for(database: Any) -> AuditChain:
    """The process's ``AuditChain`` on ``database`` (one per client and database name)."""
    key = (id(getattr(database, "client", database)), str(getattr(database, "name", "")))
    chain = _CHAINS.get(key)
    if chain is None:  # (the cache holds the client, so its id is not reused while cached)
        if len(_CHAINS) > 64:
            _CHAINS.clear()
        chain = _CHAINS[key] = AuditChain(MongoChainStore(database))
    return chain


def in_parts(items: Sequence[T], limit: int = MAX_DETAILS_BYTES - 200) -> list[list[T]]:
    """``items`` in as few parts as keep each record's details (their JSON) within the limit:
    a worker's batch (hundreds of case ids) goes on the chain as one record per part."""
    parts: list[list[T]] = [[]]
    size = 0
    for item in items:
        grows = len(json.dumps(item, ensure_ascii=False).encode("utf-8")) + 4
        if parts[-1] and size + grows > limit:
            parts.append([])
            size = 0
        parts[-1].append(item)
        size += grows
    return [p for p in parts if p]


async def append_quietly(database: Any, *, who: str, role: str, action: str, case_id: str | None,
                         details: Mapping[str, Any]) -> None:
    """Append a worker's change to its service's chain; a failure is logged, never raised
    (the change itself is already stored, and the log says what the chain is missing)."""
    try:
        await chain_for(database).append(who=who, role=role, action=action, case_id=case_id, details=details)
    except Exception:  # noqa: BLE001
        log.exception("could not append %s to the audit chain", action)


async def append_pairs(database: Any, *, who: str, action: str, pairs: Sequence[tuple[str, str]],
                       names: tuple[str, str]) -> None:
    """Put a worker's batch on the chain (role ``system``): ``pairs`` as two parallel lists
    named ``names`` plus ``count``, in as many records as the details limit needs (each then
    says ``part``, ``parts`` and ``batch_count``). Nothing is appended for no pairs."""
    parts = in_parts(list(pairs))
    for n, part in enumerate(parts, 1):
        details: dict[str, Any] = {"count": len(part), names[0]: [a for a, _ in part],
                                   names[1]: [b for _, b in part]}
        if len(parts) > 1:
            details.update(part=n, parts=len(parts), batch_count=len(pairs))
        await append_quietly(database, who=who, role="system", action=action, case_id=None, details=details)


# ------------------------------------------------------------------ command line


def _when(text: str) -> datetime:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


async def _run(args: argparse.Namespace) -> int:
    from shared.mongo import make_client
    from shared.settings import MongoSettings

    client = make_client(MongoSettings())
    try:
        store = MongoChainStore(client[args.db])
        if args.command == "verify":
            report = await verify(store, kept_head(args.head_from) if args.head_from else None)
        else:
            report = await export(store, since=args.since, until=args.until, out=args.out)
        sys.stdout.write(f"{report}\n")
        if report.intact and args.command == "export":
            sys.stdout.write(f"exported to {args.out} (head {report.head.hash}, seq {report.head.seq})\n")
        return 0 if report.intact else 1
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.audit", description="The tamper-evident audit chain of a service.")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="walk the chain and report the first broken record")
    v.add_argument("--db", required=True, help="the service's database, e.g. parley_negotiation")
    v.add_argument("--head-from", metavar="EXPORT", help="an earlier export: the chain must still hold its head")
    e = sub.add_parser("export", help="JSON lines of a period plus the chain head")
    e.add_argument("--db", required=True)
    e.add_argument("--from", dest="since", required=True, type=_when, help="ISO date or time (UTC if no zone)")
    e.add_argument("--to", dest="until", required=True, type=_when, help="ISO date or time, exclusive")
    e.add_argument("--out", required=True, help="the file to write")
    args = parser.parse_args(argv)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
