"""The whole pipeline on the real stack: every service as its own process, talking only
through Kafka, each with its own database.

A customer complains through the intake API → intake registers and acknowledges →
investigation categorises, gathers evidence and finds → negotiation opens a workspace, an
agent offers, the customer accepts → follow-up carries the settlement out and calls back →
the case is closed; supervision saw every step in order. No personal number of the
complaint appears on any topic. Every call carries a token of the role docs/security.md
gives it (one secret, ``PARLEY_AUTH_SECRET``, for every API).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from shared.auth import mint
from shared.kafka import ensure_topics
from shared.settings import AuthSettings, CommonSettings
from shared.topics import CATALOGUE
from tests.security.personal_data import assert_no_personal_data
from tests.support.eventually import eventually
from tests.support.kafka import read_all
from tests.support.processes import WORKER_READY, running_service, service_env

pytestmark = pytest.mark.e2e

SECRET = "e2e-secret-that-is-long-enough-for-hs256-0123456789"
PHONE = "13912345678"
ID_NUMBER = "110101199003071234"
NAME = "王小明"
CARD = "6222021234567890123"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pipeline(settings: CommonSettings, logs: Path) -> Iterator[dict[str, str]]:
    """Start every service (workers and APIs) against this test's servers."""
    env = service_env(
        settings,
        PARLEY_AUTH_SECRET=SECRET,
        PARLEY_NEGOTIATION_SWEEP_INTERVAL_S="1",
        PARLEY_SUPERVISION_SWEEP_INTERVAL_S="1",
        PARLEY_FOLLOWUP_SWEEP_INTERVAL_S="1",
    )
    ports = {name: _port() for name in ("intake", "negotiation", "followup", "supervision")}
    with ExitStack() as stack:
        for service in ("intake", "investigation", "negotiation", "followup", "supervision"):
            stack.enter_context(
                running_service(
                    f"services.{service}", ["worker"], env, logs / f"{service}-worker.log",
                    ready_text=WORKER_READY, timeout=180,
                )
            )
        for service, port in ports.items():
            stack.enter_context(
                running_service(
                    f"services.{service}", ["api", "--port", str(port)], env, logs / f"{service}-api.log",
                    ready_url=f"http://127.0.0.1:{port}/health", timeout=120,
                )
            )
        yield {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}


async def test_a_complaint_goes_from_intake_to_closure(settings: CommonSettings, tmp_path: Path) -> None:
    await ensure_topics(settings.kafka)
    tokens = AuthSettings(secret=SecretStr(SECRET))

    def auth(**identity: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint(tokens, **identity)}"}  # type: ignore[arg-type]

    channel = auth(sub="app", role="channel")
    ops = auth(sub="ops1", role="ops")
    lead = auth(sub="lead1", role="team_lead", team="t1")
    agent = auth(sub="a1", role="agent", team="t1")
    customer_id = "CUST-E2E-1"
    customer = auth(sub=customer_id, role="customer", customer_id=customer_id)
    submission = {
        "channel_complaint_id": "e2e-0001",
        "channel": "app",
        "received_at": datetime.now(UTC).isoformat(),
        "customer": {"customer_id": customer_id, "name": NAME, "phone": PHONE, "id_number": ID_NUMBER},
        "product": "credit_card",
        "text": (
            f"我的信用卡（卡号 {CARD}）只逾期了3天，就被收取了500元滞纳金和800元罚息，合同里没有约定这么高的费用，"
            "客服也不给解释。要求退还不合理的滞纳金和罚息。联系电话 13912345678。"
        ),
        "amount_disputed": "1300.00",
        "demand": "减免滞纳金和罚息",
    }

    with pipeline(settings, tmp_path) as base:
        async with httpx.AsyncClient(timeout=30) as http:
            # the team's directory: one agent who takes every category in both languages
            resp = await http.put(f"{base['negotiation']}/agents/a1", headers=lead, json={
                "agent_id": "a1", "team": "t1", "role": "agent",
                "categories": [
                    "collection_conduct", "other", "contract_terms",
                    "pricing_fees", "customer_service", "marketing",
                ],
                "languages": ["zh-CN", "en"], "max_load": 50,
            })
            assert resp.status_code == 200, resp.text

            # 1. intake
            resp = await http.post(f"{base['intake']}/complaints", json=submission, headers=channel)
            assert resp.status_code == 202, resp.text
            status_url = base["intake"] + resp.json()["status_url"]
            registration = (await eventually(
                lambda: http.get(status_url, headers=channel),
                until=lambda r: r.status_code == 200,
                what="registration", timeout=90, interval=0.5,
            )).json()
            case_id, case_number = registration["case_id"], registration["case_number"]
            assert case_number.startswith("TS-")

            # 2–3. investigation finds, negotiation opens the workspace and assigns a1
            workspace = (await eventually(
                lambda: http.get(f"{base['negotiation']}/cases/{case_id}", headers=agent),
                until=lambda r: r.status_code == 200 and r.json().get("status") == "open",
                what="negotiation workspace", timeout=90, interval=0.5,
            )).json()
            assert workspace["assigned_agent"] == "a1"
            assert workspace["customer_id"] == customer_id

            # 4. the agent offers within authority; the customer accepts
            resp = await http.post(f"{base['negotiation']}/cases/{case_id}/offers", headers=agent, json={
                "terms": [{"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "500.00", "waiver_pct": "40"}],
                "reason": "逾期时间短，按政策部分减免滞纳金",
                "justification": "逾期仅 3 天，首次逾期，按政策手册部分减免",
                "expected_version": workspace["version"],
            })
            assert resp.status_code == 201, resp.text
            offer_id = resp.json()["offer"]["offer_id"]
            view = (await http.get(f"{base['negotiation']}/customer/cases/{case_id}", headers=customer)).json()
            assert [o["offer_id"] for o in view["open_offers"]] == [offer_id]
            resp = await http.post(
                f"{base['negotiation']}/customer/cases/{case_id}/offers/{offer_id}/accept", headers=customer, json={}
            )
            assert resp.status_code in (200, 201), resp.text

            # 5. follow-up carries it out and calls back
            execution = (await eventually(
                lambda: http.get(f"{base['followup']}/executions/{case_id}", headers=ops),
                until=lambda r: r.status_code == 200,
                what="execution plan", timeout=90, interval=0.5,
            )).json()
            for step in execution["steps"]:
                if step["owner"] == "institution":
                    resp = await http.post(
                        f"{base['followup']}/executions/{case_id}/steps/{step['step_id']}/complete",
                        json={"evidence_ref": f"BOOK-{step['step_id']}"}, headers=ops,
                    )
                    assert resp.status_code == 200, resp.text
            assert resp.json()["status"] == "executed"
            assert {s["done_by"] for s in resp.json()["steps"] if s["owner"] == "institution"} == {"ops1"}
            resp = await http.post(
                f"{base['followup']}/executions/{case_id}/callback",
                json={"satisfied": True, "score": 5, "comment": "满意"}, headers=auth(sub="cs1", role="agent", team="t1"),
            )
            assert resp.status_code == 200 and resp.json()["status"] == "closed", resp.text
            assert resp.json()["callback"]["by"] == "cs1"

            # 6. supervision saw the whole story, in order, and the case is off the clock
            watch = (await eventually(
                lambda: http.get(f"{base['supervision']}/cases/{case_id}", headers=ops),
                until=lambda r: r.status_code == 200 and r.json()["status"] == "closed",
                what="supervision closing the case", timeout=90, interval=0.5,
            )).json()
            seen = [e["event_type"] for e in watch["timeline"]]
            story = [
                "complaint.registered", "investigation.completed", "negotiation.started",
                "settlement.agreed", "settlement.executed",
            ]
            positions = [seen.index(t) for t in story]
            assert positions == sorted(positions), seen
            # the callback's two events happen at the same instant, on different topics
            assert min(seen.index("followup.completed"), seen.index("case.closed")) > positions[-1], seen
            assert watch["case_number"] == case_number

            # 7. intake's read side (what the desk and the customer's channel show) is closed too
            case = (await eventually(
                lambda: http.get(f"{base['intake']}/cases/{case_id}", headers=ops),
                until=lambda r: r.status_code == 200 and r.json()["status"] == "closed",
                what="intake closing the case", timeout=90, interval=0.5,
            )).json()
            assert case["customer_phone_masked"] == "139****5678"

    # every enveloped event of this story is keyed by the case, and no personal number leaks
    for name, entry in CATALOGUE.items():
        if entry.payload is None:
            continue
        for record in await read_all(settings, name, timeout=10):
            text = record.value.decode("utf-8")
            assert PHONE not in text and ID_NUMBER not in text and NAME not in text, (name, text[:500])
            assert record.key == case_id.encode(), name

    # and nowhere else either: every topic, collection and service log of the run (tests/security)
    seen = await assert_no_personal_data(
        settings, tmp_path, {"name": NAME, "phone number": PHONE, "ID number": ID_NUMBER, "card number": CARD})
    assert seen["records"] >= 10 and seen["documents"] >= 10 and seen["log_files"] >= 9, seen
