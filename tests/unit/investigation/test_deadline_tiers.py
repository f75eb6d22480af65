"""The deadline tiers in investigation: 15, 30 (complex) and 60 (especially complex, a manager's
approval, recorded and told to the customer), all from ``shared.clock``."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.investigation import handlers
from services.investigation.settings import Settings
from shared.clock import beijing_day, due
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
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
COMPLEX = "本人于2018年 5月5日在捷信消费金融公司借款本金70000元，分期45期，每月还款金额2786.51元，已还22期，该平台利息超过国家规定的利息“国家规定个人借款不能超过年利率百分之24”。"
SIMPLE = "医通健康服务，我不需要，也没定购，没经本人同意银行擅自扣费，要求退费取消定购！"


async def _investigated(repo: FakeRepo, records: FakeRecords, case_id: str, text: str, **kw: object) -> None:
    await handlers.on_registered(registered(case_id, text, **kw), categorise=FakeCategoriser("pricing_fees", 0.9),
                                 records=simulated(records), repo=repo, settings=SETTINGS, now=NOW)


async def _approve(repo: FakeRepo, records: FakeRecords, case_id: str, *, role: str = "manager",
                   reason: str = "涉及多个产品与第三方机构，需要调取外部资料", now: datetime = NOW) -> object:
    return await handlers.approve_especially_complex(
        case_id, approved_by="m-7", role=role, reason=reason, repo=repo, records=simulated(records),
        categorise=FakeCategoriser("pricing_fees", 0.9), settings=SETTINGS, now=now,
    )


async def test_a_manager_approves_the_60_day_tier_recorded_published_and_told() -> None:
    repo, records = FakeRepo(), FakeRecords()
    await _investigated(repo, records, "case-60", COMPLEX, amount_disputed=Decimal("64089.73"))
    [first] = repo.of_type("investigation.completed")
    assert first.payload.deadline_tier == 30
    notices = len(repo.of_type("customer.notified"))

    await _approve(repo, records, "case-60")

    revised = repo.of_type("investigation.completed")[-1].payload
    # 12 Oct 2026 (Beijing) + 60 = Fri 11 Dec 2026, a working day: 24:00 Beijing that day
    assert revised.revision == 2 and revised.deadline_tier == 60
    assert revised.deadline_at == due(RECEIVED, 60).due_at and beijing_day(revised.deadline_at) == date(2026, 12, 11)
    ext = revised.deadline_extension
    assert ext is not None and (ext.approved_by, ext.approved_role, ext.approved_at) == ("m-7", "manager", NOW)
    assert ext.reason.startswith("涉及多个产品") and ext.tier_days == 60
    assert revised.finding == first.payload.finding and revised.category == first.payload.category
    [notice] = repo.of_type("customer.notified")[notices:]
    assert notice.payload.kind == "extension" and "2026年12月11日（北京时间）当日24时" in notice.payload.body
    assert "涉及多个产品" in notice.payload.body and notice.payload.deadline_at == revised.deadline_at
    doc = repo.docs["case-60"]
    assert doc["deadline_tier"] == 60 and doc["deadline_extension"]["approved_by"] == "m-7"
    assert doc["revision"] == 2

    # once only; a redelivered complaint changes nothing; new facts keep the approved tier
    with pytest.raises(Conflict, match="already"):
        await _approve(repo, records, "case-60")
    later = RECEIVED + timedelta(days=3)
    await handlers.on_registered(
        registered("case-60", "另外他们还多收了一笔服务费 300 元，合同里没有。", complaint_id="cmp-60b", received_at=later,
                   role="linked", new_facts=True, clock_restarted=True, amount_disputed=Decimal("64089.73")),
        categorise=FakeCategoriser("pricing_fees", 0.9), records=simulated(records), repo=repo, settings=SETTINGS,
        now=later)
    again = repo.of_type("investigation.completed")[-1].payload
    assert again.revision == 3 and again.deadline_tier == 60 and again.deadline_at == due(later, 60).due_at
    assert again.deadline_extension == ext


async def test_only_a_manager_with_a_reason_may_approve_and_only_a_complex_case_in_time() -> None:
    repo, records = FakeRepo(), FakeRecords()
    await _investigated(repo, records, "case-c", COMPLEX, amount_disputed=Decimal("64089.73"))
    await _investigated(repo, records, "case-s", SIMPLE)
    events = len(repo.events)
    for role in ("agent", "team_lead", "investigator", "auditor"):
        with pytest.raises(Forbidden, match="manager"):
            await _approve(repo, records, "case-c", role=role)
    with pytest.raises(Unprocessable, match="reason"):
        await _approve(repo, records, "case-c", reason="   ")
    with pytest.raises(Conflict, match="not complex"):
        await _approve(repo, records, "case-s")
    with pytest.raises(NotFound):
        await _approve(repo, records, "case-none")
    # after the 30-day deadline (24:00 Beijing on 11 Nov 2026) an extension cannot undo the breach
    past = due(RECEIVED, 30).due_at + timedelta(microseconds=1)
    with pytest.raises(Conflict, match="past its deadline"):
        await _approve(repo, records, "case-c", now=past)
    assert len(repo.events) == events and "deadline_extension" not in repo.docs["case-c"] or \
        repo.docs["case-c"]["deadline_extension"] is None
    await _approve(repo, records, "case-c", now=past - timedelta(hours=1))  # on the last day: in time


def test_the_tiers_are_the_clock_s_tiers() -> None:
    assert (SETTINGS.standard_days, SETTINGS.complex_days) == (15, 30)
    with pytest.raises(ValidationError, match="tiers"):
        Settings(environment="test", complex_days=45)
    with pytest.raises(ValidationError, match="at least"):
        Settings(environment="test", standard_days=30, complex_days=15)
