"""Each step of the agreement and each instalment in the customer's view (issue 12: "each
execution step → instalment progress"), from follow-up's ``execution.progressed``, in zh-CN
and English; recorded once however often the event comes.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.negotiation import handlers
from services.negotiation.models import FeeWaiver, InstalmentPlanTerm
from shared.clock import beijing_day
from shared.contracts.envelope import Envelope
from shared.contracts.followup import ExecutionProgressed, SettlementExecuted
from tests.unit.negotiation.fakes import FakeRepo
from tests.unit.negotiation.test_customer_view import (
    CUST,
    LANGS,
    NOW,
    clean,
    investigated,
    offered,
    view,
)

FIRST_DUE = beijing_day(NOW) + timedelta(days=30)  # relative to the handlers' injected clock


async def agreed_with_plan(repo: FakeRepo) -> tuple[str, list[date]]:
    """An agreement of a fee waiver and a 3-month plan of 900.00; its id and due days."""
    await investigated(repo)
    oid = await offered(repo, [
        FeeWaiver(fee="late_fee", fee_amount=Decimal("500"), waiver_pct=Decimal("40")),
        InstalmentPlanTerm(amount=Decimal("900"), months=3, first_due_date=FIRST_DUE),
    ])
    await handlers.accept_offer("K1", oid, channel="in_app", p=CUST, expected_version=None, repo=repo,
                                now=NOW + timedelta(hours=1))
    agreement = repo.cases["K1"].agreement
    assert agreement is not None
    plan = agreement.terms[1]
    assert isinstance(plan, InstalmentPlanTerm)
    return agreement.agreement_id, [row.due_date for row in plan.schedule]


def progress(agreement_id: str, step_id: str, outcome: str, days: float, **kw: Any) -> Envelope[ExecutionProgressed]:
    owner = "customer" if "-i" in step_id else "institution"
    return Envelope.wrap(ExecutionProgressed(
        case_number="TS-K1", agreement_id=agreement_id, step_id=step_id, owner=owner, outcome=outcome,
        kind="instalment" if owner == "customer" else kw.pop("kind", "fee_waiver"), instalments_total=3, **kw,
    ), case_id="K1", producer="followup", occurred_at=NOW + timedelta(days=days))




@pytest.mark.parametrize("lang", LANGS)
async def test_each_step_and_instalment_shows_in_the_customers_view(lang: str) -> None:
    repo = FakeRepo()
    agreement_id, due_days = await agreed_with_plan(repo)

    async def record(env: Envelope[Any]) -> bool:
        return await handlers.record_progress(env, repo=repo)  # type: ignore[arg-type]

    zh = lang == "zh-CN"

    # the fee waiver booked: shown at once, as the agreed term reads
    waiver = progress(agreement_id, "s1", "done", 1, title_zh="登记减免滞纳金/罚息", title_en="book the fee waiver")
    assert await record(waiver)
    assert not await record(waiver)  # a redelivery changes nothing
    steps = [s.text for s in view(repo, lang).timeline]
    assert ("已完成：减免滞纳金 200.00 元（40%），原金额 500 元。" if zh
            else "Done: Waive CNY 200.00 (40%) of the late fee of CNY 500.") in steps
    # an institution step past due is supervision's business, not a line for the customer
    assert await record(progress(agreement_id, "s2", "overdue", 3, kind="instalment_plan"))
    assert len(view(repo, lang).timeline) == len(steps)
    assert await record(progress(agreement_id, "s2", "done", 4, kind="instalment_plan"))
    executed = Envelope.wrap(SettlementExecuted(case_number="TS-K1", agreement_id=agreement_id), case_id="K1",
                             producer="followup", occurred_at=NOW + timedelta(days=4))
    assert await handlers.record_execution(executed, repo=repo)  # type: ignore[arg-type]
    v = clean_view(repo, lang)
    steps = [s.text for s in v.timeline]
    # each term once: the waiver at its own time, not again when everything was executed
    assert sum("200.00" in s and s.startswith(("已完成", "Done")) for s in steps) == 1, steps
    assert v.stage == "executed"
    # the next step names the next instalment, its amount and its day
    first_day = (f"{due_days[0].year}年{due_days[0].month}月{due_days[0].day}日" if zh
                 else f"{due_days[0].day} {due_days[0]:%B %Y}")
    assert (f"您还有 3 期分期待还：下一期（第 1 期）300.00 元，请于 {first_day} 前还款" if zh
            else f"3 instalments are still to pay: the next (instalment 1) is CNY 300.00, due by {first_day}") \
        in v.next_step

    # instalment 1 paid; instalment 2 missed, then paid late; instalment 3 paid
    money = {"amount": Decimal("300.00")}
    assert await record(progress(agreement_id, "s2-i1", "paid", 30, instalment_number=1, due_date=due_days[0],
                                 instalments_paid=1, **money))
    missed = progress(agreement_id, "s2-i2", "missed", 62, instalment_number=2, due_date=due_days[1],
                      instalments_paid=1, instalments_missed=1, **money)
    assert await record(missed)
    # the same outcome of the same step again, under another event id: still once
    again = progress(agreement_id, "s2-i2", "missed", 63, instalment_number=2, due_date=due_days[1],
                     instalments_paid=1, instalments_missed=1, **money)
    assert not await record(again)
    v = clean_view(repo, lang)
    second_day = (f"{due_days[1].year}年{due_days[1].month}月{due_days[1].day}日" if zh
                  else f"{due_days[1].day} {due_days[1]:%B %Y}")
    steps = [s.text for s in v.timeline]
    assert (f"我们已收到您的第 1 期还款 300.00 元（应还日 {first_day}）。已还 1/3 期，还有 2 期待还。" if zh
            else f"We received instalment 1 of CNY 300.00 (due {first_day}). 1 of 3 paid; 2 still to pay.") in steps
    assert (f"第 2 期还款 300.00 元（应还日 {second_day}）已到期，我们尚未收到。" if zh
            else f"Instalment 2 of CNY 300.00 (due {second_day}) is past due and we have not received it.") \
        in "\n".join(steps)
    assert ("下一期（第 2 期）" if zh else "the next (instalment 2)") in v.next_step
    assert await record(progress(agreement_id, "s2-i2", "paid", 64, instalment_number=2, due_date=due_days[1],
                                 instalments_paid=2, **money))
    assert await record(progress(agreement_id, "s2-i3", "paid", 90, instalment_number=3, due_date=due_days[2],
                                 instalments_paid=3, **money))
    v = clean_view(repo, lang)
    assert v.timeline[-1].text.endswith("已还 3/3 期，全部分期已还清。" if zh else "3 of 3 paid; Every instalment is paid.")
    # everything paid: the next step is the callback again
    assert ("回访" if zh else "call you") in v.next_step
    # the order of the timeline is the order things happened
    assert [s.at for s in v.timeline] == sorted(s.at for s in v.timeline)


def clean_view(repo: FakeRepo, lang: str) -> Any:
    v = view(repo, lang)
    clean(v)
    return v


async def test_progress_for_a_case_negotiation_does_not_know_is_ignored() -> None:
    repo = FakeRepo()
    env = progress("AG", "s2-i1", "paid", 1, instalment_number=1)
    assert not await handlers.record_progress(env, repo=repo)  # type: ignore[arg-type]
    assert repo.cases == {}
