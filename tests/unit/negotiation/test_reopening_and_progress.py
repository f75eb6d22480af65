"""Negotiation's side of follow-up: a dissatisfied callback reopens and reassigns the case;
the regular progress notice goes out once per case per period while the case is open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.negotiation import handlers
from services.negotiation.handlers.reports import progress_notice
from services.negotiation.models import AgentProfile, Refund
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed, CaseReopened
from tests.unit.negotiation.fakes import FakeRepo
from tests.unit.negotiation.test_handlers import A1, CUST, NOW, SETTINGS, offer, opened


class ProgressRepo(FakeRepo):
    """The fake, with the query the progress sweep uses."""

    async def progress_due(self, now: datetime, *, limit: int = 200) -> list[str]:
        return [w.case_id for w in self.cases.values()
                if w.status in ("awaiting_investigation", "open", "agreed") and w.closure is None
                and (w.progress_due_at is None or w.progress_due_at <= now)][:limit]


async def agreed_case(repo: FakeRepo) -> str:
    case = await opened(repo)
    ws = await repo.get(case)
    assert ws is not None and ws.assigned_agent == "a1"
    _, made = await offer(repo, [Refund(amount=Decimal("900"))], p=A1)
    await handlers.accept_offer(case, made.offer_id, channel="in_app", p=CUST, expected_version=None,
                                repo=repo, now=NOW)
    return case


def reopened_event(case: str, **kw: Any) -> Envelope[CaseReopened]:
    payload = {"case_number": "TS-1", "agreement_id": "AG-1", "score": 2, "reasons": "退款还没到账", **kw}
    return Envelope.wrap(CaseReopened(**payload), case_id=case, producer="followup")


async def test_a_dissatisfied_callback_reopens_reassigns_and_tells_the_customer() -> None:
    repo = FakeRepo()
    case = await agreed_case(repo)
    repo.outbox.clear()
    later = NOW + timedelta(days=40)
    env = reopened_event(case)
    ws = await handlers.record_reopening(env, repo=repo, settings=SETTINGS, now=later)
    assert ws is not None
    assert ws.status == "open" and ws.assigned_agent == "a2"  # not a1, who negotiated the agreement
    [r] = ws.reopenings
    assert (r.previous_agent, r.agent, r.score, r.reasons) == ("a1", "a2", 2, "退款还没到账")
    assert "退款还没到账" in ws.messages[-1].body and ws.messages[-1].direction == "inbound"
    # a fresh deadline, so the near-deadline sweep does not escalate it at once; the customer is told why
    assert ws.deadline_at is not None and ws.deadline_at > later + timedelta(days=14)
    assert ws.deadline_changes[-1].reason_en.startswith("you were not satisfied")
    [notice] = repo.outbox
    assert notice.event_type == "customer.notified" and notice.payload.kind == "progress"
    assert "重新打开" in notice.payload.body and "另一位专员" in notice.payload.body
    # a redelivery changes nothing; the new round can make offers again
    assert await handlers.record_reopening(env, repo=repo, settings=SETTINGS, now=later) is None
    assert len(repo.outbox) == 1
    assert await handlers.escalate_near_deadline(repo=repo, settings=SETTINGS, now=later) == []


async def test_without_another_agent_the_reopened_case_waits_for_a_lead() -> None:
    repo = FakeRepo()
    case = await agreed_case(repo)
    repo.agents["a2"] = AgentProfile(agent_id="a2", team="t1", categories=["pricing_fees"], active=False)
    ws = await handlers.record_reopening(reopened_event(case), repo=repo, settings=SETTINGS, now=NOW)
    assert ws is not None and ws.status == "open" and ws.assigned_agent is None and ws.team == "t1"
    assert ws.timeline[-1].what == "waiting for assignment"


async def test_a_case_not_agreed_or_unknown_is_not_reopened() -> None:
    repo = FakeRepo()
    case = await opened(repo)  # open, never agreed
    assert await handlers.record_reopening(reopened_event(case), repo=repo, settings=SETTINGS, now=NOW) is None
    assert await handlers.record_reopening(reopened_event("nope"), repo=repo, settings=SETTINGS, now=NOW) is None


async def test_progress_notices_go_out_once_per_period_while_the_case_is_open() -> None:
    repo = ProgressRepo()
    case = await opened(repo)  # registered 2026-12-01 17:00 Beijing time
    repo.outbox.clear()

    async def sweep(at: datetime) -> list[str]:
        return await handlers.send_progress_notices(repo=repo, period_days=7, now=at)

    assert await sweep(NOW + timedelta(days=1)) == []  # the first sweep only plans the notice
    ws = await repo.get(case)
    assert ws is not None and ws.progress_notices == 0
    assert ws.progress_due_at == datetime(2026, 12, 7, 16, 0, tzinfo=UTC)  # 00:00 Beijing, 8 Dec
    assert await sweep(datetime(2026, 12, 7, 15, 59, tzinfo=UTC)) == []  # 23:59 Beijing, 7 Dec: not yet
    assert await sweep(datetime(2026, 12, 7, 16, 0, tzinfo=UTC)) == [case]
    assert await sweep(datetime(2026, 12, 8, 3, 0, tzinfo=UTC)) == []  # once per period
    [notice] = repo.outbox
    assert notice.payload.kind == "progress" and notice.event_type == "customer.notified"
    assert "进展" in notice.payload.subject and "TS-1" in notice.payload.body
    # a worker down for three weeks sends one notice, not three
    assert await sweep(datetime(2026, 12, 30, 1, 0, tzinfo=UTC)) == [case]
    ws = await repo.get(case)
    assert ws is not None and ws.progress_notices == 4 and len(repo.outbox) == 2
    # closed: no more notices
    ws = await repo.get(case)
    assert ws is not None
    closed = Envelope.wrap(CaseClosed(case_number="TS-1", outcome="resolved"), case_id=case, producer="followup")
    await handlers.record_closure(closed, repo=repo)
    assert await sweep(datetime(2027, 2, 1, tzinfo=UTC)) == []
    assert len(repo.outbox) == 2


async def test_progress_notice_rule_is_off_at_zero_and_speaks_the_customers_language() -> None:
    repo = ProgressRepo()
    case = await opened(repo)
    ws = await repo.get(case)
    assert ws is not None
    assert progress_notice(ws, period_days=0, now=NOW + timedelta(days=30)) is None
    change = progress_notice(ws.model_copy(update={"language": "en"}), period_days=7, now=NOW + timedelta(days=8))
    assert change is not None
    _, [notice] = change
    assert notice.payload.subject.startswith("Progress of your case") and "We will answer by" in notice.payload.body
