"""The customer's view, start to end (issue 12), built by ``customer_view`` on workspaces the
real handlers made: registered → investigated (findings with the rule behind them, a deadline
extended with its reason) → offer → replaced offer → agreed → executed → closed, or escalated.
zh-CN and English at every stage; no internal wording anywhere the customer reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.negotiation import handlers
from services.negotiation.api.customer_view import customer_view
from services.negotiation.api.schemas import CustomerCaseView
from services.negotiation.auth import Principal
from services.negotiation.errors import NotFound
from services.negotiation.models import AgentProfile, FeeWaiver, Refund, Workspace
from services.negotiation.settings import Settings
from services.negotiation.texts import CATEGORY_EXPLANATIONS
from shared.clock import due
from shared.contracts.common import Category, Channel, Language, Priority, Product
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed, SettlementExecuted
from shared.contracts.intake import ComplaintRegistered
from shared.contracts.investigation import EvidenceItem, InvestigationCompleted, RemedyRange
from tests.unit.negotiation.fakes import FakeRepo

RECEIVED = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 Beijing, Tuesday 1 December 2026
NOW = RECEIVED + timedelta(days=3)
SETTINGS = Settings(environment="test", institution_name_zh="示例消费金融", institution_name_en="Example Finance")
A1 = Principal("a1", "agent", team="t1")
CUST = Principal("c1", "customer", customer_id="c1")
#: what must never reach the customer (staff wording, raw ids and JSON, investigation's range)
INTERNAL = ("written justification", "书面说明理由", "OF-0", "{", "remedy range", "remedy_range", "建议补救范围",
            "u-", "token", "UTC")
LANGS = ("zh-CN", "en")


def texts(view: CustomerCaseView) -> str:
    """Everything the customer reads, as one string."""
    parts = [view.status_text, view.next_step, view.deadline_text, view.contact, view.agreement_text or "",
             *view.findings, *view.deadline_changes, *(s.text for s in view.timeline)]
    for o in view.open_offers:
        parts += [o.description, o.comparison or ""]
    return "\n".join(parts)


def clean(view: CustomerCaseView) -> str:
    text = texts(view)
    for word in INTERNAL:
        assert word not in text, (word, text)
    return text


async def registered(repo: FakeRepo, case: str = "K1") -> None:
    repo.agents["a1"] = AgentProfile(agent_id="a1", team="t1", categories=["pricing_fees"])
    reg = Envelope.wrap(ComplaintRegistered(
        case_number=f"TS-{case}", complaint_id="c", channel=Channel.APP, channel_complaint_id="x",
        received_at=RECEIVED, deadline_at=due(RECEIVED, 15).due_at, deadline_tier=15, priority=Priority.NORMAL,
        product=Product.CREDIT_CARD, language=Language.ZH_CN, customer_id="c1", customer_name_masked="张*",
        text="逾期三天被收取滞纳金", amount_disputed=Decimal("3000"),
    ), case_id=case, producer="intake", occurred_at=RECEIVED)
    await handlers.record_registration(reg, repo=repo, now=RECEIVED)  # type: ignore[arg-type]


async def investigated(repo: FakeRepo, case: str = "K1") -> None:
    await registered(repo, case)
    done = Envelope.wrap(InvestigationCompleted(
        case_number=f"TS-{case}", category=Category.PRICING_FEES, finding="partly_substantiated",
        reasons=["fee_ok"], complex_case=True, deadline_tier=30, deadline_at=due(RECEIVED, 30).due_at,
        complexity_reason_zh="需要调取多个系统的收费记录", complexity_reason_en="fee records must be gathered from several systems",
        evidence=[EvidenceItem(item="fee_ledger", title_zh="收费流水", title_en="Fee ledger", source="ledger.fees",
                               outcome="confirmed", detail_zh="逾期3天收取滞纳金500元", detail_en="a late fee of CNY 500 for 3 days late")],
        reasons_zh=["滞纳金按合同收取，但提醒短信未送达。"], reasons_en=["The late fee follows the contract, but the reminder text did not arrive."],
        remedy_range=RemedyRange(min=Decimal("100"), max=Decimal("500"), text_zh="建议补救范围 100–500 元",
                                 text_en="suggested remedy range CNY 100-500"),
    ), case_id=case, producer="investigation", occurred_at=NOW)
    assert await handlers.open_workspace(done, repo=repo, settings=SETTINGS, now=NOW)  # type: ignore[arg-type]


async def offered(repo: FakeRepo, terms: list[Any], *, at: datetime = NOW, **kw: Any) -> str:
    _, o = await handlers.make_offer("K1", terms=terms, reason="按合同及核实结果", final=kw.pop("final", False),
                                     responds_to=None, p=A1, expected_version=None, repo=repo, settings=SETTINGS,
                                     now=at, justification=kw.pop("justification", "依据核实结果与合同约定作出的方案"))
    return str(o.offer_id)


async def agreed(repo: FakeRepo) -> str:
    await investigated(repo)
    oid = await offered(repo, [FeeWaiver(fee="late_fee", fee_amount=Decimal("500"), waiver_pct=Decimal("40"))])
    await handlers.accept_offer("K1", oid, channel="in_app", p=CUST, expected_version=None, repo=repo,
                                now=NOW + timedelta(hours=1))
    return oid


def view(repo: FakeRepo, lang: str) -> CustomerCaseView:
    return customer_view(repo.cases["K1"], lang, SETTINGS)


@pytest.mark.parametrize("lang", LANGS)
async def test_registered_is_visible_to_its_customer_with_deadline_and_contact(lang: str) -> None:
    repo = FakeRepo()
    await registered(repo)
    ws = await handlers.load_case("K1", CUST, repo=repo)  # type: ignore[arg-type]  # not a 404 any more
    with pytest.raises(NotFound):
        await handlers.load_case("K1", A1, repo=repo)  # type: ignore[arg-type]  # staff: not before investigation
    v = customer_view(ws, lang, SETTINGS)
    text = clean(v)
    assert v.stage == "registered" and v.open_offers == [] and v.findings == []
    if lang == "zh-CN":
        assert "已受理" in v.status_text and "核实" in v.status_text
        assert v.deadline_text == "我们最迟将于 2026年12月16日（北京时间）当日24时前给您答复。"
        assert "留言" in v.contact and "TS-K1" in text
    else:
        assert "registered" in v.status_text and "looking into it" in v.status_text
        assert "the end of 16 December 2026 (24:00 Beijing time)" in v.deadline_text
        assert "write to" in v.contact


@pytest.mark.parametrize("lang", LANGS)
async def test_investigated_shows_findings_with_the_rule_and_the_extended_deadline_with_why(lang: str) -> None:
    repo = FakeRepo()
    await investigated(repo)
    v = view(repo, lang)
    text = clean(v)
    zh = lang == "zh-CN"
    checked_zh, rule_zh, checked_en, rule_en = CATEGORY_EXPLANATIONS["pricing_fees"]
    assert v.stage == "open"
    assert v.findings[0] == ("经核实，您反映的问题部分属实。" if zh else "We checked, and what you told us is partly right.")
    assert (checked_zh if zh else checked_en) in v.findings
    assert any(rule_zh in f if zh else rule_en in f for f in v.findings)
    assert ("收费流水：记录证实了您的说法" if zh else "Fee ledger: the records confirm what you said") in text
    assert ("提醒短信未送达" if zh else "reminder text did not arrive") in text
    assert ("合同约定" if zh else "your contract") in text
    # the deadline moved from 16 Dec to the 30-day tier (31 Dec 2026), told with its reason
    assert len(v.deadline_changes) == 1
    change = v.deadline_changes[0]
    if zh:
        assert "2026年12月31日（北京时间）当日24时前" in change and "较为复杂" in change and "多个系统" in change
        assert "2026年12月31日" in v.deadline_text
    else:
        assert "the end of 31 December 2026" in change and "complex" in change and "several systems" in change
    assert change in text


@pytest.mark.parametrize("lang", LANGS)
async def test_an_offer_reads_as_what_changes_how_much_and_by_when(lang: str) -> None:
    repo = FakeRepo()
    await investigated(repo)
    # above the usual range of like cases: staff see "needs a written justification", the customer does not
    await offered(repo, [Refund(amount=Decimal("2000"))], justification="客户困难，已核实收入证明材料")
    assert repo.cases["K1"].offers[0].fairness.flagged  # type: ignore[union-attr]
    v = view(repo, lang)
    clean(v)
    [o] = v.open_offers
    assert not o.replaces_earlier
    if lang == "zh-CN":
        assert "退款 2000 元" in o.description and "5 日内" in o.description and "减免及补偿合计 2000.00 元" in o.description
        assert o.comparison and "类似的已和解案件" in o.comparison
        assert any(s.text.startswith("我们向您提出了方案：退款 2000 元") for s in v.timeline)
    else:
        assert "Refund CNY 2000" in o.description and "within 5 days" in o.description
        assert o.comparison and "similar settled cases" in o.comparison
        assert any(s.text.startswith("We made you an offer: Refund CNY 2000") for s in v.timeline)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_replaced_offer_says_it_replaces_the_earlier_one(lang: str) -> None:
    repo = FakeRepo()
    await investigated(repo)
    await offered(repo, [FeeWaiver(fee="late_fee", fee_amount=Decimal("500"), waiver_pct=Decimal("20"))])
    await offered(repo, [FeeWaiver(fee="late_fee", fee_amount=Decimal("500"), waiver_pct=Decimal("40"))],
                  at=NOW + timedelta(hours=2), final=True)
    v = view(repo, lang)
    text = clean(v)
    [o] = v.open_offers
    assert o.replaces_earlier and o.final
    if lang == "zh-CN":
        assert "取代我们于 2026年12月4日 10:00（北京时间） 提出的方案" in o.description
        assert "我们的最终方案" in o.description and "减免滞纳金 200.00 元（40%）" in o.description
        assert "取代" in text.split("我们向您提出了最终方案")[1]
    else:
        assert "replaces the one we made on 4 December 2026, 10:00 Beijing time" in o.description
        assert "Our final offer" in o.description


@pytest.mark.parametrize("lang", LANGS)
async def test_the_agreement_names_both_parties_in_beijing_time(lang: str) -> None:
    repo = FakeRepo()
    await agreed(repo)
    v = view(repo, lang)
    clean(v)
    assert v.stage == "agreed" and v.deadline_text == "" and v.agreement_text
    if lang == "zh-CN":
        assert "示例消费金融" in v.agreement_text and "张*（您）" in v.agreement_text
        assert "2026年12月4日 11:00（北京时间）" in v.agreement_text
        assert "逐项办理" in v.next_step
    else:
        assert "Example Finance" in v.agreement_text and "张* (you)" in v.agreement_text
        assert "4 December 2026, 11:00 Beijing time" in v.agreement_text


@pytest.mark.parametrize("lang", LANGS)
async def test_executed_shows_each_step_done_then_closed(lang: str) -> None:
    repo = FakeRepo()
    await agreed(repo)
    agreement_id = repo.cases["K1"].agreement.agreement_id  # type: ignore[union-attr]
    ex = Envelope.wrap(SettlementExecuted(case_number="TS-K1", agreement_id=agreement_id), case_id="K1",
                       producer="followup", occurred_at=NOW + timedelta(days=1))
    assert await handlers.record_execution(ex, repo=repo)  # type: ignore[arg-type]
    assert not await handlers.record_execution(ex, repo=repo)  # type: ignore[arg-type]  # redelivery
    v = view(repo, lang)
    clean(v)
    assert v.stage == "executed"
    steps = [s.text for s in v.timeline]
    assert ("已完成：减免滞纳金 200.00 元（40%），原金额 500 元。" if lang == "zh-CN"
            else "Done: Waive CNY 200.00 (40%) of the late fee of CNY 500.") in steps
    assert ("回访" if lang == "zh-CN" else "call you") in v.next_step
    closed = Envelope.wrap(CaseClosed(case_number="TS-K1", outcome="resolved"), case_id="K1",
                           producer="followup", occurred_at=NOW + timedelta(days=2))
    assert await handlers.record_closure(closed, repo=repo)  # type: ignore[arg-type]
    v = view(repo, lang)
    clean(v)
    assert v.stage == "closed"
    assert v.status_text == ("您的案件已办结。" if lang == "zh-CN" else "Your case is closed.")
    assert v.timeline[-1].text == ("案件已办结。" if lang == "zh-CN" else "The case was closed.")


@pytest.mark.parametrize("lang", LANGS)
async def test_escalated_says_where_to_and_what_happens_next(lang: str) -> None:
    repo = FakeRepo()
    await investigated(repo)
    await handlers.escalate("K1", target="mediation", reason="客户要求调解", p=CUST, expected_version=None,
                            repo=repo, settings=SETTINGS, now=NOW)
    v = view(repo, lang)
    clean(v)
    assert v.stage == "escalated"
    if lang == "zh-CN":
        assert "调解" in v.status_text and "调解员会联系您" in v.next_step and "卷宗" in v.next_step
    else:
        assert "mediation" in v.status_text and "mediator will contact you" in v.next_step


async def test_an_unknown_case_ignores_followup_events() -> None:
    repo = FakeRepo()
    ex = Envelope.wrap(SettlementExecuted(case_number="TS-X", agreement_id="AG"), case_id="X", producer="followup")
    assert not await handlers.record_execution(ex, repo=repo)  # type: ignore[arg-type]
    assert repo.cases == {}


def test_every_category_has_an_explanation_in_both_languages() -> None:
    assert set(CATEGORY_EXPLANATIONS) == {c.value for c in Category}
    for checked_zh, rule_zh, checked_en, rule_en in CATEGORY_EXPLANATIONS.values():
        assert checked_zh and rule_zh and checked_en and rule_en
        assert "第" not in rule_zh, "no article numbers: general and correct"
    assert isinstance(Workspace(case_id="x").deadline_changes, list)
