"""Follow-up that follows up, on the real stack (Kafka, FerretDB, worker and API processes).

1. A plan with a missed instalment: the sweep raises ``instalment_missed`` and reminds the
   customer; the case stays ``monitoring`` after execution and after a satisfied callback,
   and closes only when the last instalment is paid; every change is on follow-up's audit
   chain, which verifies.
2. A dissatisfied callback: follow-up publishes ``case.reopened``; negotiation reopens the
   workspace with the customer's reasons, gives it to another agent than the one who
   negotiated, and tells the customer; both services' audit chains record it. The new agent's
   agreement then replaces the plan in follow-up.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.audit import MongoChainStore, verify
from shared.clock import beijing_day
from shared.kafka import Publisher, ensure_topics
from shared.mongo import make_client, service_database
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
from tests.support.events import agreed
from tests.support.eventually import eventually
from tests.support.kafka import read_all
from tests.support.tokens import bearer

pytestmark = pytest.mark.integration

OPS = bearer("ops", sub="ops1")


async def _call(method: str, url: str, body: Any = None, headers: dict[str, str] = OPS) -> tuple[int, Any]:
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        resp = await http.request(method, url, json=body)
    return resp.status_code, resp.json()


async def _chain(settings: CommonSettings, service: str) -> tuple[list[dict[str, Any]], bool]:
    """The service's audit chain records and whether it verifies."""
    client = make_client(settings.mongo)
    try:
        store = MongoChainStore(service_database(client, settings.mongo, service))
        records, seq = [], 1
        while (doc := await store.get(seq)) is not None:
            records.append(doc)
            seq += 1
        return records, (await verify(store)).intact
    finally:
        await client.close()


def _plan_with_a_missed_instalment(case_id: str) -> Any:
    """A fee waiver and a two-instalment plan whose first instalment was due three days ago."""
    today = beijing_day(datetime.now(UTC))
    past, later = today - timedelta(days=3), today + timedelta(days=27)
    return agreed(case_id, customer_id="cust-m1", terms=[
        {"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "80.00", "waiver_amount": "80.00"},
        {"kind": "instalment_plan", "amount": "900.00", "months": 2, "first_due_date": past.isoformat(),
         "schedule": [
             {"number": 1, "due_date": past.isoformat(), "principal": "600.00", "interest": "0.00",
              "payment": "600.00", "balance_after": "300.00"},
             {"number": 2, "due_date": later.isoformat(), "principal": "300.00", "interest": "0.00",
              "payment": "300.00", "balance_after": "0.00"},
         ],
         "total_interest": "0.00", "total_payable": "900.00"},
    ])


async def _notices(settings: CommonSettings, case_id: str, wanted: Any) -> list[dict[str, Any]]:
    """The customer notices of a case, read until one of them is ``wanted``."""
    def mine(records: list[Any]) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in records if r.key == case_id.encode()]

    return mine(await read_all(settings, "customer.notified", until=lambda rs: any(wanted(n) for n in mine(rs)),
                               timeout=90))


async def test_missed_instalment_alerts_and_the_case_stays_monitoring_until_the_last_is_paid(
    settings: CommonSettings, tmp_path: Path,
) -> None:
    await ensure_topics(settings.kafka)
    case = "case-m1"
    with followup_stack(settings, tmp_path, PARLEY_FOLLOWUP_SWEEP_INTERVAL_S="1") as base:
        async with Publisher(settings.kafka) as publisher:
            await publisher.publish(_plan_with_a_missed_instalment(case))

        # the sweep flags the instalment due three days ago: an alert for supervision, a reminder for the customer
        missed = await events(settings, "supervision.alert", case, 1, timeout=90)  # the waiver is due later
        assert missed[0]["payload"]["kind"] == "instalment_missed", missed
        assert "第 1 期还款" in missed[0]["payload"]["message"]
        [reminder] = [n for n in await _notices(settings, case, lambda n: n["payload"]["kind"] == "reminder")
                      if n["payload"]["kind"] == "reminder"]
        assert "600.00" in reminder["payload"]["body"] and reminder["causation_id"] == missed[0]["event_id"]

        status, execution = await _call("GET", f"{base}/executions/{case}")
        assert status == 200 and [s["status"] for s in execution["steps"]] == ["pending", "pending", "missed", "pending"]

        # the institution's part done: monitoring, not executed-and-forgotten
        for step in ("s1", "s2"):
            status, execution = await _call("POST", f"{base}/executions/{case}/steps/{step}/complete",
                                            {"evidence_ref": f"REF-{step}"})
            assert status == 200, execution
        assert execution["status"] == "monitoring"
        status, listed = await _call("GET", f"{base}/executions?status=monitoring")
        assert status == 200 and [e["case_id"] for e in listed] == [case]
        # satisfied at the callback, but two instalments are open: still monitoring, not closed
        status, execution = await _call("POST", f"{base}/executions/{case}/callback",
                                        {"satisfied": True, "score": 5}, headers=bearer("agent", sub="cs7"))
        assert status == 200 and execution["status"] == "monitoring" and execution["callback"]["by"] == "cs7"
        # the missed instalment paid late, then the last one: closed
        status, execution = await _call("POST", f"{base}/executions/{case}/steps/s2-i1/complete", {"evidence_ref": "PAY-1"})
        assert status == 200 and execution["status"] == "monitoring"
        status, execution = await _call("POST", f"{base}/executions/{case}/steps/s2-i2/complete", {"evidence_ref": "PAY-2"})
        assert status == 200 and execution["status"] == "closed"

    [closed] = await events(settings, "case.closed", case, 1)
    assert closed["payload"]["outcome"] == "resolved"
    [done] = await events(settings, "followup.completed", case, 1)
    assert done["payload"]["satisfied"] is True and done["payload"]["score"] == 5

    records, intact = await _chain(settings, "followup")
    assert intact
    mine = [(r["who"], r["role"], r["action"], r["details"].get("status")) for r in records if r["case_id"] == case]
    assert ("followup-worker", "system", "steps_past_due", "executing") in mine
    assert [m for m in mine if m[0] != "followup-worker"] == [
        ("ops1", "ops", "step_completed", "executing"), ("ops1", "ops", "step_completed", "monitoring"),
        ("cs7", "agent", "callback_recorded", "monitoring"),
        ("ops1", "ops", "step_completed", "monitoring"), ("ops1", "ops", "step_completed", "closed"),
    ]


async def test_a_dissatisfied_callback_reopens_the_negotiation_with_another_agent(
    settings: CommonSettings, tmp_path: Path,
) -> None:
    ns = service_settings(settings)
    case = "CASE-R1"
    with negotiation_stack(settings, tmp_path) as base, \
         followup_stack(settings, tmp_path, PARLEY_FOLLOWUP_SWEEP_INTERVAL_S="1") as fu:
        async with Caller(base, ns, sub="lead1", role="team_lead", team="t1") as lead:
            for agent_id in ("a1", "a2"):
                resp = await lead.put(f"/agents/{agent_id}", json={
                    "agent_id": agent_id, "team": "t1", "role": "agent", "categories": ["pricing_fees"],
                    "languages": ["zh-CN", "en"], "max_load": 10})
                assert resp.status_code == 200, resp.text
        reg = registered(case, "cust-R")
        await publish(settings, ("complaint.registered", case, reg.to_bytes()),
                      ("investigation.completed", case, completed(case, cause=reg)))
        async with Caller(base, ns, sub="a1", role="agent", team="t1") as a1, \
                Caller(base, ns, sub="cust-R", role="customer", customer_id="cust-R") as cust:
            ws = await wait_for_case(a1, f"/cases/{case}")
            negotiator = ws["assigned_agent"]
        async with Caller(base, ns, sub=negotiator, role="agent", team="t1") as agent, \
                Caller(base, ns, sub="cust-R", role="customer", customer_id="cust-R") as cust:
            resp = await agent.post(f"/cases/{case}/offers", json={
                "terms": [{"kind": "refund", "amount": "900.00", "reason": "短信提醒未送达"}],
                "reason": "退还部分滞纳金", "justification": "提醒短信未送达系我方责任，按政策退还"})
            assert resp.status_code == 201, resp.text
            offer_id = resp.json()["offer"]["offer_id"]
            resp = await cust.post(f"/customer/cases/{case}/offers/{offer_id}/accept", json={})
            assert resp.status_code == 200, resp.text

            # follow-up plans it from settlement.agreed, the refund is paid, the customer is not satisfied
            status, execution = await eventually(lambda: _call("GET", f"{fu}/executions/{case}"),
                                                 until=lambda answer: answer[0] == 200, what="the execution plan",
                                                 timeout=60)
            status, execution = await _call("POST", f"{fu}/executions/{case}/steps/s1/complete", {"evidence_ref": "RF-1"})
            assert status == 200 and execution["status"] == "executed"
            status, execution = await _call("POST", f"{fu}/executions/{case}/callback", {
                "satisfied": False, "score": 2, "comment": "退款金额不对，滞纳金应全部退还"})
            assert status == 200 and execution["status"] == "reopened"

            [reopened] = await events(settings, "case.reopened", case, 1)
            assert reopened["payload"]["reasons"] == "退款金额不对，滞纳金应全部退还"
            assert reopened["payload"]["score"] == 2

            async with Caller(base, ns, sub="boss", role="manager") as manager:
                ws = await eventually(lambda: manager.get(f"/cases/{case}"),
                                      until=lambda r: r.status_code == 200 and r.json()["status"] == "open",
                                      what="the reopened workspace", timeout=60)
                ws = ws.json()
            assert ws["assigned_agent"] in ("a1", "a2") and ws["assigned_agent"] != negotiator
            assert ws["reopenings"][0]["previous_agent"] == negotiator
            assert "滞纳金应全部退还" in ws["messages"][-1]["body"]
            assert datetime.fromisoformat(ws["deadline_at"].replace("Z", "+00:00")) > datetime.now(UTC)
            # the customer is told, and sees the case open again
            notices = await _notices(settings, case, lambda n: "重新打开" in n["payload"]["body"])
            told = [n for n in notices if n["producer"] == "negotiation" and "重新打开" in n["payload"]["body"]]
            assert len(told) == 1, [n["payload"]["subject"] for n in notices]
            view = (await cust.get(f"/customer/cases/{case}")).json()
            assert view["stage"] == "open"

        # the new agent agrees a new settlement; follow-up replaces the reopened case's plan with it
        async with Caller(base, ns, sub=ws["assigned_agent"], role="agent", team="t1") as second, \
                Caller(base, ns, sub="cust-R", role="customer", customer_id="cust-R") as cust:
            resp = await second.post(f"/cases/{case}/offers", json={
                "terms": [{"kind": "refund", "amount": "1300.00", "reason": "全部退还滞纳金和罚息"}],
                "reason": "回访不满意后重新协商", "justification": "客户回访不满意，复核后全部退还"})
            assert resp.status_code == 201, resp.text
            offer = resp.json()["offer"]
            assert offer["status"] == "open", offer
            resp = await cust.post(f"/customer/cases/{case}/offers/{offer['offer_id']}/accept", json={})
            assert resp.status_code == 200, resp.text
            status, execution = await eventually(
                lambda: _call("GET", f"{fu}/executions/{case}"),
                until=lambda answer: answer[0] == 200 and answer[1]["status"] == "executing",
                what="the replaced plan", timeout=60)
            assert execution["agreement_id"] == f"AG-{case}-{offer['offer_id']}"
            assert execution["previous_agreement_ids"] == [f"AG-{case}-{offer_id}"]
            assert [(s["kind"], s["amount"]) for s in execution["steps"]] == [("refund", "1300.00")]

    follow_chain, intact = await _chain(settings, "followup")
    assert intact
    actions = [(r["who"], r["action"]) for r in follow_chain if r["case_id"] == case]
    assert ("ops1", "callback_recorded") in actions and ("ops1", "case_reopened") in actions
    neg_chain, intact = await _chain(settings, "negotiation")
    assert intact
    [rec] = [r for r in neg_chain if r["action"] == "case_reopened"]
    assert rec["case_id"] == case and rec["who"] == "followup" and rec["role"] == "system"
    assert rec["details"]["previous_agent"] == negotiator and rec["details"]["agent"] != negotiator
    assert json.dumps(rec["details"]).find("滞纳金") == -1  # the customer's words stay out of the chain
