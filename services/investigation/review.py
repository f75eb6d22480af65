"""Investigator review (issue 12): low-confidence findings wait in a queue; an investigator
reads the evidence, may change category, finding and remedy range with a reason, and the
change goes on as a revised ``investigation.completed``.

The queue is investigation's own case documents: ``assess`` flags a finding whose category
confidence is under ``PARLEY_INVESTIGATION_REVIEW_THRESHOLD`` (``Assessment.needs_review``),
and ``handlers.case_document`` gives the case ``review_status: "pending"`` (indexed). So the
batch path writes nothing extra: no second collection, no second write per case. The finding
is published at once, flagged ``review_pending``: the customer's clock does not wait for a
person (the deadline is the regulator's, not the reviewer's).

A review (``revise``, pure) takes the case document and the investigator's ``ReviewRequest``
and returns what to store and the revised event: revision + 1, the new category, finding and
remedy range, ``revised_by``, ``revised_at``, ``revision_reason`` (personal numbers masked)
and ``revised_fields``; the rest of the finding is repeated from the document
(``completed_of``). ``record_review`` reads the case by ``_id``, refuses a stale revision
(409), and writes the change and its event in one conditional update (the outbox); the API
publishes it. The same review posted twice (same base revision and content) changes nothing
and publishes nothing again (``is_replay``).

Later changes: new facts (a linked complaint) or a manager's extension re-assess the case
from the records; that assessment replaces the reviewed finding (the review stays on the
document as ``review``, and the case returns to the queue if the confidence is still low).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from services.investigation.handlers import PRODUCER, ROOT_TEXT, Finding
from shared.contracts.common import Category, Money, Product
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ComplaintRegistered
from shared.contracts.investigation import (
    ComputedFact,
    DeadlineExtension,
    EvidenceItem,
    InvestigationCompleted,
    RemedyRange,
)
from shared.errors import Conflict, NotFound
from shared.logging import redact
from shared.outbox import outbox_fields

log = logging.getLogger(__name__)

#: The role that reviews findings.
REVIEWER_ROLE = "investigator"
FINDING_ZH = {"substantiated": "投诉属实", "partly_substantiated": "投诉部分属实", "unsubstantiated": "投诉不属实"}
#: What ``revised_fields`` may name.
REVISABLE = ("category", "finding", "remedy_range")


class ReviewRequest(BaseModel):
    """An investigator's review of one case's finding (POST /reviews/{case_id})."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expected_revision: int = Field(
        ge=1, description="The revision the investigator read (GET /reviews/{case_id}); a case "
        "revised since is refused with 409.")
    category: Category = Field(description="The category after review (may be unchanged).")
    finding: Finding = Field(description="The finding after review (may be unchanged).")
    remedy_min: Money = Field(description="Lower bound of the remedy range after review (CNY).")
    remedy_max: Money = Field(description="Upper bound of the remedy range after review (CNY).")
    reason: str = Field(min_length=1, max_length=1000, description="Why: recorded, audited and told "
                        "to negotiation (ID, card and phone numbers are masked).")

    @field_validator("reason")
    @classmethod
    def _said(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("say why the finding is changed or confirmed")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("remedy_max")
    @classmethod
    def _range(cls, value: Decimal, info: Any) -> Decimal:
        low = info.data.get("remedy_min")
        if low is not None and value < low:
            raise ValueError(f"must be at least remedy_min ({low})")
        return value


# ------------------------------------------------------------------ rules (pure)


def completed_of(doc: dict[str, Any]) -> InvestigationCompleted:
    """The finding a case document holds, as the ``investigation.completed`` it published."""
    reg = Envelope[ComplaintRegistered].model_validate_json(doc["source_event"]).payload
    cause = doc["root_cause"]
    rzh, ren = ROOT_TEXT.get(cause, ("", ""))
    zh, en = list(doc["reasons_zh"]), list(doc["reasons_en"])
    extension = doc.get("deadline_extension")
    return InvestigationCompleted(
        case_number=doc["case_number"], category=Category(doc["category"]), finding=doc["finding"],
        reasons=[f"{z} / {e}" for z, e in zip(zh, en, strict=True)], complex_case=doc["complex_case"],
        investigation_id=f"INV-{doc['_id']}", revision=doc["revision"], complaint_ids=list(doc["complaint_ids"]),
        customer_id=reg.customer_id, language=reg.language, product=Product(doc["product"]),
        category_confidence=doc["confidence"], root_cause=cause, root_cause_zh=rzh, root_cause_en=ren,
        claims=list(doc["claims"]), evidence=[EvidenceItem.model_validate(e) for e in doc["evidence"]],
        facts=[ComputedFact.model_validate(f) for f in doc["facts"]], reasons_zh=zh, reasons_en=en,
        remedy_range=RemedyRange.model_validate(doc["remedy_range"]), amount_disputed=reg.amount_disputed,
        complexity_reason_zh="；".join(doc.get("complexity_zh") or []),
        complexity_reason_en="; ".join(doc.get("complexity_en") or []),
        deadline_at=doc["deadline_at"], paused_days=doc["paused_days"],
        to_request_from_customer=list(doc.get("requests") or []), hardship=bool(doc.get("hardship")),
        deadline_tier=doc.get("deadline_tier"), deadline_provisional=bool(doc.get("deadline_provisional")),
        deadline_extension=DeadlineExtension.model_validate(extension) if extension else None,
        review_pending=doc.get("review_status") == "pending",
    )


def is_replay(doc: dict[str, Any], req: ReviewRequest) -> bool:
    """Whether this review is the one already recorded as the case's latest revision."""
    last = doc.get("review") or {}
    return (last.get("base_revision") == req.expected_revision and last.get("revision") == doc["revision"]
            and last.get("request") == req.model_dump(mode="json"))


def revise(doc: dict[str, Any], req: ReviewRequest, *, by: str, role: str,
           now: datetime) -> tuple[dict[str, Any], Envelope[InvestigationCompleted]]:
    """The reviewed case's new fields and the revised ``investigation.completed`` (revision + 1).

    Refuses (``Conflict``) a case revised since the investigator read it, and one still
    paused for an external appraisal (its finding is not out yet; review it once it is)."""
    if doc["revision"] != req.expected_revision:
        raise Conflict(f"case {doc['_id']} is at revision {doc['revision']}, not {req.expected_revision}: "
                       "it changed since you read it; reload and review again", field="expected_revision")
    if doc["status"] != "completed":
        raise Conflict(f"case {doc['_id']} is {doc['status']} (waiting for an external appraisal); "
                       "review it once its finding is out")
    before = completed_of(doc)
    old_range = before.remedy_range or RemedyRange(min=Decimal("0"), max=Decimal("0"))
    changed = [name for name, was, now_ in (
        ("category", before.category, req.category), ("finding", before.finding, req.finding),
        ("remedy_range", (old_range.min, old_range.max), (req.remedy_min, req.remedy_max))) if was != now_]
    reason = redact(req.reason)
    line_zh = (f"调查员复核（第 {doc['revision'] + 1} 版）：类别 {req.category.value}，结论 {FINDING_ZH[req.finding]}，"
               f"补救范围 {req.remedy_min}–{req.remedy_max} 元。理由：{reason}")
    line_en = (f"Reviewed by an investigator (revision {doc['revision'] + 1}): category {req.category.value}, "
               f"finding {req.finding.replace('_', ' ')}, remedy CNY {req.remedy_min}–{req.remedy_max}. "
               f"Reason: {reason}")
    zh, en = [*before.reasons_zh, line_zh], [*before.reasons_en, line_en]
    remedy = old_range.model_copy(update={
        "min": req.remedy_min, "max": req.remedy_max,
        "text_zh": f"{old_range.text_zh}（复核后范围 {req.remedy_min}–{req.remedy_max} 元）",
        "text_en": f"{old_range.text_en} (range after review: CNY {req.remedy_min}–{req.remedy_max})",
    })
    revised = before.model_copy(update={
        "category": req.category, "finding": req.finding, "remedy_range": remedy, "revision": doc["revision"] + 1,
        "reasons_zh": zh, "reasons_en": en, "reasons": [f"{z} / {e}" for z, e in zip(zh, en, strict=True)],
        "review_pending": False, "revised_by": by, "revised_at": now, "revision_reason": reason,
        "revised_fields": changed,
    })
    source = Envelope[ComplaintRegistered].model_validate_json(doc["source_event"])
    event = Envelope.wrap(revised, case_id=doc["_id"], producer=PRODUCER, cause=source, occurred_at=now)
    fields = {
        "revision": revised.revision, "category": req.category.value, "finding": req.finding,
        "remedy_range": remedy.model_dump(mode="json"), "reasons_zh": zh, "reasons_en": en,
        "review_status": "reviewed", "updated_at": now,
        "review": {"revision": revised.revision, "base_revision": req.expected_revision, "by": by, "role": role,
                   "at": now, "reason": reason, "changed": changed, "event_id": str(event.event_id),
                   "request": req.model_dump(mode="json"),
                   "before": {"category": before.category.value, "finding": before.finding,
                              "remedy_min": format(old_range.min, "f"), "remedy_max": format(old_range.max, "f")}},
    }
    return fields, event


def audit_details(fields: dict[str, Any]) -> dict[str, Any]:
    """What the audit chain keeps of a review (the chain caps details at 4 KB: the reason is
    cut to 200 characters; the whole one is on the case document)."""
    review = fields["review"]
    return {"revision": review["revision"], "base_revision": review["base_revision"], "changed": review["changed"],
            "before": review["before"],
            "after": {"category": fields["category"], "finding": fields["finding"],
                      "remedy_min": review["request"]["remedy_min"], "remedy_max": review["request"]["remedy_max"]},
            "reason": review["reason"][:200], "event_id": review["event_id"]}


# ------------------------------------------------------------------ with storage

#: The queue's index: pending reviews by case id (the queue pages on ``_id``).
QUEUE_INDEX = "review_status"


async def ensure_indexes(cases: AsyncCollection[dict[str, Any]]) -> None:
    """The review queue's index on the case documents."""
    await cases.create_index([("review_status", ASCENDING), ("_id", ASCENDING)], name=QUEUE_INDEX)


async def queue(cases: AsyncCollection[dict[str, Any]], *, after: str | None, limit: int) -> list[dict[str, Any]]:
    """Cases waiting for review, by case id, ``limit`` after ``after`` (an equality on the
    indexed ``review_status``, then ``_id``)."""
    query: dict[str, Any] = {"review_status": "pending"}
    if after:
        query["_id"] = {"$gt": after}
    projection = {"case_number": 1, "status": 1, "revision": 1, "category": 1, "confidence": 1, "finding": 1,
                  "remedy_range": 1, "deadline_at": 1, "complex_case": 1,
                  "updated_at": 1}
    cursor = cases.find(query, projection).sort("_id", ASCENDING).limit(limit)
    return [d async for d in cursor]


async def get_case(cases: AsyncCollection[dict[str, Any]], case_id: str) -> dict[str, Any]:
    """A case document by ``_id``, or ``NotFound``."""
    doc = await cases.find_one({"_id": case_id})
    if doc is None:
        raise NotFound(f"case {case_id} has not been investigated")
    return doc


async def record_review(cases: AsyncCollection[dict[str, Any]], case_id: str, req: ReviewRequest, *, by: str,
                        role: str, now: datetime) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Record a review and owe its revised event (in the case's outbox, one conditional write).

    Return the case as stored and the fields written (None: this review was already recorded,
    nothing was written). ``Conflict`` when the case changed since the investigator read it."""
    doc = await get_case(cases, case_id)
    if is_replay(doc, req):
        return doc, None
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as the server keeps it
    fields, event = revise(doc, req, by=by, role=role, now=now)
    result = await cases.update_one({"_id": case_id, "revision": req.expected_revision, "status": "completed"},
                                    {"$set": {**fields, **outbox_fields([event])}})
    if result.matched_count != 1:
        doc = await get_case(cases, case_id)
        if is_replay(doc, req):  # the same review, recorded by a concurrent request
            return doc, None
        raise Conflict(f"case {case_id} changed while the review was recorded; reload and review again",
                       field="expected_revision")
    log.info("case %s: finding reviewed by %s (revision %d; changed %s)", case_id, by, fields["revision"],
             ",".join(fields["review"]["changed"]) or "nothing")
    return {**doc, **fields}, fields
