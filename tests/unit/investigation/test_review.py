"""The investigator review rules (issue 12): which findings wait for review, what a review
changes, what the revised ``investigation.completed`` says, and what is refused."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.investigation import handlers, review
from services.investigation.settings import Settings
from shared.errors import Conflict
from tests.unit.investigation.fakes import (
    RECEIVED,
    FakeCategoriser,
    FakeRecords,
    FakeRepo,
    registered,
    simulated,
)

SETTINGS = Settings(environment="test")
NOW = RECEIVED + timedelta(days=1)
TEXT = "医通健康服务，我不需要，也没定购，没经本人同意银行擅自扣费，要求退费取消定购！"


async def _investigated(confidence: float, case_id: str = "case-r") -> FakeRepo:
    repo = FakeRepo()
    await handlers.on_registered(registered(case_id, TEXT), categorise=FakeCategoriser("pricing_fees", confidence),
                                 records=simulated(FakeRecords()), repo=repo, settings=SETTINGS, now=NOW)
    return repo


def _request(**kw: object) -> review.ReviewRequest:
    body = {"expected_revision": 1, "category": "marketing", "finding": "substantiated",
            "remedy_min": "100.00", "remedy_max": "300.00", "reason": "销售记录显示未告知费用，客户电话 13812345678"}
    return review.ReviewRequest.model_validate(body | kw)


@pytest.mark.parametrize(("confidence", "pending"), [(0.2, True), (0.5, True), (0.59, True), (0.6, False), (0.93, False)])
async def test_a_finding_under_the_threshold_goes_out_flagged_and_waits_in_the_queue(
        confidence: float, pending: bool) -> None:
    repo = await _investigated(confidence)
    [event] = repo.of_type("investigation.completed")
    assert event.payload.review_pending is pending, "the finding is published either way, flagged when unsure"
    assert repo.docs["case-r"]["review_status"] == ("pending" if pending else None)
    assert SETTINGS.review_threshold == 0.6


async def test_the_stored_case_gives_back_the_published_finding() -> None:
    repo = await _investigated(0.3)
    [event] = repo.of_type("investigation.completed")
    assert review.completed_of(repo.docs["case-r"]).model_dump() == event.payload.model_dump()


async def test_a_review_revises_category_finding_and_remedy_with_the_reason_masked() -> None:
    repo = await _investigated(0.3)
    doc = repo.docs["case-r"]
    before = repo.of_type("investigation.completed")[0].payload
    fields, event = review.revise(doc, _request(), by="inv-7", role="investigator", now=NOW)
    p = event.payload
    assert (p.revision, p.category.value, p.finding) == (2, "marketing", "substantiated")
    assert p.remedy_range is not None and (p.remedy_range.min, p.remedy_range.max) == (Decimal("100.00"), Decimal("300.00"))
    assert p.revised_by == "inv-7" and p.revised_at == NOW and p.review_pending is False
    assert p.revision_reason is not None and "13812345678" not in p.revision_reason and "138****5678" in p.revision_reason
    assert "13812345678" not in event.model_dump_json(), "no personal number in the outbound event"
    assert set(p.revised_fields) == {"category", "remedy_range"} | ({"finding"} if before.finding != "substantiated" else set())
    assert p.evidence == before.evidence and p.facts == before.facts and p.deadline_at == before.deadline_at
    assert p.reasons_zh[-1].startswith("调查员复核") and p.reasons_en[-1].startswith("Reviewed by an investigator")
    source = json.loads(doc["source_event"])
    assert (event.case_id, event.correlation_id, event.causation_id) == ("case-r", source["correlation_id"],
                                                                          source["event_id"])
    assert fields["review_status"] == "reviewed" and fields["review"]["base_revision"] == 1
    details = review.audit_details(fields)
    assert details["before"]["category"] == "pricing_fees" and details["after"]["category"] == "marketing"
    assert "13812345678" not in str(details)


async def test_the_same_review_again_is_a_replay_and_a_stale_or_paused_one_is_refused() -> None:
    repo = await _investigated(0.3)
    doc = repo.docs["case-r"]
    fields, _ = review.revise(doc, _request(), by="inv-7", role="investigator", now=NOW)
    after = {**doc, **fields}
    assert review.is_replay(after, _request())
    assert not review.is_replay(after, _request(reason="另一个理由"))
    with pytest.raises(Conflict) as stale:
        review.revise(after, _request(reason="另一个理由"), by="inv-7", role="investigator", now=NOW)
    assert stale.value.field == "expected_revision"
    # the next review builds on revision 2
    _, third = review.revise(after, _request(expected_revision=2, category="pricing_fees"), by="inv-8",
                             role="investigator", now=NOW)
    assert third.payload.revision == 3
    with pytest.raises(Conflict, match="appraisal"):
        review.revise({**doc, "status": "paused"}, _request(), by="inv-7", role="investigator", now=NOW)


@pytest.mark.parametrize(("change", "field"), [
    ({"reason": "   "}, "reason"), ({"reason": ""}, "reason"), ({"remedy_max": "50.00"}, "remedy_max"),
    ({"remedy_min": "-1"}, "remedy_min"), ({"category": "lottery"}, "category"), ({"finding": "maybe"}, "finding"),
    ({"expected_revision": 0}, "expected_revision"), ({"by": "someone-else"}, "by"),
])
def test_bad_review_input_names_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        _request(**change)
    assert [e["loc"][0] for e in exc.value.errors()] == [field]
