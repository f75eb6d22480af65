"""Each step and each instalment reaches the customer's view, on the real stack (issue 12:
"each execution step → instalment progress").

Negotiation (worker and API) and follow-up (worker and API) run as processes on Kafka and
FerretDB. A case is agreed through negotiation's API with a fee waiver and a 2-month plan;
follow-up runs on the project's injected clock (``PARLEY_CLOCK_START``) 40 days ahead, so its
sweep finds the first instalment (due in 30 days) missed. Staff then book the steps and the
instalments; follow-up publishes ``execution.progressed`` for each, and the customer reads
each one in ``GET /customer/cases/{id}``, zh-CN and English. A redelivered event changes
nothing.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.clock import AcceleratedClock, now
from shared.settings import CommonSettings
from tests.integration.followup.support import followup_stack
from tests.integration.negotiation.support import (
    Caller,
    completed,
    events,
    negotiation_stack,
    publish,
    registered,
    service_settings,
    wait_for_case,
)
from tests.support.dates import today
from tests.support.eventually import eventually
from tests.support.tokens import bearer

pytestmark = pytest.mark.integration

OPS = bearer("ops", sub="ops1")
EN = {"Accept-Language": "en"}


async def _complete(base: str, case: str, step: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30, headers=OPS) as http:
        resp = await http.post(f"{base}/executions/{case}/steps/{step}/complete", json={"evidence_ref": f"REF-{step}"})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def _timeline(view: dict[str, Any]) -> list[str]:
    return [s["text"] for s in view["timeline"]]


async def test_each_step_and_instalment_reaches_the_customers_view_in_both_languages(
    settings: CommonSettings, tmp_path: Path,
) -> None:
    ns = service_settings(settings)
    case, path = "CASE-P1", "/customer/cases/CASE-P1"
    first_due = today() + timedelta(days=30)
    # follow-up's business time runs 40 days ahead (worker and API on one clock: the same anchor),
    # so the first instalment is past due for it
    ahead = AcceleratedClock(now() + timedelta(days=40), 1)
    with negotiation_stack(settings, tmp_path) as base, \
         followup_stack(settings, tmp_path, PARLEY_FOLLOWUP_SWEEP_INTERVAL_S="1", **ahead.env()) as fu:
        async with Caller(base, ns, sub="lead1", role="team_lead", team="t1") as lead:
            resp = await lead.put("/agents/a1", json={
                "agent_id": "a1", "team": "t1", "role": "agent", "categories": ["pricing_fees"],
                "languages": ["zh-CN", "en"], "max_load": 10})
            assert resp.status_code == 200, resp.text
        reg = registered(case, "cust-P")
        await publish(settings, ("complaint.registered", case, reg.to_bytes()),
                      ("investigation.completed", case, completed(case, cause=reg)))
        async with Caller(base, ns, sub="a1", role="agent", team="t1") as a1, \
                Caller(base, ns, sub="cust-P", role="customer", customer_id="cust-P") as cust:
            await wait_for_case(a1, f"/cases/{case}")
            resp = await a1.post(f"/cases/{case}/offers", json={
                "terms": [{"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "500.00", "waiver_pct": "40"},
                          {"kind": "instalment_plan", "amount": "600.00", "months": 2,
                           "first_due_date": first_due.isoformat(), "annual_rate_pct": "0"}],
                "reason": "提醒短信未送达，部分减免滞纳金并分期",
                "justification": "提醒短信未送达系我方责任，减免比例参照政策手册"})
            assert resp.status_code == 201, resp.text
            offer = resp.json()["offer"]
            second_due = offer["terms"][1]["schedule"][1]["due_date"]
            resp = await cust.post(f"{path}/offers/{offer['offer_id']}/accept", json={})
            assert resp.status_code == 200, resp.text

            # follow-up plans it; its sweep finds instalment 1 missed: the customer reads it
            zh_day = f"{first_due.year}年{first_due.month}月{first_due.day}日"
            missed_zh = f"第 1 期还款 300.00 元（应还日 {zh_day}）已到期，我们尚未收到。"
            view = (await eventually(lambda: cust.get(path),
                                     until=lambda r: any(missed_zh in t for t in _timeline(r.json())),
                                     what="the missed instalment in the customer's view", timeout=90)).json()
            view_en = (await cust.get(path, headers=EN)).json()
            assert any(t.startswith(f"Instalment 1 of CNY 300.00 (due {first_due.day} {first_due:%B %Y}) is past due")
                       for t in _timeline(view_en)), _timeline(view_en)

            # the institution's part: each term done shows; executed, the next step names the next instalment
            for step in ("s1", "s2"):
                await _complete(fu, case, step)
            view = (await eventually(lambda: cust.get(path),
                                     until=lambda r: r.json()["stage"] == "executed",
                                     what="the executed stage", timeout=60)).json()
            steps = _timeline(view)
            assert sum(t.startswith("已完成：减免滞纳金 200.00 元") for t in steps) == 1, steps
            assert any(t.startswith("已完成：600.00 元分 2 期偿还") for t in steps), steps
            assert "您还有 2 期分期待还：下一期（第 1 期）300.00 元" in view["next_step"]
            view_en = (await cust.get(path, headers=EN)).json()
            assert "2 instalments are still to pay: the next (instalment 1) is CNY 300.00" in view_en["next_step"]

            # instalment 1 paid late, a redelivery of an earlier event, then instalment 2 paid
            await _complete(fu, case, "s2-i1")
            progressed = await events(settings, "execution.progressed", case, 4, timeout=60)
            assert [(e["payload"]["step_id"], e["payload"]["outcome"]) for e in progressed] == [
                ("s2-i1", "missed"), ("s1", "done"), ("s2", "done"), ("s2-i1", "paid")]
            paid = progressed[3]["payload"]
            assert (paid["instalments_total"], paid["instalments_paid"], paid["instalments_missed"]) == (2, 1, 0)
            assert paid["amount"] == "300.00" and paid["due_date"] == first_due.isoformat()
            await publish(settings, ("execution.progressed", case, _bytes(progressed[3])))
            await _complete(fu, case, "s2-i2")
            # the last instalment's line comes after the redelivered event on the same partition
            view = (await eventually(lambda: cust.get(path),
                                     until=lambda r: any("已还 2/2 期" in t for t in _timeline(r.json())),
                                     what="the last instalment in the customer's view", timeout=60)).json()
            steps = _timeline(view)
            assert sum("我们已收到您的第 1 期还款 300.00 元" in t for t in steps) == 1, steps
            assert f"我们已收到您的第 1 期还款 300.00 元（应还日 {zh_day}）。已还 1/2 期，还有 1 期待还。" in steps
            assert steps[-1].startswith("我们已收到您的第 2 期还款 300.00 元") and steps[-1].endswith("全部分期已还清。")
            assert "回访" in view["next_step"]
            view_en = (await cust.get(path, headers=EN)).json()
            steps_en = _timeline(view_en)
            assert (f"We received instalment 2 of CNY 300.00 (due {_en_day(second_due)}). "
                    "2 of 2 paid; Every instalment is paid.") in steps_en, steps_en
            assert not any(("应还" in t or "已完成" in t) for t in steps_en)


def _bytes(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


def _en_day(iso: str) -> str:
    d = date.fromisoformat(iso)
    return f"{d.day} {d:%B %Y}"
