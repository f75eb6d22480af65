"""Intake's handlers: register a complaint, close a case. Plain async functions.

No faust, FastAPI or Kafka here: dependencies come in as keyword arguments (the repository,
``send`` for publishing, the settings, the clock), so the wiring stays at the edge.

Registration is idempotent on the channel complaint (``<channel>:<id>``) and converges
after a crash at any point:

1. the complaint record exists → publish whatever its outbox still owes; done;
2. the complaint was already added to a case by an earlier, interrupted attempt → reuse it;
3. otherwise place it (``rules.place_complaint``): join an open case, or open a new case
   (a repeat of a closed case is a new case linked to the old one). A new case's id is
   derived from the complaint, so a retry finds the case a crashed attempt inserted;
4. keep the personal data originals (``store_personal_data``), then insert the complaint
   record together with ``complaint.registered`` and ``customer.notified`` in one write;
5. relay the outbox (publish, then remove each event once the broker acknowledged it).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.intake import pii, rules
from services.intake.errors import RegistrationConflict
from services.intake.models import ComplaintSubmission, Registration
from services.intake.repository import Doc, IntakeRepository
from services.intake.settings import Settings
from shared.contracts.common import Language, Priority, Product
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.contracts.intake import ComplaintRegistered, CustomerNotified
from shared.logging import log_context

log = logging.getLogger(__name__)

PRODUCER = "intake"
_NAMESPACE = uuid.UUID("5b0d8a34-1c55-4a0c-9f57-3a1d1e7c2f10")

SendFn = Callable[[str, bytes, bytes], Awaitable[object]]
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def complaint_id_for(key: str) -> str:
    """Intake's id of a channel complaint: stable, so retries and replays agree on it."""
    return str(uuid.uuid5(_NAMESPACE, "complaint:" + key))


def case_id_for(key: str) -> str:
    """The id of a case opened by a complaint: stable, so a retry finds a half-made case."""
    return str(uuid.uuid5(_NAMESPACE, "case:" + key))


class CustomerLocks:
    """One asyncio lock per customer, so concurrent complaints of one customer are placed in turn."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    async def __call__(self, customer_id: str, work: Callable[[], Awaitable[Any]]) -> Any:
        lock = self._locks.setdefault(customer_id, asyncio.Lock())
        self._users[customer_id] = self._users.get(customer_id, 0) + 1
        try:
            async with lock:
                return await work()
        finally:
            self._users[customer_id] -= 1
            if not self._users[customer_id]:
                del self._users[customer_id], self._locks[customer_id]


def _fen(amount: Decimal | None) -> int | None:
    return None if amount is None else int(amount * 100)


def _money(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


#: How much of each complaint's (masked) text a case keeps for the new-facts comparison.
FACTS_TEXT_CHARS = 1000


def _facts_fields(submission: ComplaintSubmission, text_masked: str) -> Doc:
    return {
        "facts_text": text_masked[:FACTS_TEXT_CHARS],
        "amount_disputed": None if submission.amount_disputed is None else str(submission.amount_disputed),
        "attachment_refs": [a.ref for a in submission.attachments],
    }


async def _case_holding(repo: IntakeRepository, index: Doc, key: str) -> Doc | None:
    """The case an interrupted earlier attempt already put this complaint in, if any."""
    candidates = [p["case_id"] for p in index.get("placements", []) if p.get("key") == key]
    if case_id_for(key) in index.get("case_ids", []):
        candidates.append(case_id_for(key))
    for case_id in candidates:
        case = await repo.find_case(case_id)
        if case is not None and key in case.get("complaint_keys", []):
            return case
    return None


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


async def register_complaint(
    submission: ComplaintSubmission,
    *,
    repo: IntakeRepository,
    send: SendFn,
    settings: Settings,
    clock: Clock = utcnow,
    locks: CustomerLocks | None = None,
) -> Registration:
    """Register one channel complaint exactly once and publish what it owes."""
    key = submission.key()
    with log_context(correlation_id=complaint_id_for(key)):
        existing = await repo.find_complaint(key)
        if existing is not None:
            if existing.get("outbox_pending"):
                await repo.relay(key, send)
            log.info("complaint %s already registered as %s", key, existing["case_number"])
            return _registration(existing, duplicate=True)

        async def place_and_record() -> tuple[Registration, Doc]:
            return await _place_and_record(submission, repo=repo, settings=settings, clock=clock)

        if locks is not None:
            registration, written = await locks(submission.customer.customer_id, place_and_record)
        else:
            registration, written = await place_and_record()
        if written:
            await repo.publish_outbox(key, written, send)
        else:  # someone else wrote it: publish whatever it still owes
            await repo.relay(key, send)
        return registration


async def _place_and_record(
    submission: ComplaintSubmission, *, repo: IntakeRepository, settings: Settings, clock: Clock
) -> tuple[Registration, Doc]:
    key = submission.key()
    now = clock().astimezone(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # MongoDB keeps milliseconds
    language = submission.language or rules.detect_language(submission.text)
    text_masked = pii.mask_text(submission.text)
    customer_id = submission.customer.customer_id
    index = await repo.customer_index(customer_id)
    case = await _case_holding(repo, index, key)
    if case is not None:  # an interrupted attempt already put the complaint in this case
        role = rules.Role(next(c["role"] for c in case["complaints"] if c["key"] == key))
        entry = next(c for c in case["complaints"] if c["key"] == key)
        new_facts, facts_reasons = entry.get("new_facts"), entry.get("new_facts_reasons", [])
        clock_restarted = entry.get("clock_restarted", False)
    else:
        placement = rules.place_complaint(
            received_at=submission.received_at, product=submission.product,
            matter_ref=submission.matter_ref, about_case_number=submission.about_case_number,
            cases=[_summary(d) for d in await repo.cases_by_id(index.get("case_ids", [])[-50:])],
            duplicate_window=timedelta(days=settings.duplicate_window_days),
            repeat_window=timedelta(days=settings.repeat_window_days),
        )
        role = placement.role
        new_facts, facts_reasons, clock_restarted = None, [], False
        if role is rules.Role.LINKED:
            assert placement.case is not None
            case, new_facts, facts_reasons, clock_restarted = await _link(
                submission, placement.case.case_id, repo=repo, settings=settings, now=now,
                text_masked=text_masked,
            )
        else:
            case = await _open_case(
                submission, placement, repo=repo, settings=settings, now=now,
                language=language, text_masked=text_masked,
                indexed=case_id_for(key) in index.get("case_ids", []),
            )

    case_id, case_number = case["_id"], case["case_number"]
    deadline_at: datetime = case["deadline_at"]
    priority = Priority(case["priority"])
    registered = ComplaintRegistered(
        case_number=case_number, complaint_id=complaint_id_for(key),
        channel=submission.channel, channel_complaint_id=submission.channel_complaint_id,
        received_at=submission.received_at, deadline_at=deadline_at, priority=priority,
        product=submission.product, language=language,
        customer_id=submission.customer.customer_id,
        customer_name_masked=pii.mask_name(submission.customer.name),
        customer_phone_masked=pii.mask_phone(submission.customer.phone),
        customer_id_number_masked=pii.mask_id_number(submission.customer.id_number),
        text=text_masked, demand=pii.mask_text(submission.demand),
        amount_disputed=submission.amount_disputed, amount_demanded=submission.amount_demanded,
        linked_case_ids=list(case.get("linked_case_ids", [])),
        is_repeat=role is rules.Role.REPEAT, role=role.value,
        clock_restarted=clock_restarted, new_facts=new_facts, new_facts_reasons=facts_reasons,
        priority_reasons=list(case.get("priority_reasons", [])),
        attachment_count=len(submission.attachments), matter_ref=submission.matter_ref,
        registered_at=now,
    )
    correlation_id = complaint_id_for(key)
    registered_event = Envelope.wrap(
        registered, case_id=case_id, producer=PRODUCER, correlation_id=correlation_id, occurred_at=now
    )
    notified_event = Envelope.wrap(
        acknowledgement(
            submission, case_number=case_number, deadline_at=deadline_at, role=role,
            clock_restarted=clock_restarted, language=language, settings=settings,
            earlier_case_number=case.get("repeat_of_number"),
        ),
        case_id=case_id, producer=PRODUCER, cause=registered_event, occurred_at=now,
    )
    await repo.store_personal_data(key, {
        "customer_id": submission.customer.customer_id, "name": submission.customer.name,
        "phone": submission.customer.phone, "id_number": submission.customer.id_number,
        "text": submission.text, "demand": submission.demand,
    })
    record = {
        "_id": key, "complaint_id": correlation_id, "channel": submission.channel.value,
        "channel_complaint_id": submission.channel_complaint_id, "case_id": case_id,
        "case_number": case_number, "role": role.value, "received_at": submission.received_at,
        "registered_at": now, "customer_id": submission.customer.customer_id,
        "product": submission.product.value, "language": language.value,
        "matter_ref": submission.matter_ref,
        "amount_disputed": None if submission.amount_disputed is None else str(submission.amount_disputed),
        "amount_disputed_fen": _fen(submission.amount_disputed),
        "attachment_refs": [a.ref for a in submission.attachments],
        "new_facts": new_facts, "clock_restarted": clock_restarted,
        "deadline_at": deadline_at, "priority": priority.value,
    }
    written = await repo.insert_complaint(record, [registered_event, notified_event])
    if written is None:
        log.info("complaint %s was registered concurrently", key)
        existing = await repo.find_complaint(key)
        assert existing is not None
        return _registration(existing, duplicate=True), {}
    with log_context(case_id=case_id):
        log.info("registered %s as %s (%s, priority %s)", key, case_number, role.value, priority.value)
    return _registration(record, duplicate=False), written


async def _open_case(
    submission: ComplaintSubmission,
    placement: rules.Placement,
    *,
    repo: IntakeRepository,
    settings: Settings,
    now: datetime,
    language: Language,
    text_masked: str,
    indexed: bool,
) -> Doc:
    key = submission.key()
    case_id = case_id_for(key)
    is_repeat = placement.role is rules.Role.REPEAT
    priority, reasons = rules.assess_priority(
        rules.PriorityInputs(
            channel=submission.channel, product=submission.product, text=submission.text,
            amount_disputed=submission.amount_disputed,
            vulnerable_flag=submission.customer.vulnerable, is_repeat=is_repeat,
        ),
        rules.PriorityThresholds(settings.high_amount, settings.elevated_amount, settings.low_amount),
    )
    day = rules.case_number_day(now, settings.zone)
    deadline_at = rules.decision_deadline(submission.received_at, settings.decision_deadline_days)
    linked = [placement.case.case_id] if is_repeat and placement.case else []
    entry = {
        "key": key, "complaint_id": complaint_id_for(key), "channel": submission.channel.value,
        "channel_complaint_id": submission.channel_complaint_id,
        "received_at": submission.received_at, "role": placement.role.value,
        "new_facts": None, "new_facts_reasons": [], "clock_restarted": False,
        **_facts_fields(submission, text_masked),
    }
    customer = submission.customer
    doc = {
        "_id": case_id,
        "case_number": "",
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
        "clock_started_at": submission.received_at, "deadline_at": deadline_at,
        "priority": priority.value, "priority_reasons": reasons,
        "amount_disputed": None if submission.amount_disputed is None else str(submission.amount_disputed),
        "amount_disputed_fen": _fen(submission.amount_disputed),
        "summary": text_masked[:200],
        "is_repeat": is_repeat, "linked_case_ids": linked,
        "repeat_of_number": placement.case.case_number if is_repeat and placement.case else None,
        "complaint_keys": [key], "complaints": [entry],
        "timeline": [{"at": now, "what": "registered", "role": placement.role.value,
                      "complaint_id": entry["complaint_id"], "reason": placement.reason}],
    }
    if not indexed:
        await repo.add_customer_case(customer.customer_id, case_id)
    return await _insert_with_number(doc, repo=repo, prefix=settings.case_number_prefix, day=day)


async def _insert_with_number(doc: Doc, *, repo: IntakeRepository, prefix: str, day: str) -> Doc:
    """Insert a new case under the next free number of the day.

    The day counter (``$inc``) proposes a number; the unique index on ``case_number``
    decides. FerretDB v1 does not make ``$inc`` atomic under concurrent writers, so on a
    clash the counter is moved past the highest number in use and the insert is retried.
    A number lost this way leaves a gap; a number is never used twice.
    """
    counter_id = f"{prefix}-{day}"
    sequence = await repo.next_sequence(counter_id)
    for attempt in range(60):
        doc["case_number"] = rules.case_number(prefix, day, sequence)
        inserted = await repo.insert_case(doc)
        if inserted is not None:
            return inserted
        highest = await repo.highest_case_sequence(f"{prefix}-{day}-")
        sequence = max(sequence, highest) + 1
        await repo.raise_counter(counter_id, sequence)
        await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))  # noqa: S311 - jitter only
    raise RegistrationConflict("could not draw a free case number")


async def _link(
    submission: ComplaintSubmission,
    case_id: str,
    *,
    repo: IntakeRepository,
    settings: Settings,
    now: datetime,
    text_masked: str,
) -> tuple[Doc, bool, list[str], bool]:
    key = submission.key()
    case = await repo.find_case(case_id)
    if case is None:
        raise RegistrationConflict(f"case {case_id} vanished while linking")
    earlier = [
        rules.Facts(c.get("facts_text", ""), _money(c.get("amount_disputed")),
                    frozenset(c.get("attachment_refs", [])))
        for c in case["complaints"]
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
        rules.PriorityThresholds(settings.high_amount, settings.elevated_amount, settings.low_amount),
    )
    merged_priority = rules.higher_priority(Priority(case["priority"]), priority)
    entry = {
        "key": key, "complaint_id": complaint_id_for(key), "channel": submission.channel.value,
        "channel_complaint_id": submission.channel_complaint_id,
        "received_at": submission.received_at, "role": rules.Role.LINKED.value,
        "new_facts": new, "new_facts_reasons": reasons, "clock_restarted": new,
        **_facts_fields(submission, text_masked),
    }
    set_fields: Doc = {
        "last_received_at": max(case["last_received_at"], submission.received_at),
        "updated_at": now, "priority": merged_priority.value,
        "priority_reasons": sorted(set(case.get("priority_reasons", [])) | set(priority_reasons)),
    }
    if new:  # CBIRC: new facts restart the clock
        set_fields["clock_started_at"] = submission.received_at
        set_fields["deadline_at"] = rules.decision_deadline(
            submission.received_at, settings.decision_deadline_days
        )
    timeline = {
        "at": now, "what": "clock_restarted" if new else "merged",
        "complaint_id": entry["complaint_id"], "new_facts_reasons": reasons,
    }
    await repo.note_placement(submission.customer.customer_id, key, case_id)
    linked = await repo.link_complaint(
        case_id, key, push={"complaints": entry, "timeline": timeline},
        add={"channels": submission.channel.value}, set_fields=set_fields,
    )
    if not linked:  # closed meanwhile, or another attempt linked it: start over
        raise RegistrationConflict(f"case {case_id} changed while linking {key}")
    updated = await repo.find_case(case_id)
    assert updated is not None
    return updated, new, reasons, new


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
    """
    zone, days = settings.zone, settings.decision_deadline_days
    received_zh = rules.local_date_text(submission.received_at, zone, Language.ZH_CN)
    deadline_zh = rules.local_date_text(deadline_at, zone, Language.ZH_CN)
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
        f"尊敬的客户：{zh_head}我们将在{deadline_zh}前（{days}日内）向您反馈处理意见。"
        f"如需补充材料或查询进度，请联系{settings.contact_point_zh}，并提供案件编号。"
    )
    subject = f"投诉受理回执 {case_number}"
    body = zh
    if language is Language.EN:
        received_en = rules.local_date_text(submission.received_at, zone, Language.EN)
        deadline_en = rules.local_date_text(deadline_at, zone, Language.EN)
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
            f"Dear customer, {head} We will give you our decision by {deadline_en} "
            f"(within {days} days). To add material or ask about progress, contact our "
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
    """Mark a case closed when follow-up closes it; False when it was closed already."""
    closed = await repo.close_case(
        event.case_id, closed_at=event.occurred_at.astimezone(UTC),
        outcome=event.payload.outcome, event_id=str(event.event_id),
    )
    if closed:
        log.info("case %s closed (%s)", event.payload.case_number, event.payload.outcome)
    return closed

