"""Business rules of negotiation with an in-memory repository: scope, authority, fairness, flow."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.negotiation import handlers
from services.negotiation.auth import Principal
from services.negotiation.errors import Conflict, Forbidden, NotFound, Unprocessable
from services.negotiation.models import (
    AgentProfile,
    Apology,
    FeeWaiver,
    InstalmentPlanTerm,
    Refund,
)
from services.negotiation.settings import Settings
from shared.clock import due
from shared.contracts.common import Category, Channel, Language, Priority, Product
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ComplaintRegistered
from shared.contracts.investigation import (
    ComputedFact,
    EvidenceItem,
    InvestigationCompleted,
    RemedyRange,
)
from shared.errors import InvalidMessage
from shared.topics import decode
from tests.unit.negotiation.fakes import FakeRepo

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BEIJING = ZoneInfo("Asia/Shanghai")
SETTINGS = Settings(environment="test")
A1 = Principal("a1", "agent", team="t1")
A2 = Principal("a2", "agent", team="t1")
LEAD = Principal("lead", "team_lead", team="t1")
MANAGER = Principal("boss", "manager")
CUST = Principal("c1", "customer", customer_id="c1")
OTHER_CUST = Principal("c2", "customer", customer_id="c2")


async def opened(repo: FakeRepo, *, amount: str = "3000", hardship: bool = False, case: str = "K1") -> str:
    repo.agents["a1"] = AgentProfile(agent_id="a1", team="t1", categories=["pricing_fees"])
    repo.agents["a2"] = AgentProfile(agent_id="a2", team="t1", categories=["pricing_fees"])
    reg = Envelope.wrap(ComplaintRegistered(
        case_number="TS-1", complaint_id="c", channel=Channel.APP, channel_complaint_id="x",
        received_at=NOW, deadline_at=NOW + timedelta(days=15), priority=Priority.NORMAL,
        product=Product.CREDIT_CARD, language=Language.ZH_CN, customer_id="c1", text="t",
        amount_disputed=Decimal(amount),
    ), case_id=case, producer="intake")
    await handlers.record_registration(reg, repo=repo, now=NOW)  # type: ignore[arg-type]
    done = Envelope.wrap(InvestigationCompleted(case_number="TS-1", category=Category.PRICING_FEES,
                                                finding="substantiated", hardship=hardship),
                         case_id=case, producer="investigation")
    assert await handlers.open_workspace(done, repo=repo, settings=SETTINGS, now=NOW)  # type: ignore[arg-type]
    assert not await handlers.open_workspace(done, repo=repo, settings=SETTINGS, now=NOW)  # type: ignore[arg-type]
    return case


def waiver(pct: str) -> FeeWaiver:
    return FeeWaiver(fee="late_fee", fee_amount=Decimal("1000"), waiver_pct=Decimal(pct))


async def offer(repo: FakeRepo, terms: list[Any], p: Principal = A1, **kw: Any) -> Any:
    kw.setdefault("justification", None)
    return await handlers.make_offer(
        "K1", terms=terms, reason="r", final=kw.pop("final", False), responds_to=None, p=p,
        expected_version=kw.pop("expected_version", None), repo=repo, settings=SETTINGS, now=NOW, **kw,
    )


async def test_opening_is_idempotent_assigns_by_load_and_owes_one_started_event() -> None:
    repo = FakeRepo()
    await opened(repo)
    ws = repo.cases["K1"]
    assert ws.status == "open" and ws.assigned_agent == "a1" and ws.customer_id == "c1"
    assert repo.types() == ["negotiation.started"]
    await opened(repo, case="K2")
    assert repo.cases["K2"].assigned_agent == "a2", "the less loaded agent takes the next case"


async def test_scope_hides_other_customers_and_teams() -> None:
    repo = FakeRepo()
    await opened(repo)
    with pytest.raises(NotFound):
        await handlers.load_case("K1", OTHER_CUST, repo=repo)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        await handlers.load_case("K1", Principal("x", "agent", team="t2"), repo=repo)  # type: ignore[arg-type]
    assert (await handlers.load_case("K1", CUST, repo=repo)).case_id == "K1"  # type: ignore[arg-type]
    assert (await handlers.load_case("K1", MANAGER, repo=repo)).case_id == "K1"  # type: ignore[arg-type]


async def test_within_authority_opens_above_waits_for_the_right_approver() -> None:
    repo = FakeRepo()
    await opened(repo)
    _, small = await offer(repo, [waiver("30")])
    assert small.status == "open" and small.concession == Decimal("300.00")
    assert repo.types()[-1] == "customer.notified" and "settlement.proposed" in repo.types()
    _, big = await offer(repo, [waiver("80"), Refund(amount=Decimal("1500"))], justification="客户困难，已核实收入证明")
    assert big.status == "pending_approval" and big.authority.required_role == "team_lead"
    assert repo.cases["K1"].offer(small.offer_id).status == "open", "still open until the big one is approved"
    with pytest.raises(Forbidden, match="team_lead"):
        await handlers.decide_approval("K1", big.offer_id, approve=True, note="", p=A1, expected_version=None,
                                       repo=repo, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(Unprocessable):
        await handlers.decide_approval("K1", big.offer_id, approve=False, note=" ", p=LEAD,
                                       expected_version=None, repo=repo, now=NOW)  # type: ignore[arg-type]
    _, approved = await handlers.decide_approval("K1", big.offer_id, approve=True, note="ok", p=LEAD,
                                                 expected_version=None, repo=repo, now=NOW)  # type: ignore[arg-type]
    assert approved.status == "open"
    assert repo.cases["K1"].offer(small.offer_id).status == "superseded"
    assert "settlement.approved" in repo.types()


async def test_nobody_approves_their_own_offer() -> None:
    repo = FakeRepo()
    await opened(repo)
    _, big = await offer(repo, [waiver("95")], p=LEAD, justification="主管亲自处理的特殊情况说明")
    assert big.authority.required_role == "manager"
    with pytest.raises(Forbidden):
        await handlers.decide_approval("K1", big.offer_id, approve=True, note="", p=LEAD, expected_version=None,
                                       repo=repo, now=NOW)  # type: ignore[arg-type]


async def test_flagged_offer_needs_a_written_justification() -> None:
    repo = FakeRepo()  # peers 0..59 %: 3000 disputed, 2000 refund = 66.67 % is above
    await opened(repo)
    with pytest.raises(Unprocessable) as err:
        await offer(repo, [Refund(amount=Decimal("2000"))])
    assert err.value.field == "justification"
    _, ok = await offer(repo, [Refund(amount=Decimal("2000"))], justification="合同条款明显不公平，全额退还")
    assert ok.fairness.flagged and ok.fairness.position == "above"
    _, low = await offer(repo, [Apology(text="抱歉")], justification="调查结论为客户理解有误，仅作解释")
    assert low.fairness.position == "below"


async def test_recused_agent_cannot_act_and_is_replaced() -> None:
    repo = FakeRepo()
    await opened(repo)
    await handlers.recuse("K1", "a1", "曾参与该笔催收", p=A1, expected_version=None, repo=repo, now=NOW)  # type: ignore[arg-type]
    ws = repo.cases["K1"]
    assert ws.assigned_agent == "a2"
    with pytest.raises(Forbidden, match="recused"):
        await offer(repo, [waiver("10")], p=A1)
    with pytest.raises(Forbidden, match="recused"):
        await handlers.assign("K1", "a1", p=LEAD, expected_version=None, repo=repo, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        await handlers.recuse("K1", "a2", "x", p=A1, expected_version=None, repo=repo, now=NOW)  # type: ignore[arg-type]


async def test_conflicted_customer_blocks_assignment() -> None:
    repo = FakeRepo()
    await opened(repo)
    repo.agents["a2"] = AgentProfile(agent_id="a2", team="t1", conflicted_customer_ids=["c1"])
    with pytest.raises(Forbidden):
        await handlers.assign("K1", "a2", p=LEAD, expected_version=None, repo=repo, now=NOW)  # type: ignore[arg-type]


async def test_stale_version_is_a_conflict() -> None:
    repo = FakeRepo()
    await opened(repo)
    version = repo.cases["K1"].version
    await handlers.log_message("K1", body="hi", direction="outbound", channel="sms", p=A1,
                               expected_version=version, repo=repo, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="version"):
        await handlers.log_message("K1", body="again", direction="outbound", channel="sms", p=A1,
                                   expected_version=version, repo=repo, now=NOW)  # type: ignore[arg-type]


async def test_acceptance_makes_the_agreement_and_a_reference_settlement() -> None:
    repo = FakeRepo()
    await opened(repo)
    plan = InstalmentPlanTerm(amount=Decimal("2700"), months=6, first_due_date=date(2027, 1, 31))
    _, o = await offer(repo, [waiver("30"), plan])
    assert len(o.terms[1].schedule) == 6 and o.terms[1].total_payable == Decimal("2700.00")
    with pytest.raises(Forbidden):
        await handlers.accept_offer("K1", o.offer_id, channel="in_app", p=A1, expected_version=None,
                                    repo=repo, now=NOW)  # type: ignore[arg-type]
    ws = await handlers.accept_offer("K1", o.offer_id, channel="in_app", p=CUST, expected_version=None,
                                     repo=repo, now=NOW)  # type: ignore[arg-type]
    assert ws.status == "agreed" and ws.agreement is not None
    assert "减免滞纳金 300.00 元" in ws.agreement.text_zh and "2027-01-31" in ws.agreement.text_zh
    assert "Waive CNY 300.00" in ws.agreement.text_en
    assert repo.types().count("settlement.agreed") == 1
    agreed = next(e for e in repo.outbox if e.event_type == "settlement.agreed").payload
    assert agreed.terms[0].waived() == Decimal("300.00") and agreed.terms[0].waiver_pct == Decimal("30")
    assert agreed.terms[1].schedule[5].due_date == date(2027, 6, 30)
    wire = agreed.model_dump(mode="json")["terms"]  # the wire form is unchanged
    assert wire[0]["waiver_amount"] == "300.00" and wire[0]["waiver_pct"] == "30"
    assert repo.refs[0]["relief_bp"] == 1000 and repo.refs[0]["band"] == "1k-5k"
    with pytest.raises(Conflict):
        await handlers.accept_offer("K1", o.offer_id, channel="in_app", p=CUST, expected_version=None,
                                    repo=repo, now=NOW)  # type: ignore[arg-type]


async def test_rejecting_a_non_final_offer_keeps_negotiating_final_escalates() -> None:
    repo = FakeRepo()
    await opened(repo)
    _, o1 = await offer(repo, [waiver("30")])
    ws = await handlers.reject_offer("K1", o1.offer_id, reason="太少", escalate_to="mediation", p=CUST,
                                     expected_version=None, repo=repo, now=NOW, settings=SETTINGS)  # type: ignore[arg-type]
    assert ws.status == "open"
    _, o2 = await offer(repo, [waiver("40")], final=True)
    ws = await handlers.reject_offer("K1", o2.offer_id, reason="仍不接受", escalate_to="litigation", p=CUST,
                                     expected_version=None, repo=repo, now=NOW, settings=SETTINGS)  # type: ignore[arg-type]
    assert ws.status == "escalated" and ws.escalation.target == "litigation"
    assert repo.types()[-3:] == ["negotiation.failed", "case.escalated", "customer.notified"]
    dossier = repo.dossiers[ws.escalation.dossier_id]
    assert len(dossier["json"]["offers"]) == 2 and "诉讼" in dossier["html"]


async def test_deadline_sweep_escalates_to_mediation() -> None:
    repo = FakeRepo()
    await opened(repo)
    assert await handlers.escalate_near_deadline(repo=repo, settings=SETTINGS, now=NOW) == []  # type: ignore[arg-type]
    later = NOW + timedelta(days=14, hours=1)
    assert await handlers.escalate_near_deadline(repo=repo, settings=SETTINGS, now=later) == ["K1"]  # type: ignore[arg-type]
    assert repo.cases["K1"].escalation.target == "mediation"
    reason = repo.cases["K1"].escalation.reason
    # the registered deadline is NOW + 15 x 24 h = 16 Dec 2026 09:00 UTC, 17:00 Beijing time
    assert reason == "no agreement and the deadline (2026-12-16 17:00 Beijing time) is near"


async def test_a_case_registered_past_its_deadline_is_escalated_as_past_not_near() -> None:
    repo = FakeRepo()
    await opened(repo)
    late = repo.cases["K1"].model_copy(update={"deadline_at": due(NOW - timedelta(days=20), 15).due_at})
    repo.cases["K1"] = late
    assert await handlers.escalate_near_deadline(repo=repo, settings=SETTINGS, now=NOW) == ["K1"]  # type: ignore[arg-type]
    ws = repo.cases["K1"]
    # received 11 Nov 2026 (Beijing): due at the end of 26 Nov, long past on 1 Dec
    assert ws.escalation.reason == "no agreement and the deadline (2026-11-26 23:59 Beijing time) has passed"
    assert "is near" not in ws.escalation.reason


def test_the_customer_sees_the_beijing_day_of_the_deadline_not_the_utc_one() -> None:
    from services.negotiation.api.customer_view import customer_view
    from services.negotiation.models import Workspace

    # 17:30 UTC on 15 Dec is 01:30 on 16 Dec in Beijing: the UTC date would be a day early
    ws = Workspace(case_id="K9", case_number="TS-9", status="open", customer_id="c9",
                   deadline_at=datetime(2026, 12, 15, 17, 30, tzinfo=UTC))
    assert customer_view(ws, "zh-CN").deadline_text == "我们最迟将于 2026年12月16日（北京时间）当日24时前给您答复。"
    assert customer_view(ws, "en").deadline_text == (
        "We will give you our answer by the end of 16 December 2026 (24:00 Beijing time).")
    ws = ws.model_copy(update={"deadline_at": due(datetime(2026, 2, 2, 1, tzinfo=UTC), 15).due_at.astimezone(UTC)})
    assert "2026年2月24日" in customer_view(ws, "zh-CN").deadline_text  # Spring Festival rolled over


async def test_auditor_reads_but_cannot_act() -> None:
    repo = FakeRepo()
    await opened(repo)
    auditor = Principal("au", "auditor")
    assert (await handlers.load_case("K1", auditor, repo=repo)).case_id == "K1"  # type: ignore[arg-type]
    with pytest.raises(Forbidden, match="auditors"):
        await offer(repo, [waiver("10")], p=auditor)


async def test_staff_record_an_acceptance_given_in_person() -> None:
    repo = FakeRepo()
    await opened(repo)
    _, o = await offer(repo, [waiver("30")])
    with pytest.raises(Unprocessable):
        await handlers.record_acceptance("K1", o.offer_id, channel="in_app", note="", p=A1,
                                         expected_version=None, repo=repo, now=NOW)  # type: ignore[arg-type]
    ws = await handlers.record_acceptance("K1", o.offer_id, channel="meeting", note="签字协议已归档", p=A1,
                                          expected_version=None, repo=repo, now=NOW)  # type: ignore[arg-type]
    acc = ws.agreement.acceptance
    assert (acc.by.sub, acc.by.role, acc.recorded_by.sub, acc.channel) == ("c1", "customer", "a1", "meeting")
    assert "由 a1 记录" in ws.agreement.text_zh and "recorded by a1" in ws.agreement.text_en


async def test_hardship_and_the_suggested_remedy_range_shape_the_comparison() -> None:
    seen: list[dict[str, Any]] = []

    class Recording(FakeRepo):
        async def peer_pcts(self, query: dict[str, Any]) -> list[Decimal]:
            seen.append(query)
            return await super().peer_pcts(query)

    repo = Recording()
    await opened(repo)
    await handlers.set_hardship("K1", hardship=True, reason="客户失业，收入中断", p=A1, expected_version=None,
                                repo=repo, now=NOW)  # type: ignore[arg-type]
    await offer(repo, [waiver("30")])
    assert seen[-1] == {"category": "pricing_fees", "band": "1k-5k", "hardship": True}
    ws = repo.cases["K1"]
    remedy = RemedyRange(min=Decimal("100.00"), max=Decimal("250.00"))
    repo.cases["K1"] = ws.model_copy(update={"remedy_range": remedy})
    with pytest.raises(Unprocessable, match="suggested a remedy of CNY 100.00–250.00"):
        await offer(repo, [waiver("30")])


async def test_outbound_terms_and_notices_mask_personal_numbers() -> None:
    repo = FakeRepo()
    await opened(repo)
    await offer(repo, [waiver("30"), Apology(text="已致电 13812345678 致歉")])
    proposed = next(e for e in repo.outbox if e.event_type == "settlement.proposed")
    notice = next(e for e in repo.outbox if e.event_type == "customer.notified")
    assert "13812345678" not in proposed.model_dump_json() and "138****5678" in proposed.model_dump_json()
    assert "13812345678" not in notice.payload.body


async def test_investigation_findings_are_read_from_the_typed_contract() -> None:
    repo = FakeRepo()
    evidence = EvidenceItem(item="contact_log", title_zh="催收记录", title_en="Contact log",
                            source="collections.contacts", outcome="confirmed", detail_zh="22:40 来电")
    fact = ComputedFact(code="contacts_max_per_day", value="6", unit="count", breach=True)
    remedy = RemedyRange(min=Decimal("0.00"), max=Decimal("200.00"), text_zh="停止违规催收并致歉")
    done = Envelope.wrap(InvestigationCompleted(
        case_number="TS-9", category=Category.COLLECTION_CONDUCT, finding="substantiated",
        customer_id="c9", language=Language.EN, product=Product.CONSUMER_LOAN, evidence=[evidence],
        facts=[fact], remedy_range=remedy, root_cause_zh="外包催收未遵守时段", claims=["financial_hardship"],
        deadline_at=datetime(2026, 12, 10, tzinfo=UTC), amount_disputed=Decimal("2000.00"),
    ), case_id="K9", producer="investigation")
    assert await handlers.open_workspace(done, repo=repo, settings=SETTINGS, now=NOW)  # type: ignore[arg-type]
    ws = repo.cases["K9"]
    assert (ws.customer_id, ws.language, ws.product) == ("c9", "en", "consumer_loan")
    assert ws.evidence == [evidence] and ws.facts == [fact] and ws.remedy_range == remedy
    assert ws.investigation_details.root_cause_zh == "外包催收未遵守时段"
    assert ws.hardship, "a hardship claim marks the case"
    assert ws.amount_disputed == Decimal("2000.00")
    assert ws.deadline_at == datetime(2026, 12, 10, tzinfo=UTC)
    assert ws.team == SETTINGS.default_team and ws.assigned_agent is None  # nobody in the directory


async def test_absent_optional_findings_leave_defaults() -> None:
    repo = FakeRepo()
    done = Envelope.wrap(InvestigationCompleted(case_number="TS-8", category=Category.OTHER,
                                                finding="unsubstantiated"), case_id="K8", producer="investigation")
    assert await handlers.open_workspace(done, repo=repo, settings=SETTINGS, now=NOW)  # type: ignore[arg-type]
    ws = repo.cases["K8"]
    assert (ws.customer_id, ws.language, ws.product) == (None, "zh-CN", None)
    assert ws.evidence == [] and ws.facts == [] and ws.remedy_range is None and not ws.hardship
    # no deadline came with the case: 15 days counted like the regulatory period from the day it
    # opened (1 Dec 2026 in Beijing): the end of Wed 16 Dec 2026, Beijing time (shared.clock)
    assert ws.deadline_at == due(NOW, 15).due_at == datetime(2026, 12, 16, 23, 59, 59, 999999, tzinfo=BEIJING)


def test_odd_shapes_are_refused_by_the_contract_not_guessed() -> None:
    done = Envelope.wrap(InvestigationCompleted(case_number="TS-7", category=Category.OTHER,
                                                finding="unsubstantiated"), case_id="K7", producer="investigation")
    data = json.loads(done.model_dump_json())
    data["payload"].update({"evidence": "通话录音", "remedy_range": "全额退还手续费"})
    with pytest.raises(InvalidMessage):  # the worker dead-letters it with the reason
        decode("investigation.completed", json.dumps(data).encode())


async def test_dossier_html_escapes_what_people_typed() -> None:
    repo = FakeRepo()
    await opened(repo)
    await handlers.log_message("K1", body="<script>alert(1)</script> 身份证 110101199003071234",
                               direction="inbound", channel="call", p=A1, expected_version=None,
                               repo=repo, now=NOW)  # type: ignore[arg-type]
    ws = await handlers.escalate("K1", target="mediation", reason="客户申请调解", p=A1, expected_version=None,
                                 repo=repo, settings=SETTINGS, now=NOW)  # type: ignore[arg-type]
    html = repo.dossiers[ws.escalation.dossier_id]["html"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "110101199003071234" not in html
    assert html.index("案件卷宗") < html.index("Case dossier")
    assert "定价收费类" in html and "投诉属实" in html


async def test_a_revised_investigation_updates_an_open_workspace_once() -> None:
    repo = FakeRepo()
    await opened(repo)
    first_started = repo.types().count("negotiation.started")
    revised = Envelope.wrap(InvestigationCompleted(
        case_number="TS-1", category=Category.PRICING_FEES, finding="partly_substantiated", revision=2,
        remedy_range=RemedyRange(min=Decimal("50.00"), max=Decimal("400.00")), amount_disputed=Decimal("2500.00"),
    ), case_id="K1", producer="investigation")
    assert await handlers.open_workspace(revised, repo=repo, settings=SETTINGS, now=NOW)  # type: ignore[arg-type]
    assert not await handlers.open_workspace(revised, repo=repo, settings=SETTINGS, now=NOW)  # type: ignore[arg-type]
    ws = repo.cases["K1"]
    assert ws.finding == "partly_substantiated" and ws.investigation_revision == 2
    assert ws.amount_disputed == Decimal("2500.00") and ws.assigned_agent == "a1"
    assert any("revised" in t.what for t in ws.timeline)
    assert repo.types().count("negotiation.started") == first_started
