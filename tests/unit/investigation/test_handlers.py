"""Investigation's handlers with in-memory fakes: findings, idempotence, complexity, pauses."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from services.investigation import handlers
from services.investigation.claims import read_claims
from services.investigation.errors import RecordsUnavailable
from services.investigation.facts import Facts
from services.investigation.records import draw, product_of, synthesize
from services.investigation.settings import Settings
from shared.clock import add_pause, beijing_day, due
from shared.contracts.investigation import InvestigationCompleted
from shared.errors import InvalidMessage
from shared.kafka.consume import Incoming, consume_one
from shared.topics import decode
from tests.unit.investigation.fakes import (
    RECEIVED,
    FakeCategoriser,
    FakeRecords,
    FakeRepo,
    registered,
    simulated,
)

SETTINGS = Settings(environment="test")
BEIJING = ZoneInfo("Asia/Shanghai")
NOW = RECEIVED + timedelta(days=1)

#: Real complaint texts (黑猫投诉, complaints-zh/dev.csv), shortened.
REAL = [
    "本人于2018年 5月5日在捷信消费金融公司借款本金70000元，分期45期，每月还款金额2786.51元，已还22期，该平台利息超过国家规定的利息“国家规定个人借款不能超过年利率百分之24”。",
    "2、2022年12月，被邮储银行信用卡委托的第三方暴力催收，短信电话，骚扰我的同事，亲戚，朋友，并且告知他们我逾期这一事实，对我造成了恶劣的影响",
    "医通健康服务，我不需要，也没定购，没经本人同意银行擅自扣费，要求退费取消定购！",
    "新网银行好人贷利息罚息太高。多次打电话给新网银行客服协商还款。客服态度太差。无法沟通。客服一直强调按照借款金额还款。利息罚息不能减免。",
    "我与2018年9月10号由南阳办捷信业务人员在手机上申请了四万元贷款   换给我们办业务的人收取五千元砍头息5000千元",
    "因为疫情原因，无力偿还债务，贷款服务里有一个灵活还款服务包，可以延期还款，于是想找客服办理，却联系不上客服，导致逾期，现在天天都是还款电话。",
]


async def _run(env: Any, repo: FakeRepo, records: FakeRecords, cat: FakeCategoriser | None = None, now: Any = NOW) -> str:
    return await handlers.on_registered(env, categorise=cat or FakeCategoriser(), records=simulated(records), repo=repo,
                                        settings=SETTINGS, now=now)


async def test_a_complaint_is_investigated_once_and_redelivery_changes_nothing() -> None:
    repo, records, cat = FakeRepo(), FakeRecords(), FakeCategoriser("collection_conduct", 0.83)
    env = registered("case-1", REAL[1])
    assert await _run(env, repo, records, cat) == "investigated"
    [done] = repo.of_type("investigation.completed")
    assert done.case_id == "case-1" and done.causation_id == str(env.event_id)
    p: InvestigationCompleted = done.payload
    assert p.category.value == "collection_conduct" and p.category_confidence == 0.83
    # the (seeded) records bear out the third-party calls but not the abuse: partly substantiated
    outcomes = {e.claim: e.outcome for e in p.evidence if e.claim}
    assert outcomes == {"collection_third_party": "confirmed", "collection_abuse": "contradicted"}
    assert p.finding == "partly_substantiated" and "结论：投诉部分属实" in "".join(p.reasons_zh)
    assert p.evidence and p.facts and p.reasons_zh and p.reasons_en and p.remedy_range is not None
    assert p.reasons[0].startswith(p.reasons_zh[0]) and p.reasons[0].endswith(p.reasons_en[0])
    assert "collection_third_party" in p.claims
    assert p.evidence[0].item == "contact_log" or p.evidence[0].claim is not None
    wire = done.to_bytes().decode()
    assert "138****5678" not in wire and REAL[1][:20] not in wire  # no contact data, no complaint text
    assert decode("investigation.completed", done.to_bytes()).payload == p  # the contract round-trips

    fingerprint = repo.docs["case-1"]["fingerprint"]
    assert await _run(env, repo, records, cat) == "duplicate"
    assert await _run(registered("case-1", REAL[1]).model_copy(update={"event_id": env.event_id}), repo, records, cat) == "duplicate"
    assert len(repo.events) == 1 and records.stores == 1  # a redelivery is classified again, found done
    assert repo.docs["case-1"]["fingerprint"] == fingerprint


async def test_linked_complaints_merge_and_new_facts_reinvestigate() -> None:
    repo, records = FakeRepo(), FakeRecords()
    await _run(registered("case-2", REAL[3], customer_id="c2"), repo, records)
    merged = registered("case-2", "补充：客服还是没回复", customer_id="c2", complaint_id="cmp-2b", role="linked")
    assert await _run(merged, repo, records) == "merged"
    assert repo.docs["case-2"]["complaint_ids"] == ["cmp-case-2", "cmp-2b"]
    assert len(repo.of_type("investigation.completed")) == 1
    new = registered("case-2", "催收一天打了二十多个电话", customer_id="c2", complaint_id="cmp-2c",
                     role="linked", new_facts=True)
    assert await _run(new, repo, records) == "reinvestigated"
    second = repo.of_type("investigation.completed")[-1].payload
    assert second.revision == 2 and second.complaint_ids == ["cmp-case-2", "cmp-2b", "cmp-2c"]
    assert "collection_frequency" in second.claims
    assert not second.hardship
    await _run(registered("case-2h", REAL[5]), repo, records)
    assert repo.of_type("investigation.completed")[-1].payload.hardship  # 疫情 … 无力偿还


async def test_a_large_disputed_amount_makes_a_complex_case_with_30_days() -> None:
    repo, records = FakeRepo(), FakeRecords()
    env = registered("case-3", REAL[0], amount_disputed=Decimal("64089.73"))
    await _run(env, repo, records, FakeCategoriser("pricing_fees", 0.9))
    p = repo.of_type("investigation.completed")[0].payload
    assert p.complex_case and "50000" in p.complexity_reason_zh and "CNY 50000" in p.complexity_reason_en
    # received Mon 12 Oct 2026 10:30 Beijing: 30 days end at 24:00 Beijing on Wed 11 Nov (shared.clock)
    assert p.deadline_at == due(RECEIVED, 30).due_at == datetime(2026, 11, 11, 23, 59, 59, 999999, tzinfo=BEIJING)
    assert p.deadline_tier == 30 and not p.deadline_provisional and p.deadline_extension is None
    simple = registered("case-3b", REAL[2], product=product_of(REAL[2], None))
    await _run(simple, repo, records, FakeCategoriser("pricing_fees", 0.9))
    q = repo.of_type("investigation.completed")[-1].payload
    assert not q.complex_case and q.complexity_reason_zh == "" and q.deadline_tier == 15
    assert q.deadline_at == due(RECEIVED, 15).due_at == datetime(2026, 10, 27, 23, 59, 59, 999999, tzinfo=BEIJING)


async def test_low_confidence_is_complex_too() -> None:
    repo = FakeRepo()
    await _run(registered("case-4", REAL[2]), repo, FakeRecords(), FakeCategoriser("other", 0.21))
    assert repo.of_type("investigation.completed")[0].payload.complex_case


async def test_an_external_appraisal_pauses_the_clock_and_the_sweep_finishes_the_case() -> None:
    repo, records = FakeRepo(), FakeRecords()
    text = "本人从未申请过这笔贷款，身份被冒用，却被上了征信"
    env = registered("case-5", text)
    assert await _run(env, repo, records, FakeCategoriser("other", 0.7)) == "investigated"
    [paused] = repo.of_type("investigation.paused")
    [notice] = repo.of_type("customer.notified")
    assert paused.payload.resumed_at is None and paused.payload.reason_code == "external_appraisal"
    assert notice.payload.kind == "extension" and "鉴定" in notice.payload.body
    assert repo.of_type("investigation.completed") == [] and repo.docs["case-5"]["status"] == "paused"

    doc = await repo.get("case-5")
    assert doc is not None
    early = await handlers.resume_paused(doc, categorise=FakeCategoriser("other", 0.7), records=simulated(records), repo=repo,
                                         settings=SETTINGS, now=NOW)
    assert early is False
    later = RECEIVED + timedelta(days=20)
    assert await handlers.resume_paused(doc, categorise=FakeCategoriser("other", 0.7), records=simulated(records), repo=repo,
                                        settings=SETTINGS, now=later)
    closed = repo.of_type("investigation.paused")[-1].payload
    done = repo.of_type("investigation.completed")[0].payload
    assert closed.pause_id == paused.payload.pause_id and closed.resumed_at is not None
    assert closed.days_excluded == done.paused_days > 0
    # the paused Beijing days are added to the 30-day period (shared.clock.add_pause), not 24 h spans
    pause_days = (beijing_day(closed.resumed_at) - beijing_day(closed.paused_at)).days
    assert done.paused_days == pause_days
    expected = add_pause(due(RECEIVED, 30), closed.paused_at, closed.resumed_at)
    assert done.complex_case and done.deadline_at == expected.due_at and done.deadline_tier == 30
    assert beijing_day(done.deadline_at) >= date(2026, 11, 11) + timedelta(days=pause_days)
    [appraisal] = [e for e in done.evidence if e.item == "external_appraisal"]
    assert appraisal.recorded_at == closed.resumed_at and appraisal.claim == "unauthorised_account"
    again = await repo.get("case-5")
    assert again is not None and again["status"] == "completed"
    events = len(repo.events)
    stale = {**again, "status": "paused"}  # a second sweep that read the case before it was finished
    assert not await handlers.resume_paused(stale, categorise=FakeCategoriser(), records=simulated(records), repo=repo,
                                            settings=SETTINGS, now=later)
    assert len(repo.events) == events


def _facts(*breach_codes: str) -> Facts:
    from shared.contracts.investigation import ComputedFact

    f = Facts()
    f._items = [ComputedFact(code=c, value="1", breach=True) for c in breach_codes]
    return f


def test_the_finding_follows_the_claims_and_the_breaches() -> None:
    assert handlers.decide({"a": "confirmed", "b": "confirmed"}, _facts()) == "substantiated"
    assert handlers.decide({"a": "confirmed", "b": "contradicted"}, _facts()) == "partly_substantiated"
    assert handlers.decide({"a": "confirmed", "b": "not_found"}, _facts()) == "partly_substantiated"
    assert handlers.decide({"a": "contradicted"}, _facts("apr")) == "partly_substantiated"
    assert handlers.decide({"a": "contradicted", "b": "not_found"}, _facts()) == "unsubstantiated"
    assert handlers.decide({}, _facts()) == "unsubstantiated"
    assert handlers.root_cause({"collection_frequency": "confirmed", "excessive_rate": "confirmed"}, _facts()) == "collection_frequency"
    assert handlers.root_cause({"excessive_rate": "contradicted"}, _facts("contacts_off_hours")) == "collection_off_hours"
    assert handlers.root_cause({"excessive_rate": "not_found"}, _facts()) == "insufficient_records"


def test_the_remedy_refunds_what_was_charged_wrongly_and_waives_late_fees() -> None:
    f = Facts(lending=True)
    f.beyond_contract = {"service_fee": Decimal("5000.00")}
    f.charged = {"late_fee": Decimal("120.00"), "penalty_interest": Decimal("80.00")}
    r = handlers.suggest_remedy("substantiated", {"upfront_deduction": "confirmed"}, f, read_claims("砍头息"))
    kinds = {i.kind: i for i in r.items}
    assert kinds["refund"].min == kinds["refund"].max == Decimal("5000.00")
    assert (kinds["fee_waiver"].pct_min, kinds["fee_waiver"].pct_max) == (50, 100)
    assert kinds["fee_waiver"].min == Decimal("100.00") and kinds["fee_waiver"].max == Decimal("200.00")
    assert r.min == Decimal("5100.00") and r.max == Decimal("5200.00")
    f.cost_above_cap, f.cost_above_hard_cap = Decimal("5800.00"), Decimal("5200.00")
    capped = {i.kind: i for i in handlers.suggest_remedy("substantiated", {}, f, read_claims("砍头息")).items}
    assert (capped["interest_reduction"].min, capped["interest_reduction"].max) == (Decimal("200.00"), Decimal("800.00"))
    f.cost_above_cap, f.cost_above_hard_cap = Decimal("2417.17"), Decimal("1213.06")  # all of it is the refund
    assert "interest_reduction" not in {i.kind for i in handlers.suggest_remedy("substantiated", {}, f, read_claims("")).items}
    none = handlers.suggest_remedy("unsubstantiated", {"late_fees": "contradicted"}, f.__class__(), read_claims("罚息高"))
    assert none.items == [] and none.min == none.max == 0 and "解释" in none.text_zh


def test_the_same_complaint_and_records_give_the_same_finding() -> None:
    for i, text in enumerate(REAL):
        reg = registered(f"case-d{i}", text).payload
        results = []
        for _ in range(2):
            recs = synthesize(customer_id=reg.customer_id, case_id=f"case-d{i}", claims=read_claims(text),
                              product=product_of(text, reg.product), received_at=reg.received_at)
            a = handlers.assess(reg, text=text, category="pricing_fees", confidence=0.6, records=recs,
                                settings=SETTINGS, now=NOW)
            results.append(handlers.fingerprint(a))
        assert results[0] == results[1]


def test_the_simulated_records_confirm_contradict_or_lack_claims() -> None:
    seen = {draw(f"cust-{i}", "collection_frequency") for i in range(60)}
    assert seen == {"confirmed", "contradicted", "not_found"}
    outcomes = set()
    for i in range(40):
        text = "催收一天打了二十多个电话，晚上十一点还打，还打给我同事"
        reg = registered(f"case-o{i}", text).payload
        recs = synthesize(customer_id=reg.customer_id, case_id=f"case-o{i}", claims=read_claims(text),
                          product=product_of(text, reg.product), received_at=reg.received_at)
        a = handlers.assess(reg, text=text, category="collection_conduct", confidence=0.9, records=recs,
                            settings=SETTINGS, now=NOW)
        [log_item] = [e for e in a.evidence if e.item == "contact_log"]
        outcomes.add(log_item.outcome)
        over_limit = any(f.code == "contacts_max_per_day" and f.breach for f in a.facts.items())
        assert over_limit == (log_item.outcome == "confirmed")
    assert outcomes == {"confirmed", "contradicted", "not_found"}


async def test_transient_record_failures_are_retried_with_a_bound_then_dead_lettered() -> None:
    class Flaky(FakeRecords):
        def __init__(self, failures: int) -> None:
            super().__init__()
            self.failures = failures

        def _down(self) -> None:
            if self.failures:
                self.failures -= 1
                raise RecordsUnavailable("core banking timed out")

        async def load_many(self, requests: Any) -> Any:
            self._down()
            return await super().load_many(requests)

        async def store_many(self, records: Any) -> Any:
            self._down()
            return await super().store_many(records)

    letters: list[dict[str, Any]] = []

    async def dead_letter(**kw: Any) -> None:
        letters.append(kw)

    async def no_sleep(_: float) -> None:
        return None

    env = registered("case-7", REAL[2])
    for failures, expected in ((2, "handled"), (10, "dead_lettered")):
        repo, store = FakeRepo(), Flaky(failures)

        async def handle(message: Incoming, repo: FakeRepo = repo, store: Flaky = store) -> None:
            e = decode("complaint.registered", message.value)
            await handlers.on_registered(e, categorise=FakeCategoriser(), records=simulated(store), repo=repo,
                                         settings=SETTINGS, now=NOW)

        msg = Incoming("complaint.registered", b"case-7", env.to_bytes(), 0, 1)
        assert await consume_one(msg, handle, dead_letter=dead_letter, max_attempts=4, sleep=no_sleep) == expected
    assert letters and "gave up after 4 attempts" in letters[0]["reason"]


def test_malformed_events_are_invalid_messages() -> None:
    env = registered("case-8", REAL[2])
    data = env.model_dump(mode="json")
    del data["payload"]["customer_id"]
    import json

    try:
        decode("complaint.registered", json.dumps(data).encode())
    except InvalidMessage as exc:
        assert "payload.customer_id" in exc.reason
    else:
        raise AssertionError("a registered event without customer_id was accepted")
