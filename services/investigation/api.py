"""Investigation's HTTP face: the investigator review queue (issue 12).

- ``GET /reviews`` — findings whose category confidence was under the review threshold,
  waiting for an investigator, by case id (``after`` pages on);
- ``GET /reviews/{case_id}`` — one investigated case: evidence, category and its confidence
  against the threshold, facts, finding and reasons, remedy range, the last review;
- ``POST /reviews/{case_id}`` — an investigator's review: category, finding, remedy range and
  a mandatory reason → recorded on the case, on the audit chain (the token's subject and
  role) and published as a revised ``investigation.completed`` (revision + 1) through the
  case's outbox. Posting the same review again answers the same and publishes nothing.

Every route needs a bearer token (``shared.auth``; roles per route in docs/security.md).
The rules are in ``review.py``; this module only translates HTTP.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, Field
from pymongo.asynchronous.collection import AsyncCollection

from services.investigation import review
from services.investigation.settings import Settings
from shared.audit import append_quietly
from shared.auth import Principal, Role, install_auth, require
from shared.contracts.common import Money
from shared.contracts.envelope import utcnow
from shared.contracts.investigation import ComputedFact, EvidenceItem, RemedyRange
from shared.outbox import relay

router = APIRouter()
log = logging.getLogger(__name__)

#: who reads the queue and the cases in it
READERS: tuple[Role, ...] = ("investigator", "manager", "auditor")

Reader = Annotated[Principal, Depends(require(*READERS))]
Reviewer = Annotated[Principal, Depends(require(review.REVIEWER_ROLE))]


def install_api(app: FastAPI, settings: Settings) -> None:
    """Check the token settings (production refuses unsafe ones)."""
    install_auth(app, settings)


def cases_of(request: Request) -> AsyncCollection[dict[str, Any]]:
    cases: AsyncCollection[dict[str, Any]] = request.app.state.deps.repo.investigations
    return cases


def threshold_of(request: Request) -> float:
    return float(request.app.state.settings.review_threshold)


Cases = Annotated[AsyncCollection[dict[str, Any]], Depends(cases_of)]


class QueueItem(BaseModel):
    """A finding waiting for review."""

    case_id: str
    case_number: str
    status: str = Field(description="completed, or paused (waiting for an external appraisal).")
    revision: int
    category: str
    category_confidence: float
    finding: str
    remedy_min: Money | None = None
    remedy_max: Money | None = None
    complex_case: bool = False
    deadline_at: datetime | None = None
    updated_at: datetime | None = None


class Queue(BaseModel):
    """One page of the review queue."""

    threshold: float = Field(description="Category confidence under which a finding is reviewed.")
    items: list[QueueItem]
    next_after: str | None = Field(None, description="Pass as ?after= for the next page; null: last page.")


class LastReview(BaseModel):
    """The latest review of a case."""

    revision: int
    base_revision: int
    by: str
    role: str
    at: datetime
    reason: str
    changed: list[str]
    before: dict[str, str]


class CaseReview(BaseModel):
    """An investigated case as the investigator reviews it (no complaint text or personal
    data: the complaint is at intake's GET /cases/{case_ref})."""

    case_id: str
    case_number: str
    status: str
    revision: int
    review_status: str | None = Field(description="pending, reviewed, or null (above the threshold).")
    threshold: float
    category: str
    category_confidence: float
    product: str
    claims: list[str]
    finding: str
    root_cause: str
    reasons_zh: list[str]
    reasons_en: list[str]
    evidence: list[EvidenceItem]
    facts: list[ComputedFact]
    remedy_range: RemedyRange
    complex_case: bool
    deadline_at: datetime | None = None
    review: LastReview | None = None


def _item(doc: dict[str, Any]) -> QueueItem:
    remedy = doc.get("remedy_range") or {}
    return QueueItem(case_id=doc["_id"], case_number=doc["case_number"], status=doc["status"],
                     revision=doc["revision"], category=doc["category"], category_confidence=doc["confidence"],
                     finding=doc["finding"], remedy_min=remedy.get("min"), remedy_max=remedy.get("max"),
                     complex_case=doc.get("complex_case", False), deadline_at=doc.get("deadline_at"),
                     updated_at=doc.get("updated_at"))


def _case(doc: dict[str, Any], threshold: float) -> CaseReview:
    last = doc.get("review")
    return CaseReview(
        case_id=doc["_id"], case_number=doc["case_number"], status=doc["status"], revision=doc["revision"],
        review_status=doc.get("review_status"), threshold=threshold, category=doc["category"],
        category_confidence=doc["confidence"], product=doc["product"], claims=doc["claims"],
        finding=doc["finding"], root_cause=doc["root_cause"], reasons_zh=doc["reasons_zh"],
        reasons_en=doc["reasons_en"], evidence=doc["evidence"], facts=doc["facts"],
        remedy_range=doc["remedy_range"], complex_case=doc["complex_case"], deadline_at=doc.get("deadline_at"),
        review=LastReview.model_validate({k: v for k, v in last.items() if k in LastReview.model_fields})
        if last else None,
    )


@router.get("/reviews", response_model=Queue)
async def list_reviews(
    p: Reader, request: Request, cases: Cases,
    after: Annotated[str | None, Query(max_length=64, description="Case id to continue after.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Queue:
    """The findings waiting for an investigator's review, by case id."""
    docs = await review.queue(cases, after=after, limit=limit + 1)
    more = len(docs) > limit
    docs = docs[:limit]
    return Queue(threshold=threshold_of(request), items=[_item(d) for d in docs],
                 next_after=docs[-1]["_id"] if more else None)


@router.get("/reviews/{case_id}", response_model=CaseReview, responses={404: {"description": "not investigated"}})
async def get_review(case_id: str, p: Reader, request: Request, cases: Cases) -> CaseReview:
    """One investigated case: evidence, category confidence, facts, finding and remedy range."""
    return _case(await review.get_case(cases, case_id), threshold_of(request))


@router.post(
    "/reviews/{case_id}", response_model=CaseReview,
    responses={404: {"description": "not investigated"},
               409: {"description": "revised since the investigator read it, or still paused for an appraisal"},
               422: {"description": "invalid body (the field is named)"}},
)
async def post_review(case_id: str, body: review.ReviewRequest, p: Reviewer, request: Request,
                      cases: Cases) -> CaseReview:
    """Record an investigator's review and publish the revised ``investigation.completed``."""
    doc, written = await review.record_review(cases, case_id, body, by=p.sub, role=p.role, now=utcnow())
    if written is not None:
        await append_quietly(cases.database, who=p.sub, role=p.role, action="finding_reviewed", case_id=case_id,
                             details=review.audit_details(written))
    if doc.get("outbox_pending") or written is not None:
        await relay(cases, case_id, request.app.state.publisher.send)
    return _case(doc, threshold_of(request))
