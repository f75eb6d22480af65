"""Intake's handlers: register complaints in batches, close a case. Plain async functions.

No faust, FastAPI or Kafka here: dependencies come in as keyword arguments (the repository,
the case-number allocator, the settings, the clock), so the wiring stays at the edge.

``register_batch`` registers a batch of channel complaints with a handful of round trips
per batch, not per complaint, and is idempotent on the channel complaint
(``<channel>:<id>``), converging after a crash at any point:

1. store the personal data originals with one ``insert_many`` (with the submission's hashes,
   ``rules.fingerprint``); a key refused as a duplicate was seen by an earlier attempt, and
   only those keys are read back: a registered one owes at most its outbox (returned,
   ``Written(..., None)``), the rest are recovered; one whose content differs from the first
   version's is a conflicting duplicate (recorded, then ``ConflictingDuplicate`` is raised
   once the rest of the batch is registered);
2. index first-time customers with one ``insert_many`` (their complaints were placed in
   memory as new cases); a customer refused as a duplicate is known, and only known
   customers' indexes and recent cases are read (by ``_id``);
3. place every complaint in memory, per customer in Kafka order, so two complaints of one
   customer in the same batch see each other (``rules.place_complaint``): join an open case,
   or open a new case (a repeat of a closed case is a new case linked to the old one). A new
   case's id is derived from the complaint, and a complaint already found in a case (an
   interrupted attempt) keeps that case;
4. commit each customer's placement before its effects, with a per-customer compare-and-set
   (a first-time customer's document insert; else a claim of the next ``version`` in
   ``customer_claims`` and an update by ``_id`` conditional on the version), naming the
   effects as ``pending``; a worker that loses reads again, and one that finds another
   worker's pending effects not yet visible waits for them (``rules.pending_blocks``), so N
   workers place one customer's complaints in turn. Then draw case numbers
   (``CaseNumbers``), insert the new cases and link complaints to open cases (conditional,
   once per case), before waiting on anything;
5. insert the complaint records together with ``complaint.registered`` and
   ``customer.notified`` (``shared.outbox.ledger_document``) and return them as ``Written``;
   the runtime publishes them after the batch, then acknowledges it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.intake import pii, rules
from services.intake.errors import RegistrationConflict
from services.intake.models import Registration
from services.intake.repository import (
    CaseNumbers,
    Commit,
    Doc,
    IntakeRepository,
    KeyedLocks,
    RegistrationStore,
)
from services.intake.settings import Settings
from shared import clock as shared_clock
from shared.contracts.common import Language, Priority, Product
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.contracts.intake import ComplaintRegistered, ComplaintSubmission, CustomerNotified
from shared.errors import InvalidMessage
from shared.logging import log_context
from shared.money import yuan_to_fen
from shared.outbox import Written, ledger_document, publish_written

log = logging.getLogger(__name__)

PRODUCER = "intake"
_NAMESPACE = uuid.UUID("5b0d8a34-1c55-4a0c-9f57-3a1d1e7c2f10")

SendFn = Callable[[str, bytes, bytes], Awaitable[object]]
Clock = Callable[[], datetime]

#: In-process per-customer locks (kept under this name for callers that pass ``locks``).
CustomerLocks = KeyedLocks

__all__ = [
    "CaseNumbers", "ConflictingDuplicate", "CustomerLocks", "acknowledgement", "case_id_for", "close_case",
    "complaint_id_for", "erase_expired_originals", "read_originals", "register_batch",
    "register_complaint", "utcnow",
]

#: How many of a customer's most recent cases placement looks at.
RECENT_CASES = 50
#: How much of each complaint's (masked) text a case keeps for the new-facts comparison.
FACTS_TEXT_CHARS = 1000


def utcnow() -> datetime:
    """The process-wide clock (shared.clock: the system clock unless PARLEY_CLOCK_* simulates one)."""
    return shared_clock.now()


def complaint_id_for(key: str) -> str:
    """Intake's id of a channel complaint: stable, so retries and replays agree on it."""
    return str(uuid.uuid5(_NAMESPACE, "complaint:" + key))


def case_id_for(key: str) -> str:
    """The id of a case opened by a complaint: stable, so a retry finds a half-made case."""
    return str(uuid.uuid5(_NAMESPACE, "case:" + key))


def _fen(amount: Decimal | None) -> int | None:
    return None if amount is None else yuan_to_fen(amount)


def _money(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _amount(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _facts_fields(submission: ComplaintSubmission, text_masked: str) -> Doc:
    return {
        "facts_text": text_masked[:FACTS_TEXT_CHARS],
        "amount_disputed": _amount(submission.amount_disputed),
        "attachment_refs": [a.ref for a in submission.attachments],
    }


def _summary(doc: Doc) -> rules.CaseSummary:
    return rules.CaseSummary(
        case_id=doc["_id"], case_number=doc["case_number"], status=doc["status"],
        product=Product(doc["product"]), matter_ref=doc.get("matter_ref"),
        last_received_at=doc["last_received_at"], closed_at=doc.get("closed_at"),
    )


def _registration(doc: Doc, *, duplicate: bool) -> Registration:
    return Registration(
        complaint_id=doc["complaint_id"], channel=doc["channel"],
        channel_complaint_id=doc["channel_complaint_id"], case_id=doc["case_id"],
        case_number=doc["case_number"], outcome=doc["role"], duplicate=duplicate,
        deadline_at=doc["deadline_at"], priority=doc["priority"],
        clock_restarted=doc.get("clock_restarted", False),
    )


def _thresholds(settings: Settings) -> rules.PriorityThresholds:
    return rules.PriorityThresholds(settings.high_amount, settings.elevated_amount, settings.low_amount)


# ------------------------------------------------------------------ placement in memory


@dataclass
class _Case:
    """A case as this batch sees it: loaded from the store, or opened by this batch."""

    doc: Doc
    new: bool  # opened by this batch (inserted whole), else updated by a link
    pushed: list[Doc] = field(default_factory=list)  # complaint entries this batch adds
    timeline: list[Doc] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    changed: Doc = field(default_factory=dict)  # fields to $set on a loaded case


@dataclass
class _Placed:
    """Where one complaint went, with the case's state as this complaint left it."""

    submission: ComplaintSubmission
    case: _Case
    role: rules.Role
    new_facts: bool | None
    new_facts_reasons: list[str]
    clock_restarted: bool
    snapshot: Doc  # deadline_at, priority, priority_reasons, linked_case_ids, repeat_of_number
    text_masked: str = ""
    language: Language = Language.ZH_CN


def _snapshot(doc: Doc) -> Doc:
    return {
        "deadline_at": doc["deadline_at"], "priority": doc["priority"],
        "deadline_tier": doc.get("deadline_tier"),
        "deadline_provisional": bool(doc.get("deadline_provisional", False)),
        "priority_reasons": list(doc.get("priority_reasons", [])),
        "linked_case_ids": list(doc.get("linked_case_ids", [])),
        "repeat_of_number": doc.get("repeat_of_number"),
    }


@dataclass
class _Customer:
    """One customer's cases as the batch places complaints among them."""

    cases: list[_Case]

    def holding(self, key: str) -> _Case | None:
        """The loaded case an interrupted earlier attempt already put ``key`` in."""
        return next((c for c in self.cases if not c.new and key in c.doc.get("complaint_keys", [])), None)

    def recent(self) -> list[rules.CaseSummary]:
        ordered = sorted(self.cases, key=lambda c: c.doc["last_received_at"], reverse=True)
        return [_summary(c.doc) for c in ordered[:RECENT_CASES]]


def _place(
    submission: ComplaintSubmission, customer: _Customer, *, settings: Settings, now: datetime
) -> _Placed:
    """Place one complaint among the customer's cases (in memory)."""
    key = submission.key()
    text_masked = pii.mask_text(submission.text, names=[submission.customer.name])
    language = submission.language or rules.detect_language(submission.text)
    held = customer.holding(key)
    if held is not None:
        entry = next(c for c in held.doc["complaints"] if c["key"] == key)
        return _Placed(
            submission, held, rules.Role(entry["role"]), entry.get("new_facts"),
            list(entry.get("new_facts_reasons", [])), entry.get("clock_restarted", False),
            _snapshot(held.doc), text_masked, language,
        )
    placement = rules.place_complaint(
        received_at=submission.received_at, product=submission.product,
        matter_ref=submission.matter_ref, about_case_number=submission.about_case_number,
        cases=customer.recent(),
        duplicate_window=timedelta(days=settings.duplicate_window_days),
        repeat_window=timedelta(days=settings.repeat_window_days),
    )
    if placement.role is rules.Role.LINKED:
        assert placement.case is not None
        target = next(c for c in customer.cases if c.doc["_id"] == placement.case.case_id)
        placed = _link(submission, target, settings=settings, now=now, text_masked=text_masked)
    else:
        case = _open_case(submission, placement, settings=settings, now=now,
                          text_masked=text_masked, language=language)
        customer.cases.append(case)
        placed = _Placed(submission, case, placement.role, None, [], False, _snapshot(case.doc))
    placed.text_masked, placed.language = text_masked, language
    return placed


def _deadline_fields(received_at: datetime, settings: Settings) -> Doc:
    """The case's deadline fields for a clock started at ``received_at`` (``shared.clock``)."""
    deadline = rules.decision_deadline(received_at, settings.decision_deadline_days)
    return {"deadline_at": deadline.due_at, "deadline_tier": deadline.tier_days,
            "deadline_provisional": deadline.provisional}


def _open_case(
    submission: ComplaintSubmission, placement: rules.Placement, *, settings: Settings,
    now: datetime, text_masked: str, language: Language,
) -> _Case:
    key = submission.key()
    is_repeat = placement.role is rules.Role.REPEAT
    priority, reasons = rules.assess_priority(
        rules.PriorityInputs(
            channel=submission.channel, product=submission.product, text=submission.text,
            amount_disputed=submission.amount_disputed,
            vulnerable_flag=submission.customer.vulnerable, is_repeat=is_repeat,
        ),
        _thresholds(settings),
    )
    entry = {
        "key": key, "complaint_id": complaint_id_for(key), "channel": submission.channel.value,
        "channel_complaint_id": submission.channel_complaint_id,
        "received_at": submission.received_at, "role": placement.role.value,
        "new_facts": None, "new_facts_reasons": [], "clock_restarted": False,
        **_facts_fields(submission, text_masked),
    }
    customer = submission.customer
    earlier = placement.case if is_repeat else None
    doc = {
        "_id": case_id_for(key),
        "case_number": "",  # drawn after placement (CaseNumbers)
        "status": "open",
        "customer_id": customer.customer_id,
        "customer_name_masked": pii.mask_name(customer.name),
        "customer_phone_masked": pii.mask_phone(customer.phone),
        "customer_id_number_masked": pii.mask_id_number(customer.id_number),
        "channel": submission.channel.value, "channels": [submission.channel.value],
        "product": submission.product.value, "language": language.value,
        "matter_ref": submission.matter_ref,
        "received_at": submission.received_at, "last_received_at": submission.received_at,
        "registered_at": now, "updated_at": now,
        "clock_started_at": submission.received_at,
        **_deadline_fields(submission.received_at, settings),
        "priority": priority.value, "priority_reasons": reasons,
        "amount_disputed": _amount(submission.amount_disputed),
        "amount_disputed_fen": _fen(submission.amount_disputed),
        "summary": text_masked[:200],
        "is_repeat": is_repeat, "linked_case_ids": [earlier.case_id] if earlier else [],
        "repeat_of_number": earlier.case_number if earlier else None,
        "complaint_keys": [key], "complaints": [entry],
        "timeline": [{"at": now, "what": "registered", "role": placement.role.value,
                      "complaint_id": entry["complaint_id"], "reason": placement.reason}],
    }
    return _Case(doc, new=True)


def _link(
    submission: ComplaintSubmission, case: _Case, *, settings: Settings, now: datetime,
    text_masked: str,
) -> _Placed:
    """Join a complaint to an open case (in memory); new facts restart the clock (CBIRC)."""
    key = submission.key()
    doc = case.doc
    earlier = [
        rules.Facts(c.get("facts_text", ""), _money(c.get("amount_disputed")),
                    frozenset(c.get("attachment_refs", [])))
        for c in doc["complaints"]
    ]
    new, reasons = rules.new_facts(
        rules.Facts(text_masked, submission.amount_disputed,
                    frozenset(a.ref for a in submission.attachments)),
        earlier, threshold=settings.new_facts_similarity, declared=submission.new_facts,
    )
    priority, priority_reasons = rules.assess_priority(
        rules.PriorityInputs(
            channel=submission.channel, product=submission.product, text=submission.text,
            amount_disputed=submission.amount_disputed,
            vulnerable_flag=submission.customer.vulnerable,
        ),
        _thresholds(settings),
    )
    entry = {
        "key": key, "complaint_id": complaint_id_for(key), "channel": submission.channel.value,
        "channel_complaint_id": submission.channel_complaint_id,
        "received_at": submission.received_at, "role": rules.Role.LINKED.value,
        "new_facts": new, "new_facts_reasons": reasons, "clock_restarted": new,
        **_facts_fields(submission, text_masked),
    }
    changed: Doc = {
        "last_received_at": max(doc["last_received_at"], submission.received_at),
        "updated_at": now,
        "priority": rules.higher_priority(Priority(doc["priority"]), priority).value,
        "priority_reasons": sorted(set(doc.get("priority_reasons", [])) | set(priority_reasons)),
    }
    if new:
        changed["clock_started_at"] = submission.received_at
        changed.update(_deadline_fields(submission.received_at, settings))
    timeline = {
        "at": now, "what": "clock_restarted" if new else "merged",
        "complaint_id": entry["complaint_id"], "new_facts_reasons": reasons,
    }
    doc.update(changed)
    doc["complaints"].append(entry)
    doc["complaint_keys"].append(key)
    doc["timeline"].append(timeline)
    if submission.channel.value not in doc["channels"]:
        doc["channels"].append(submission.channel.value)
    if not case.new:
        case.pushed.append(entry)
        case.timeline.append(timeline)
        case.keys.append(key)
        case.channels.append(submission.channel.value)
        case.changed.update(changed)
    return _Placed(submission, case, rules.Role.LINKED, new, reasons, new, _snapshot(doc))


# ------------------------------------------------------------------ the batch


class ConflictingDuplicate(InvalidMessage):
    """Complaint ids seen before with different content (``rules.CONFLICTING_DUPLICATE``).

    Raised by ``register_batch`` after it registered everything else in the batch. ``reason``
    and ``errors`` name the complaint(s) and the fields that differ, never their values.
    ``invalid`` maps positions in the batch to the error of each such record and ``result``
    holds what the batch wrote, so a runtime that dead-letters single records of a batch can
    publish the rest at once; today's ``consume_batch`` splits the batch instead (the records
    registered here are then found registered and only their events are published).
    """

    def __init__(self, reason: str, *, errors: list[dict[str, str]],
                 invalid: dict[int, InvalidMessage], result: list[Written]) -> None:
        super().__init__(reason, errors=errors)
        self.invalid = invalid
        self.result = result


@dataclass
class _Conflict:
    submission: ComplaintSubmission
    fingerprint: rules.Fingerprint
    registered_hash: str | None
    fields: list[str]

    def error(self) -> InvalidMessage:
        return InvalidMessage(
            rules.conflict_reason(self.submission.key(), self.fields),
            errors=[{"field": f, "problem": "differs from the complaint registered under this id"}
                    for f in self.fields],
        )


async def register_batch(
    submissions: list[ComplaintSubmission],
    *,
    repo: RegistrationStore,
    settings: Settings,
    numbers: CaseNumbers,
    clock: Clock = utcnow,
    locks: KeyedLocks | None = None,
) -> list[Written]:
    """Register a batch of channel complaints (Kafka order) exactly once; return what to publish.

    Returns a ``Written`` per complaint record written (with its outbox), and
    ``Written(..., None)`` for an already registered complaint whose outbox is still
    pending. Publishing is the caller's (``shared.outbox.publish_written``). Raises when
    the batch cannot be registered (the runtime then retries it, or splits it), and
    ``ConflictingDuplicate`` (an ``InvalidMessage``) when a complaint id came again with
    different content, after registering the rest.
    """
    fingerprints = {id(s): rules.fingerprint(s.model_dump()) for s in submissions}
    unique: dict[str, ComplaintSubmission] = {}
    conflicts: list[_Conflict] = []
    for submission in submissions:
        first = unique.setdefault(submission.key(), submission)
        mine, theirs = fingerprints[id(submission)], fingerprints[id(first)]
        if first is not submission and mine.content_hash != theirs.content_hash:
            # the same id twice in one batch with different content: the first one counts
            conflicts.append(_Conflict(submission, mine, theirs.content_hash,
                                       rules.differing_fields(theirs.field_hashes, mine.field_hashes)))
    written: list[Written] = []
    if unique:
        holder = locks if locks is not None else repo.customer_locks
        async with holder.hold(s.customer.customer_id for s in unique.values()):
            written = await _register(
                list(unique.values()), {k: fingerprints[id(s)] for k, s in unique.items()},
                conflicts, repo=repo, settings=settings, numbers=numbers, clock=clock,
            )
    if not conflicts:
        return written
    now = clock().astimezone(UTC)
    await repo.record_conflicts([{
        "_id": f"{c.submission.key()}#{c.fingerprint.content_hash}", "key": c.submission.key(),
        "complaint_id": complaint_id_for(c.submission.key()), "channel": c.submission.channel.value,
        "channel_complaint_id": c.submission.channel_complaint_id,
        "customer_id": c.submission.customer.customer_id, "fields": c.fields,
        "registered_hash": c.registered_hash, "content_hash": c.fingerprint.content_hash,
        "seen_at": now,
    } for c in conflicts])
    invalid = {i: c.error() for c in conflicts for i, s in enumerate(submissions) if s is c.submission}
    for c in conflicts:
        log.warning("%s", rules.conflict_reason(c.submission.key(), c.fields))
    errors = [e for c in conflicts for e in c.error().errors]
    raise ConflictingDuplicate("; ".join(c.error().reason for c in conflicts)[:4000],
                               errors=errors, invalid=invalid, result=written)


@dataclass
class _Round:
    """One customer placed in a round: where its document stood, and where the batch put it."""

    index: Doc
    customer: _Customer
    placed: list[_Placed]


def _commit(cid: str, r: _Round, at: datetime) -> Commit:
    """What a customer's document gains from a placement: new cases, links, and them as pending."""
    new = [c for c in r.customer.cases if c.new]
    links = [{"key": p.submission.key(), "case_id": p.case.doc["_id"]}
             for p in r.placed if p.role is rules.Role.LINKED and not p.case.new]
    pending = ([{"kind": "new", "key": c.doc["complaints"][0]["key"], "case_id": c.doc["_id"]} for c in new]
               + [{"kind": "link", **link} for link in links])
    legacy = bool(r.index) and "version" not in r.index
    return Commit(version=int(r.index.get("version", 0)), case_ids=[c.doc["_id"] for c in new],
                  placements=links, pending=pending, at=at, exists=bool(r.index), legacy=legacy)


async def _register(
    submissions: list[ComplaintSubmission], fingerprints: dict[str, rules.Fingerprint],
    conflicts: list[_Conflict], *, repo: RegistrationStore, settings: Settings,
    numbers: CaseNumbers, clock: Clock,
) -> list[Written]:
    now = clock().astimezone(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # MongoDB keeps milliseconds
    written: list[Written] = []

    # 1. personal data first: the insert tells which keys an earlier attempt saw
    seen = await repo.store_personal_data_batch(
        {
            s.key(): {
                "customer_id": s.customer.customer_id, "name": s.customer.name,
                "phone": s.customer.phone, "id_number": s.customer.id_number,
                "text": s.text, "demand": s.demand,
            }
            for s in submissions
        },
        {k: {"content_hash": f.content_hash, "field_hashes": f.field_hashes}
         for k, f in fingerprints.items()},
    )
    if seen:
        registered = await repo.find_complaints(seen)
        # an exact redelivery is a no-op; the same id with other content is a conflict
        suspects = {k for k, doc in registered.items()
                    if not rules.same_content(doc.get("content_hash"), fingerprints[k])}
        stored = await repo.personal_fingerprints((seen - registered.keys()) | suspects)
        for s in submissions:
            key = s.key()
            if key not in seen:
                continue
            first = registered[key].get("content_hash") if key in registered else stored.get(key, {}).get("content_hash")
            if rules.same_content(first, fingerprints[key]):
                continue
            fields = rules.differing_fields(stored.get(key, {}).get("field_hashes") or {},
                                            fingerprints[key].field_hashes)
            conflicts.append(_Conflict(s, fingerprints[key], first, fields))
        refused = {c.submission.key() for c in conflicts}
        for key, found in registered.items():
            if key in refused:
                continue
            log.info("complaint %s already registered as %s", key, found["case_number"])
            if found.get("outbox_pending"):
                written.append(Written(repo.complaints, key, None))
            if found.get("ledger_batch"):  # its batch's events, if that batch never published them
                written.append(Written(repo.complaints, None, None, ledger=found["ledger_batch"]))
        submissions = [s for s in submissions if s.key() not in registered and s.key() not in refused]
    if not submissions:
        return written

    by_customer: dict[str, list[ComplaintSubmission]] = {}
    for s in submissions:
        by_customer.setdefault(s.customer.customer_id, []).append(s)
    recovering = {s.customer.customer_id for s in submissions if s.key() in seen}
    customers: dict[str, _Customer] = {}
    placed: dict[str, list[_Placed]] = {}
    committed: dict[str, _Round] = {}  # placed and committed, effects not applied yet

    # 2. first-time customers: place in memory as if they had no cases; the document's insert
    #    is their compare-and-set (refused: another writer knows the customer)
    fresh: dict[str, _Round] = {}
    for cid, items in by_customer.items():
        if cid in recovering:
            continue
        customer = _Customer([])
        fresh[cid] = _Round({}, customer, [_place(s, customer, settings=settings, now=now) for s in items])
    at = clock().astimezone(UTC)
    fresh_docs = []
    for cid, r in fresh.items():
        c = _commit(cid, r, at)
        fresh_docs.append({"_id": cid, "version": 1, "case_ids": c.case_ids, "placements": [],
                           "pending": c.pending, "pending_at": at})
    known = recovering | await repo.insert_customer_indexes(fresh_docs)
    committed.update((cid, r) for cid, r in fresh.items() if cid not in known)

    # 3. known customers, in rounds: read the document and recent cases; wait while another
    #    worker's placement for the customer is committed but not applied; place; claim the
    #    next version; commit. A lost claim or commit is read and placed again next round.
    #    Each round applies what it committed before it waits, so workers never wait on
    #    each other in a circle.
    stale = timedelta(seconds=settings.customer_claim_stale_s)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + settings.customer_wait_s
    delay = 0.02
    todo = set(known)
    while True:
        if todo:
            ready = await _read_and_place(todo, by_customer, repo=repo, settings=settings,
                                          now=now, clock=clock, stale=stale)
            at = clock().astimezone(UTC)
            won = await repo.claim_customers(
                {cid: int(r.index.get("version", 0)) for cid, r in ready.items() if r.index},
                stale_after=stale,
            )
            commits = {cid: _commit(cid, r, at) for cid, r in ready.items() if cid in won or not r.index}
            failed = await repo.commit_customers(commits) if commits else set()
            for cid in commits.keys() - failed:
                committed[cid] = ready[cid]
                todo.discard(cid)
            lost = (ready.keys() - commits.keys()) | failed
            if lost:
                log.info("%d customer(s) changed by another worker meanwhile; reading again", len(lost))
        # 4. apply what was committed: case numbers, new cases, links
        await _apply(committed, repo=repo, settings=settings, numbers=numbers, now=now)
        for cid, r in committed.items():
            customers[cid], placed[cid] = r.customer, r.placed
        committed = {}
        if not todo:
            break
        if loop.time() > give_up:
            raise RegistrationConflict(
                f"{len(todo)} customer(s) were being placed by another worker for over "
                f"{settings.customer_wait_s:g}s"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)

    # 5. the complaint records with the events they owe, in one insert
    records: list[Doc] = []
    for cid in by_customer:
        for p in placed[cid]:
            records.append(_record(p, settings=settings, now=now,
                                   content_hash=fingerprints[p.submission.key()].content_hash))
    existed = await repo.insert_complaints(records)
    for record in records:
        key = record["_id"]
        if key in existed:
            log.info("complaint %s was registered concurrently", key)
            continue
        if "ledger_batch" in record:
            written.append(Written(repo.complaints, key, record["outbox_ledger"], ledger=record["ledger_batch"]))
        else:  # registered outside a batch token: the document's own outbox
            written.append(Written(repo.complaints, key, record["outbox"]))
        with log_context(case_id=record["case_id"], correlation_id=record["complaint_id"]):
            log.info("registered %s as %s (%s, priority %s)",
                     key, record["case_number"], record["role"], record["priority"])
    return written


async def _read_and_place(
    todo: set[str], by_customer: dict[str, list[ComplaintSubmission]], *, repo: RegistrationStore,
    settings: Settings, now: datetime, clock: Clock, stale: timedelta,
) -> dict[str, _Round]:
    """Read known customers' documents and recent cases; place those nobody else is placing."""
    indexes = await repo.customer_indexes(todo)
    wanted: dict[str, list[str]] = {}
    for cid in todo:
        index, keys = indexes[cid], [s.key() for s in by_customer[cid]]
        ids = list(index.get("case_ids", []))[-RECENT_CASES:]
        ids += [p["case_id"] for p in index.get("placements", []) if p.get("key") in keys]
        ids += [p["case_id"] for p in index.get("pending", [])]
        ids += [case_id_for(k) for k in keys]
        wanted[cid] = list(dict.fromkeys(ids))
    loaded = await repo.cases_by_ids(i for ids in wanted.values() for i in ids)
    current = clock().astimezone(UTC)
    ready: dict[str, _Round] = {}
    for cid in sorted(todo):
        index, mine = indexes[cid], {s.key() for s in by_customer[cid]}
        pending_at = index.get("pending_at")
        age = current - pending_at if isinstance(pending_at, datetime) else stale * 2
        if any(rules.pending_blocks(e, loaded.get(e["case_id"]), ours=e.get("key") in mine,
                                    age=age, stale_after=stale)
               for e in index.get("pending", [])):
            log.info("customer %s is being placed by another worker; waiting", cid)
            continue
        customer = _Customer([_Case(loaded[i], new=False) for i in wanted[cid] if i in loaded])
        ready[cid] = _Round(index, customer,
                            [_place(s, customer, settings=settings, now=now) for s in by_customer[cid]])
    return ready


async def _apply(
    committed: dict[str, _Round], *, repo: RegistrationStore, settings: Settings,
    numbers: CaseNumbers, now: datetime,
) -> None:
    """Draw case numbers, insert the new cases and link complaints to open cases."""
    new_cases = [c for r in committed.values() for c in r.customer.cases if c.new]
    if new_cases:
        drawn = await numbers.take(settings.case_number_prefix,
                                   rules.case_number_day(now, settings.zone), len(new_cases))
        for case, number in zip(new_cases, drawn, strict=True):
            case.doc["case_number"] = number
    links: list[tuple[str, list[str], Doc]] = [
        (c.doc["_id"], c.keys, {
            "$push": {"complaints": {"$each": c.pushed}, "timeline": {"$each": c.timeline}},
            "$addToSet": {"complaint_keys": {"$each": c.keys}, "channels": {"$each": c.channels}},
            "$set": c.changed,
        })
        for r in committed.values() for c in r.customer.cases if not c.new and c.pushed
    ]
    refused = await repo.insert_cases([c.doc for c in new_cases]) if new_cases else set()
    unlinked = await repo.link_complaints(links) if links else []
    if refused or unlinked:
        # another writer got there first (a concurrent attempt, or a case closed meanwhile):
        # everything written so far is found again by the retry, which places afresh
        raise RegistrationConflict(
            f"{len(refused)} case(s) existed and {len(unlinked)} case(s) changed while registering"
        )


def _record(p: _Placed, *, settings: Settings, now: datetime, content_hash: str) -> Doc:
    """The complaint record of a placed complaint, with its two events in the outbox."""
    s, case = p.submission, p.case.doc
    key = s.key()
    language = p.language
    case_id, case_number = case["_id"], case["case_number"]
    deadline_at: datetime = p.snapshot["deadline_at"]
    priority = Priority(p.snapshot["priority"])
    correlation_id = complaint_id_for(key)
    registered = ComplaintRegistered(
        case_number=case_number, complaint_id=correlation_id,
        channel=s.channel, channel_complaint_id=s.channel_complaint_id,
        received_at=s.received_at, deadline_at=deadline_at, priority=priority,
        product=s.product, language=language, customer_id=s.customer.customer_id,
        customer_name_masked=pii.mask_name(s.customer.name),
        customer_phone_masked=pii.mask_phone(s.customer.phone),
        customer_id_number_masked=pii.mask_id_number(s.customer.id_number),
        text=p.text_masked, demand=pii.mask_text(s.demand, names=[s.customer.name]),
        amount_disputed=s.amount_disputed, amount_demanded=s.amount_demanded,
        linked_case_ids=p.snapshot["linked_case_ids"],
        is_repeat=p.role is rules.Role.REPEAT, role=p.role.value,
        clock_restarted=p.clock_restarted, new_facts=p.new_facts,
        new_facts_reasons=p.new_facts_reasons,
        priority_reasons=p.snapshot["priority_reasons"],
        attachment_count=len(s.attachments), matter_ref=s.matter_ref, registered_at=now,
        deadline_tier=p.snapshot["deadline_tier"], deadline_provisional=p.snapshot["deadline_provisional"],
    )
    registered_event = Envelope.wrap(
        registered, case_id=case_id, producer=PRODUCER, correlation_id=correlation_id, occurred_at=now
    )
    notified_event = Envelope.wrap(
        acknowledgement(
            s, case_number=case_number, deadline_at=deadline_at, role=p.role,
            clock_restarted=p.clock_restarted, language=language, settings=settings,
            earlier_case_number=p.snapshot["repeat_of_number"],
        ),
        case_id=case_id, producer=PRODUCER, cause=registered_event, occurred_at=now,
    )
    return {
        "_id": key, "complaint_id": correlation_id, "channel": s.channel.value,
        "channel_complaint_id": s.channel_complaint_id, "case_id": case_id,
        "case_number": case_number, "role": p.role.value, "received_at": s.received_at,
        "registered_at": now, "customer_id": s.customer.customer_id,
        "product": s.product.value, "language": language.value, "matter_ref": s.matter_ref,
        "amount_disputed": _amount(s.amount_disputed), "amount_disputed_fen": _fen(s.amount_disputed),
        "attachment_refs": [a.ref for a in s.attachments],
        "new_facts": p.new_facts, "clock_restarted": p.clock_restarted,
        "deadline_at": deadline_at, "priority": priority.value, "content_hash": content_hash,
        **ledger_document([registered_event, notified_event]),
    }


# ------------------------------------------------------------------ one complaint


def default_numbers(repo: IntakeRepository) -> CaseNumbers:
    """The allocator of this repository's process (made on first use)."""
    if repo.case_numbers is None:
        repo.case_numbers = CaseNumbers(repo)
    return repo.case_numbers


async def register_complaint(
    submission: ComplaintSubmission,
    *,
    repo: IntakeRepository,
    send: SendFn,
    settings: Settings,
    clock: Clock = utcnow,
    locks: KeyedLocks | None = None,
    numbers: CaseNumbers | None = None,
) -> Registration:
    """Register one channel complaint exactly once and publish what it owes.

    A thin wrapper over ``register_batch([submission])`` and ``publish_written``.
    """
    key = submission.key()
    with log_context(correlation_id=complaint_id_for(key)):
        existing = await repo.find_complaint(key)
        if existing is not None:
            if existing.get("outbox_pending"):
                await repo.relay(key, send)
            if existing.get("ledger_batch"):
                await publish_written([Written(repo.complaints, None, None, ledger=existing["ledger_batch"])], send)
            log.info("complaint %s already registered as %s", key, existing["case_number"])
            return _registration(existing, duplicate=True)
        written = await register_batch(
            [submission], repo=repo, settings=settings,
            numbers=numbers or default_numbers(repo), clock=clock, locks=locks,
        )
        await publish_written(written, send)
        record = await repo.find_complaint(key)
        if record is None:  # pragma: no cover - register_batch raises instead
            raise RegistrationConflict(f"complaint {key} was not registered")
        fresh = any(w.doc_id == key and w.pending for w in written)
        return _registration(record, duplicate=not fresh)


def acknowledgement(
    submission: ComplaintSubmission,
    *,
    case_number: str,
    deadline_at: datetime,
    role: rules.Role,
    clock_restarted: bool,
    language: Language,
    settings: Settings,
    earlier_case_number: str | None = None,
) -> CustomerNotified:
    """Compose the acknowledgement (受理回执): case number, deadline, contact point.

    Chinese always; an English complaint gets the English text first and the Chinese after.
    The deadline is named as its Beijing day and the end of that day (24:00 Beijing time,
    ``shared.clock``), whatever zone the received date is shown in.
    """
    zone, days = settings.zone, settings.decision_deadline_days
    received_zh = rules.local_date_text(submission.received_at, zone, Language.ZH_CN)
    deadline_zh = rules.deadline_date_text(deadline_at, Language.ZH_CN)
    if role is rules.Role.LINKED:
        zh_head = (
            f"您于{received_zh}反映的问题与您此前就同一事项的投诉合并处理，案件编号 {case_number}。"
            + ("因您提供了新的情况，处理时限自本次投诉之日起重新计算。" if clock_restarted else "")
        )
    elif role is rules.Role.REPEAT:
        zh_head = (
            f"您于{received_zh}提交的投诉已受理，案件编号 {case_number}。"
            f"我们注意到您此前就同一事项的投诉（案件 {earlier_case_number}）已办结，本次作为重复投诉重新立案并关联原案件。"
        )
    else:
        zh_head = f"您于{received_zh}提交的投诉已受理，案件编号 {case_number}。"
    zh = (
        f"尊敬的客户：{zh_head}我们将在{deadline_zh}（北京时间）当日24时前向您反馈处理意见"
        f"（受理之日不计入，{days}日期满日为休息日的顺延至其后第一个工作日）。"
        f"如需补充材料或查询进度，请联系{settings.contact_point_zh}，并提供案件编号。"
    )
    subject = f"投诉受理回执 {case_number}"
    body = zh
    if language is Language.EN:
        received_en = rules.local_date_text(submission.received_at, zone, Language.EN)
        deadline_en = rules.deadline_date_text(deadline_at, Language.EN)
        if role is rules.Role.LINKED:
            head = (
                f"your complaint of {received_en} has been joined to your earlier complaint about "
                f"the same matter, case number {case_number}."
                + (" Because it brings new facts, the time limit starts again from this complaint."
                   if clock_restarted else "")
            )
        elif role is rules.Role.REPEAT:
            head = (
                f"your complaint of {received_en} has been registered as case {case_number}. "
                f"Your earlier complaint about the same matter (case {earlier_case_number}) was "
                "closed; this one is handled as a repeat complaint linked to it."
            )
        else:
            head = f"your complaint of {received_en} has been registered as case {case_number}."
        en = (
            f"Dear customer, {head} We will give you our decision by the end of {deadline_en} "
            f"(24:00 Beijing time; {days} days from the day after receipt, moved to the next working "
            f"day when the last day is a rest day). To add material or ask about progress, contact our "
            f"{settings.contact_point_en} and quote the case number."
        )
        subject = f"Complaint acknowledgement {case_number} / {subject}"
        body = f"{en}\n\n{zh}"
    return CustomerNotified(
        kind="acknowledgement", language=language, channel=submission.channel,
        customer_id=submission.customer.customer_id,
        contact_masked=pii.mask_phone(submission.customer.phone),
        subject=subject, body=body, case_number=case_number, deadline_at=deadline_at,
        contact_point=settings.contact_point_en if language is Language.EN else settings.contact_point_zh,
    )


async def close_case(event: Envelope[CaseClosed], *, repo: IntakeRepository) -> bool:
    """Mark a case closed when follow-up closes it; False when it was closed already.

    The closed case is also put on the retention list (idempotent, also on a redelivery, so a
    crash between the two writes converges): its originals are erased once the retention
    period after closing has passed (``erase_expired_originals``).
    """
    closed = await repo.close_case(
        event.case_id, closed_at=event.occurred_at.astimezone(UTC),
        outcome=event.payload.outcome, event_id=str(event.event_id),
    )
    await repo.schedule_erasure(event.case_id)
    if closed:
        log.info("case %s closed (%s)", event.payload.case_number, event.payload.outcome)
    return closed


# ------------------------------------------------------------------ originals: reads and retention


async def read_originals(key: str, *, repo: IntakeRepository, reader: str, purpose: str) -> Doc | None:
    """Return a complaint's personal data originals for ``reader``, who needs them for ``purpose``.

    Every read is recorded (``original_reads``: who, why, when, which complaint) before the
    originals are handed out; None when the complaint has none (unknown, or erased).
    """
    return await repo.read_personal_data(key, reader=reader, purpose=purpose)


async def erase_expired_originals(
    *, repo: IntakeRepository, settings: Settings, clock: Clock = utcnow, batch: int = 100
) -> int:
    """Erase the originals of cases closed more than ``settings.retention_days`` ago.

    The retention list (``retention``, one entry per closed case, by ``closed_at``) is read
    in batches; each case's complaints (``complaint_keys``, final once the case is closed: a
    complaint links only to an open case) lose their originals by ``_id``, the case records
    ``originals_erased_at`` and keeps its masked fields. Returns how many cases were done.
    A periodic sweep, not a hot path; safe to interrupt and run again.
    """
    now = clock().astimezone(UTC)
    cutoff = now - timedelta(days=settings.retention_days)
    done = 0
    while True:
        due = await repo.erasures_due(cutoff, limit=batch)
        if not due:
            return done
        for entry in due:
            case = await repo.find_case(entry["_id"])
            keys = list(case.get("complaint_keys", [])) if case else []
            erased = await repo.erase_personal_data(keys, at=now)
            await repo.originals_erased(entry["_id"], at=now)
            with log_context(case_id=entry["_id"]):
                log.info("retention: originals of %d complaint(s) of case %s erased (closed %s)",
                         erased, case.get("case_number") if case else entry["_id"], entry["closed_at"])
            done += 1

