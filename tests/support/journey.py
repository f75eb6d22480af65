"""One complaint's whole journey through running services, driven as people would drive it.

``pipeline`` starts every service (five workers, four APIs) as its own process against the
test's servers; ``drive_to_closure`` takes one complaint from the intake API to a closed
case: a team lead puts an agent in the directory, a channel submits, the agent offers, the
customer accepts, operations carry the settlement out and an agent records a satisfied
callback. Each call carries a token of the role docs/security.md gives it (one secret,
``SECRET``, for every API). Used by the e2e test (tests/e2e/test_pipeline.py) and the trace
test (tests/integration/shared/test_trace_journey.py).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from shared.auth import mint
from shared.settings import AuthSettings, CommonSettings
from tests.support.eventually import eventually
from tests.support.processes import WORKER_READY, running_service, service_env

SECRET = "e2e-secret-that-is-long-enough-for-hs256-0123456789"
SERVICES = ("intake", "investigation", "negotiation", "followup", "supervision")
APIS = ("intake", "negotiation", "followup", "supervision")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pipeline(settings: CommonSettings, logs: Path, **extra_env: str) -> Iterator[dict[str, str]]:
    """Start every service (workers and APIs) against this test's servers; yield each API's
    base URL by service name. ``extra_env`` is added to every process's environment."""
    env = service_env(
        settings,
        PARLEY_AUTH_SECRET=SECRET,
        PARLEY_NEGOTIATION_SWEEP_INTERVAL_S="1",
        PARLEY_SUPERVISION_SWEEP_INTERVAL_S="1",
        PARLEY_FOLLOWUP_SWEEP_INTERVAL_S="1",
        **extra_env,
    )
    ports = {name: _port() for name in APIS}
    with ExitStack() as stack:
        for service in SERVICES:
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


def auth(**identity: str) -> dict[str, str]:
    """``Authorization`` headers with a token the pipeline's services accept."""
    token = mint(AuthSettings(secret=SecretStr(SECRET)), **identity)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Closed:
    """Where a driven complaint ended: its case, and the last answers of the APIs."""

    case_id: str
    case_number: str
    offer_id: str
    execution: dict[str, Any]  # follow-up's execution after the callback


async def drive_to_closure(http: httpx.AsyncClient, base: dict[str, str], submission: dict[str, Any],
                           *, agent_id: str = "a1", wait_s: float = 90) -> Closed:
    """Take ``submission`` (a ``ComplaintSubmission`` whose customer has a ``customer_id``)
    from the intake API to follow-up's closed case, asserting each step's answer; each wait
    for a worker's part (registration, workspace, execution plan) lasts up to ``wait_s``."""
    customer_id = submission["customer"]["customer_id"]
    channel = auth(sub=submission["channel"], role="channel")
    ops = auth(sub="ops1", role="ops")
    lead = auth(sub="lead1", role="team_lead", team="t1")
    agent = auth(sub=agent_id, role="agent", team="t1")
    customer = auth(sub=customer_id, role="customer", customer_id=customer_id)

    # the team's directory: one agent who takes every category in both languages
    resp = await http.put(f"{base['negotiation']}/agents/{agent_id}", headers=lead, json={
        "agent_id": agent_id, "team": "t1", "role": "agent",
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
        what="registration", timeout=wait_s, interval=0.5,
    )).json()
    case_id, case_number = registration["case_id"], registration["case_number"]
    assert case_number.startswith("TS-")

    # 2–3. investigation finds, negotiation opens the workspace and assigns the agent
    workspace = (await eventually(
        lambda: http.get(f"{base['negotiation']}/cases/{case_id}", headers=agent),
        until=lambda r: r.status_code == 200 and r.json().get("status") == "open",
        what="negotiation workspace", timeout=wait_s, interval=0.5,
    )).json()
    assert workspace["assigned_agent"] == agent_id
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
        what="execution plan", timeout=wait_s, interval=0.5,
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
    return Closed(case_id=case_id, case_number=case_number, offer_id=offer_id, execution=resp.json())
