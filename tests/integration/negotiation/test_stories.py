"""Two full stories on the real stack (Kafka, FerretDB, worker and API processes).

1. investigation.completed → offer → counter-offer → offer above authority → approval →
   acceptance → settlement.agreed, with the access refusals along the way.
2. investigation.completed → final offer → rejection → negotiation.failed + case.escalated
   with its dossier; the worker opens the workspace once despite redelivery and dead-letters
   a broken event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.negotiation.models import Workspace
from services.negotiation.repository import Repository
from shared.contracts.common import Category
from shared.contracts.envelope import Envelope
from shared.contracts.negotiation import NegotiationStarted
from shared.mongo import service_database
from shared.settings import CommonSettings
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
from tests.support.dates import end_of_february, next_january_31
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration


async def _directory(base: str, ns: object) -> None:
    async with Caller(base, ns, sub="lead1", role="team_lead", team="t1") as lead:
        for agent_id, extra in (("a1", {}), ("a2", {"conflicted_customer_ids": ["cust-B"]})):
            resp = await lead.put(f"/agents/{agent_id}", json={
                "agent_id": agent_id, "team": "t1", "role": "agent",
                "categories": ["pricing_fees", "collection_conduct"], "languages": ["zh-CN", "en"],
                "max_load": 10, **extra,
            })
            assert resp.status_code == 200, resp.text


async def test_offer_counter_approval_agreement_story(settings: CommonSettings, tmp_path: Path) -> None:
    ns = service_settings(settings)
    case = "CASE-A1"
    with negotiation_stack(settings, tmp_path) as base:
        await _directory(base, ns)
        reg = registered(case, "cust-A")
        await publish(
            settings,
            ("complaint.registered", case, reg.to_bytes()),
            ("investigation.completed", case, completed(case, cause=reg, extras={
                "evidence": [{"item": "fee_ledger", "title_zh": "费用明细", "title_en": "Fee ledger",
                              "source": "billing.fees", "outcome": "confirmed",
                              "detail_zh": "2026-10 滞纳金 500 元", "detail_en": "late fee CNY 500 in 2026-10"}],
                "facts": [{"code": "late_fee_charged", "value": "500.00", "unit": "CNY"}],
                "remedy_range": {"min": "100.00", "max": "1500.00", "text_zh": "部分减免滞纳金"},
                "root_cause_zh": "短信提醒通道故障",
            })),
        )
        async with Caller(base, ns, sub="a1", role="agent", team="t1") as a1, \
                Caller(base, ns, sub="a2", role="agent", team="t1") as a2, \
                Caller(base, ns, sub="lead1", role="team_lead", team="t1") as lead, \
                Caller(base, ns, sub="x9", role="agent", team="t2") as other_team, \
                Caller(base, ns, sub="cust-A", role="customer", customer_id="cust-A") as cust, \
                Caller(base, ns, sub="cust-B", role="customer", customer_id="cust-B") as cust_b:
            ws = await wait_for_case(a1, f"/cases/{case}")
            assert ws["status"] == "open" and ws["assigned_agent"] == "a1" and ws["team"] == "t1"
            assert ws["customer_id"] == "cust-A" and ws["amount_disputed"] == "3000.00"
            assert ws["evidence"][0]["item"] == "fee_ledger" and ws["facts"][0]["value"] == "500.00"
            assert ws["remedy_range"]["max"] == "1500.00"
            assert ws["investigation_details"]["root_cause_zh"] == "短信提醒通道故障"
            assert "滞纳金" in ws["complaint_text"]
            started = await events(settings, "negotiation.started", case, 1)
            assert started[0]["payload"]["agent_id"] == "a1"

            # access: another customer, another team → 404; a2 is not assigned → 403
            assert (await cust_b.get(f"/customer/cases/{case}")).status_code == 404
            assert (await other_team.get(f"/cases/{case}")).status_code == 404
            resp = await a2.post(f"/cases/{case}/messages", json={"body": "hi"})
            assert resp.status_code == 403, resp.text

            resp = await a1.post(f"/cases/{case}/messages", json={
                "body": "电话联系客户，解释滞纳金规则", "direction": "outbound", "channel": "call"})
            assert resp.status_code == 201, resp.text
            version = resp.json()["version"]

            first = {
                "terms": [
                    {"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "500.00", "waiver_pct": "40"},
                    {"kind": "instalment_plan", "amount": "2500.00", "months": 12,
                     "first_due_date": next_january_31().isoformat(), "annual_rate_pct": "0"},
                ],
                "reason": "提醒短信未送达，部分减免滞纳金并分期",
                "justification": "提醒短信未送达系我方责任，减免比例参照政策手册第 3 条",
                "expected_version": version,
            }
            resp = await a1.post(f"/cases/{case}/offers", json=first)
            assert resp.status_code == 201, resp.text
            offer1 = resp.json()["offer"]
            assert offer1["status"] == "open" and offer1["concession"] == "200.00"
            plan = offer1["terms"][1]
            assert len(plan["schedule"]) == 12 and plan["schedule"][1]["due_date"] == end_of_february(
                next_january_31().year).isoformat()
            assert sum(float(r["principal"]) for r in plan["schedule"]) == pytest.approx(2500)
            assert offer1["fairness"]["comparable"] is True

            # the customer sees it in plain words and counters
            view = (await cust.get(f"/customer/cases/{case}")).json()
            assert view["open_offers"][0]["offer_id"] == offer1["offer_id"]
            assert "减免滞纳金" in view["open_offers"][0]["description"]
            assert view["deadline_text"].startswith("我们最迟将于")
            en = (await cust.get(f"/customer/cases/{case}", headers={"Accept-Language": "en"})).json()
            assert "late fee" in en["open_offers"][0]["description"]
            resp = await cust.post(f"/customer/cases/{case}/offers/{offer1['offer_id']}/counter", json={
                "message": "希望全部减免滞纳金并退还罚息",
                "terms": [{"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "500.00", "waiver_pct": "100"},
                          {"kind": "refund", "amount": "800.00"}],
            })
            assert resp.status_code == 201, resp.text
            counter = resp.json()["offer"]
            assert counter["party"] == "customer" and counter["concession"] == "1300.00"

            # answer above the agent's authority (waiver 80% > 50%): waits for the team lead
            ws = (await a1.get(f"/cases/{case}")).json()
            resp = await a1.post(f"/cases/{case}/offers", json={
                "terms": [
                    {"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "500.00", "waiver_pct": "80"},
                    {"kind": "fee_waiver", "fee": "penalty_interest", "fee_amount": "800.00",
                     "waiver_amount": "400.00"},
                    {"kind": "apology", "text": "提醒短信未送达，向您致歉"},
                ],
                "reason": "回应客户还价", "responds_to": counter["offer_id"],
                "justification": "客户还价合理，短信通道故障已核实，按团队主管意见处理",
            }, headers={"If-Match": f'"{ws["version"]}"'})
            assert resp.status_code == 201, resp.text
            offer2 = resp.json()["offer"]
            assert offer2["status"] == "pending_approval"
            assert offer2["authority"]["required_role"] == "team_lead"
            view = (await cust.get(f"/customer/cases/{case}")).json()
            assert view["open_offers"] == [], "an offer awaiting approval is not shown to the customer"
            # beyond authority: the agent cannot approve; the customer cannot accept it
            resp = await a1.post(f"/cases/{case}/offers/{offer2['offer_id']}/approval", json={"decision": "approve"})
            assert resp.status_code == 403 and "team_lead" in resp.json()["detail"]
            resp = await cust.post(f"/customer/cases/{case}/offers/{offer2['offer_id']}/accept", json={})
            assert resp.status_code == 404

            resp = await lead.post(f"/cases/{case}/offers/{offer2['offer_id']}/approval",
                                   json={"decision": "approve", "reason": "同意"})
            assert resp.status_code == 200, resp.text
            assert resp.json()["offer"]["status"] == "open"
            approved = await events(settings, "settlement.approved", case, 1)
            assert approved[0]["payload"]["approver_role"] == "team_lead"

            view = (await cust.get(f"/customer/cases/{case}")).json()
            assert [o["offer_id"] for o in view["open_offers"]] == [offer2["offer_id"]]
            stale = view["version"] - 1
            resp = await cust.post(f"/customer/cases/{case}/offers/{offer2['offer_id']}/accept",
                                   json={"expected_version": stale})
            assert resp.status_code == 409 and "version" in resp.json()["detail"]
            resp = await cust.post(f"/customer/cases/{case}/offers/{offer2['offer_id']}/accept",
                                   json={"expected_version": view["version"], "channel": "in_app"})
            assert resp.status_code == 200, resp.text
            assert resp.json()["status"] == "agreed"

            agreed = await events(settings, "settlement.agreed", case, 1)
            payload = agreed[0]["payload"]
            assert payload["offer_id"] == offer2["offer_id"] and payload["amount"] == "800.00"
            assert payload["accepted_via"] == "in_app" and len(payload["terms"]) == 3
            proposed = await events(settings, "settlement.proposed", case, 2)
            assert [e["payload"]["offer_id"] for e in proposed] == [offer1["offer_id"], offer2["offer_id"]]

            steps = [s["text"] for s in (await cust.get(f"/customer/cases/{case}")).json()["timeline"]]
            # readable steps, no bare offer ids (issue 12)
            assert steps[:2] == [f"我们已受理您的投诉（案件编号 TS-{case}），开始核实。", "我们已完成核实，开始与您协商。"]
            assert steps[2].startswith("我们向您提出了方案：减免滞纳金 200.00 元（40%）")
            assert steps[3].startswith("您对我们的方案（") and steps[3].endswith("提出了意见。")
            assert steps[4].startswith("我们向您提出了方案：") and "取代我们于" in steps[4]
            assert steps[5].startswith("您接受了我们的方案（") and steps[6].startswith("和解协议于 ")
            assert not any("OF-" in s for s in steps)
            agreement = (await cust.get(f"/customer/cases/{case}/agreement")).json()
            assert "和解协议" in agreement["text_zh"] and "Settlement agreement" in agreement["text_en"]
            assert agreement["acceptance"]["by"]["sub"] == "cust-A"
            # after agreement nothing more can be offered
            resp = await a1.post(f"/cases/{case}/offers", json=first | {"expected_version": None})
            assert resp.status_code == 409

        async with Caller(base, ns, sub="aud", role="auditor") as auditor:
            trail: list[dict[str, Any]] = []
            after: int | None = 0
            while after is not None:  # the chain, page by page
                page = (await auditor.get("/audit", params={"case_id": case, "outcome": "refused",
                                                            "after": after, "limit": 1000})).json()
                trail += page["entries"]
                after = page["next"]
            statuses = sorted(e["details"]["status"] for e in trail)
            assert statuses.count(404) >= 3 and statuses.count(403) >= 2, trail
            assert any(e["who"] == "cust-B" for e in trail)


async def test_final_offer_rejected_escalates_with_dossier(settings: CommonSettings, tmp_path: Path) -> None:
    ns = service_settings(settings)
    case = "CASE-E1"
    with negotiation_stack(settings, tmp_path) as base:
        await _directory(base, ns)
        reg = registered(case, "cust-E", amount="12000.00")
        done = completed(case, category=Category.COLLECTION_CONDUCT,
                         cause=reg)
        await publish(
            settings,
            ("complaint.registered", case, reg.to_bytes()),
            ("investigation.completed", case, done),
            ("investigation.completed", case, done),  # redelivered
            ("investigation.completed", "CASE-BAD", b'{"event_type": "investigation.completed", "payload": {}}'),
        )
        async with Caller(base, ns, sub="a1", role="agent", team="t1") as a1, \
                Caller(base, ns, sub="cust-E", role="customer", customer_id="cust-E") as cust:
            await wait_for_case(a1, f"/cases/{case}")
            resp = await a1.post(f"/cases/{case}/messages", json={
                "body": "面谈：客户要求赔偿 5000 元", "direction": "inbound", "channel": "meeting"})
            assert resp.status_code == 201
            resp = await a1.post(f"/cases/{case}/offers", json={
                "terms": [{"kind": "apology", "text": "催收人员违规拨打您同事电话，向您致歉"},
                          {"kind": "compensation", "amount": "300.00", "reason": "精神抚慰"},
                          {"kind": "credit_report_correction", "description": "撤销 2026-10 逾期记录"}],
                "reason": "违规催收属实", "final": True,
                "justification": "催收违规已核实，补偿金额依据投诉处理规程",
            })
            assert resp.status_code == 201, resp.text
            offer = resp.json()["offer"]
            assert offer["final"] is True and offer["status"] == "open"
            resp = await cust.post(f"/customer/cases/{case}/offers/{offer['offer_id']}/reject",
                                   json={"reason": "补偿太少", "escalate_to": "mediation"})
            assert resp.status_code == 200, resp.text
            assert resp.json()["status"] == "escalated"

            failed = await events(settings, "negotiation.failed", case, 1)
            assert "final offer" in failed[0]["payload"]["reason"]
            escalated = (await events(settings, "case.escalated", case, 1))[0]["payload"]
            assert escalated["target"] == "mediation" and escalated["requested_by"] == "customer"
            rejected = await events(settings, "settlement.rejected", case, 1)
            assert rejected[0]["payload"]["final"] is True

            dossier = (await a1.get(f"/cases/{case}/dossier")).json()
            assert dossier["dossier_id"] == escalated["dossier_ref"]
            assert dossier["target"] == "mediation"
            assert [m["channel"] for m in dossier["communications"]] == ["meeting"]
            assert dossier["offers"][0]["reason"] == "违规催收属实"
            assert any("escalated to mediation" in t["what"] for t in dossier["timeline"])
            html = (await a1.get(f"/cases/{case}/dossier.html")).text
            assert "案件卷宗" in html and "Case dossier" in html and "违规催收属实" in html
            view = (await cust.get(f"/customer/cases/{case}")).json()
            assert view["status"] == "escalated" and "调解" in view["status_text"]

        started = await events(settings, "negotiation.started", case, 1)
        assert len(started) == 1
        dead = await read_all(settings, "investigation.completed.dlq", expected=1, timeout=60)
        headers = dict(dead[0].headers)
        # refused at the envelope's header (no schema_version), before its payload is read
        assert any(f in headers["dlq.reason"] for f in (b"schema_version", b"payload", b"case_id"))
        # the redelivered event opened nothing twice
        all_started = await read_all(settings, "negotiation.started")
        assert sum(1 for r in all_started if r.key == case.encode()) == 1


async def test_worker_escalates_near_deadline_and_relays_left_over_outboxes(
    settings: CommonSettings, tmp_path: Path, mongo_client: object
) -> None:
    case = "CASE-D1"
    reg = registered(case, "cust-D", days=0)  # the regulatory deadline is now
    with negotiation_stack(settings, tmp_path, worker=True) as _base:
        await publish(settings, ("complaint.registered", case, reg.to_bytes()),
                      ("investigation.completed", case, completed(case, cause=reg)))
        escalated = (await events(settings, "case.escalated", case, 1, timeout=90))[0]["payload"]
        assert escalated["target"] == "mediation" and escalated["requested_by"] == "deadline"
        failed = await events(settings, "negotiation.failed", case, 1)
        assert "deadline" in failed[0]["payload"]["reason"]

        # a writer that crashed after its write: the event waits in the outbox; the sweep sends it
        repo = Repository(service_database(mongo_client, settings.mongo, "negotiation"))  # type: ignore[arg-type]
        orphan = Workspace(case_id="CASE-OB", case_number="TS-OB", status="agreed")
        await repo.save(orphan, 0, [Envelope.wrap(NegotiationStarted(case_number="TS-OB"),
                                                  case_id="CASE-OB", producer="negotiation")])
        # (the sweep leaves an outbox to its writer for shared.outbox.SWEEP_GRACE, 60 s)
        relayed = await events(settings, "negotiation.started", "CASE-OB", 1, timeout=150)
        assert relayed[0]["payload"]["case_number"] == "TS-OB"
