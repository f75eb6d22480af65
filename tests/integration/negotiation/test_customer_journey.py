"""The customer's view, start to end, on the real stack (issue 12): the worker and the API
as processes, the events published on Kafka as the other services publish them.

registered → investigated (a 30-day tier with its reason) → offer → agreed →
settlement.executed → case.closed, reading ``GET /customer/cases/{id}`` as the customer at
each stage, zh-CN and English, and never seeing internal words.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.clock import due
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed, SettlementExecuted
from shared.settings import CommonSettings
from tests.integration.negotiation.support import (
    Caller,
    completed,
    negotiation_stack,
    publish,
    registered,
    service_settings,
    wait_for_case,
)

pytestmark = pytest.mark.integration

INTERNAL = ("written justification", "书面说明理由", "OF-0", "{", "remedy range", "remedy_range", "UTC")


def readable(view: dict[str, Any]) -> str:
    """Everything the customer reads, checked for internal words."""
    parts = [view["status_text"], view["next_step"], view["deadline_text"], view["contact"],
             view.get("agreement_text") or "", *view["findings"], *view["deadline_changes"],
             *(s["text"] for s in view["timeline"])]
    parts += [o["description"] for o in view["open_offers"]] + [o["comparison"] or "" for o in view["open_offers"]]
    text = "\n".join(parts)
    for word in INTERNAL:
        assert word not in text, (word, text)
    assert all("terms" not in o for o in view["open_offers"]), "no raw terms in the customer's view"
    return text


async def until_stage(client: httpx.AsyncClient, path: str, stage: str, timeout: float = 60) -> dict[str, Any]:
    """Poll the customer's view until it reaches ``stage``."""
    end = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await client.get(path)
        if resp.status_code == 200 and resp.json()["stage"] == stage:
            return resp.json()  # type: ignore[no-any-return]
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"{path} did not reach {stage}: {resp.status_code} {resp.text[:500]}")
        await asyncio.sleep(0.5)


async def test_the_customer_follows_the_case_from_registration_to_closure(
        settings: CommonSettings, tmp_path: Path) -> None:
    ns = service_settings(settings)
    case, path = "CASE-J1", "/customer/cases/CASE-J1"
    en = {"Accept-Language": "en"}
    with negotiation_stack(settings, tmp_path, PARLEY_NEGOTIATION_INSTITUTION_NAME_ZH="示例消费金融",
                           PARLEY_NEGOTIATION_INSTITUTION_NAME_EN="Example Finance") as base:
        async with Caller(base, ns, sub="lead1", role="team_lead", team="t1") as lead:
            resp = await lead.put("/agents/a1", json={
                "agent_id": "a1", "team": "t1", "role": "agent", "categories": ["pricing_fees"],
                "languages": ["zh-CN", "en"], "max_load": 10})
            assert resp.status_code == 200, resp.text
        async with Caller(base, ns, sub="a1", role="agent", team="t1") as a1, \
                Caller(base, ns, sub="cust-J", role="customer", customer_id="cust-J") as cust:
            # 1. registered: the customer sees it (not a 404), with the deadline and where to reach us
            reg = registered(case, "cust-J")
            await publish(settings, ("complaint.registered", case, reg.to_bytes()))
            view = await wait_for_case(cust, path)
            readable(view)
            assert view["stage"] == "registered" and "已受理" in view["status_text"]
            assert "当日24时前" in view["deadline_text"] and view["contact"]
            assert (await a1.get(f"/cases/{case}")).status_code == 404, "staff see it once investigated"
            view_en = (await cust.get(path, headers=en)).json()
            assert "registered your complaint" in view_en["status_text"] and "24:00 Beijing time" in view_en["deadline_text"]

            # 2. investigated: findings with the rule behind them, a longer deadline with its reason
            received = datetime.fromisoformat(reg.payload.received_at.isoformat())
            longer = due(received, 30).due_at
            await publish(settings, ("investigation.completed", case, completed(case, cause=reg, extras={
                "complex_case": True, "deadline_tier": 30, "deadline_at": longer.isoformat(),
                "complexity_reason_zh": "需要调取多个系统的收费记录",
                "complexity_reason_en": "fee records must be gathered from several systems",
                "evidence": [{"item": "fee_ledger", "title_zh": "收费流水", "title_en": "Fee ledger",
                              "source": "billing.fees", "outcome": "confirmed",
                              "detail_zh": "逾期3天收取滞纳金500元", "detail_en": "late fee CNY 500"}],
                "remedy_range": {"min": "100.00", "max": "300.00", "text_zh": "建议补救范围", "text_en": "remedy range"},
            })))
            view = await until_stage(cust, path, "open")
            text = readable(view)
            assert view["findings"][0] == "经核实，您反映的问题部分属实。"
            assert "收费流水：记录证实了您的说法" in text and "合同约定" in text
            assert len(view["deadline_changes"]) == 1 and "多个系统" in view["deadline_changes"][0]
            assert "30日" in view["deadline_changes"][0]
            view_en = (await cust.get(path, headers=en)).json()
            readable(view_en)
            assert "partly right" in view_en["findings"][0] and "several systems" in view_en["deadline_changes"][0]

            # 3. an offer in readable terms
            ws = (await a1.get(f"/cases/{case}")).json()
            resp = await a1.post(f"/cases/{case}/offers", json={
                "terms": [{"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "500.00", "waiver_pct": "40"}],
                "reason": "提醒短信未送达", "justification": "提醒短信未送达系我方责任，按政策部分减免",
                "expected_version": ws["version"]})
            assert resp.status_code == 201, resp.text
            offer_id = resp.json()["offer"]["offer_id"]
            view = (await cust.get(path)).json()
            readable(view)
            [offer] = view["open_offers"]
            assert "减免滞纳金 200.00 元（40%）" in offer["description"] and "2 日内" in offer["description"]
            view_en = (await cust.get(path, headers=en)).json()
            readable(view_en)
            assert "Waive CNY 200.00 (40%)" in view_en["open_offers"][0]["description"]

            # 4. agreed: both parties named, Beijing time
            resp = await cust.post(f"{path}/offers/{offer_id}/accept", json={})
            assert resp.status_code == 200, resp.text
            view = (await cust.get(path)).json()
            readable(view)
            assert view["stage"] == "agreed" and "示例消费金融" in view["agreement_text"]
            assert "张*（您）" in view["agreement_text"] and "（北京时间）" in view["agreement_text"]
            view_en = (await cust.get(path, headers=en)).json()
            readable(view_en)
            assert "Example Finance" in view_en["agreement_text"] and "Beijing time" in view_en["agreement_text"]
            agreement_id = view["agreement_id"]

            # 5. settlement.executed (follow-up): each step done
            now = datetime.now(UTC)
            executed = Envelope.wrap(SettlementExecuted(case_number=f"TS-{case}", agreement_id=agreement_id),
                                     case_id=case, producer="followup", occurred_at=now)
            await publish(settings, ("settlement.executed", case, executed.to_bytes()))
            view = await until_stage(cust, path, "executed")
            readable(view)
            steps = [s["text"] for s in view["timeline"]]
            assert any(s.startswith("已完成：减免滞纳金 200.00 元") for s in steps)
            assert "回访" in view["next_step"]

            # 6. case.closed
            closed = Envelope.wrap(CaseClosed(case_number=f"TS-{case}", outcome="resolved"), case_id=case,
                                   producer="followup", cause=executed, occurred_at=now + timedelta(seconds=1))
            await publish(settings, ("case.closed", case, closed.to_bytes()))
            view = await until_stage(cust, path, "closed")
            readable(view)
            assert view["status_text"] == "您的案件已办结。" and view["timeline"][-1]["text"] == "案件已办结。"
            view_en = (await cust.get(path, headers=en)).json()
            readable(view_en)
            assert view_en["status_text"] == "Your case is closed."
