"""A revised investigation in negotiation (issue 12): an open workspace takes it and the
customer hears of a review; after an agreement it is recorded and raised, never applied; a
redelivery or an older revision changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.negotiation import handlers
from services.negotiation.models import Acceptance, Actor, Agreement
from services.negotiation.settings import Settings
from shared.contracts.common import Category
from shared.contracts.envelope import Envelope
from shared.contracts.investigation import InvestigationCompleted, RemedyRange
from tests.unit.negotiation.fakes import FakeRepo

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SETTINGS = Settings(environment="test")


def completed(revision: int, finding: str = "partly_substantiated", **extra: object) -> Envelope[InvestigationCompleted]:
    return Envelope.wrap(InvestigationCompleted(
        case_number="TS-9", category=Category.PRICING_FEES, finding=finding, revision=revision,  # type: ignore[arg-type]
        customer_id="c9", remedy_range=RemedyRange(min=Decimal("0"), max=Decimal("200")), **extra),  # type: ignore[arg-type]
        case_id="K9", producer="investigation")


def reviewed(revision: int, finding: str = "substantiated") -> Envelope[InvestigationCompleted]:
    return completed(revision, finding, category_confidence=0.31, revised_by="inv-1",
                     revision_reason="合同条款核实后属实", revised_fields=["finding", "remedy_range"],
                     revised_at=NOW)


async def _open(repo: FakeRepo) -> None:
    assert await handlers.open_workspace(completed(1, review_pending=True), repo=repo, settings=SETTINGS, now=NOW)


async def test_an_open_case_takes_the_review_and_the_customer_is_told() -> None:
    repo = FakeRepo()
    await _open(repo)
    ws = await repo.get("K9")
    assert ws is not None and ws.review_pending and ws.finding == "partly_substantiated"
    before = len(repo.outbox)
    review = reviewed(2)
    assert await handlers.open_workspace(review, repo=repo, settings=SETTINGS, now=NOW + timedelta(hours=1))
    ws = await repo.get("K9")
    assert ws is not None and (ws.finding, ws.investigation_revision, ws.review_pending) == ("substantiated", 2, False)
    [rev] = ws.finding_revisions
    assert rev.applied and rev.revised_by == "inv-1" and rev.previous_finding == "partly_substantiated"
    [notice] = repo.outbox[before:]
    assert notice.event_type == "customer.notified" and notice.payload.kind == "finding_reviewed"
    assert "复核" in notice.payload.body and notice.payload.customer_id == "c9"
    # a redelivery, and an older revision arriving late, change nothing
    assert not await handlers.open_workspace(review, repo=repo, settings=SETTINGS, now=NOW)
    assert not await handlers.open_workspace(completed(2, "unsubstantiated"), repo=repo, settings=SETTINGS, now=NOW)
    assert (await repo.get("K9")).finding == "substantiated"  # type: ignore[union-attr]
    assert len(repo.outbox) == before + 1


async def test_after_an_agreement_the_revision_is_recorded_and_raised_not_applied() -> None:
    repo = FakeRepo()
    await _open(repo)
    ws = await repo.get("K9")
    assert ws is not None
    customer = Actor(sub="c9", role="customer")
    agreement = Agreement(agreement_id="AG-1", offer_id="OF-1", terms=[], concession=Decimal("100.00"),
                          acceptance=Acceptance(by=customer, at=NOW, channel="in_app"), text_zh="协议", text_en="agreement")
    await repo.save(ws.model_copy(update={"status": "agreed", "agreement": agreement}), ws.version, [])
    before = len(repo.outbox)
    assert await handlers.open_workspace(reviewed(2, "unsubstantiated"), repo=repo, settings=SETTINGS, now=NOW)
    ws = await repo.get("K9")
    assert ws is not None and ws.status == "agreed" and ws.agreement == agreement
    assert ws.finding == "partly_substantiated" and ws.investigation_revision == 1, "the agreement's basis stands"
    [rev] = ws.finding_revisions
    assert not rev.applied and rev.finding == "unsubstantiated" and rev.reason == "合同条款核实后属实"
    assert "not applied" in ws.timeline[-1].what
    [alert] = repo.outbox[before:]
    assert alert.event_type == "supervision.alert" and alert.payload.kind == "finding_revised_after_agreement"
    assert "customer.notified" not in [e.event_type for e in repo.outbox[before:]]
    # the same revision again, or an older one: nothing more
    assert not await handlers.open_workspace(reviewed(2, "unsubstantiated"), repo=repo, settings=SETTINGS, now=NOW)
    assert len(repo.outbox) == before + 1 and len((await repo.get("K9")).finding_revisions) == 1  # type: ignore[union-attr]
