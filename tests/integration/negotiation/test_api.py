"""The HTTP API in-process against the real database and broker: auth, errors, 409s, recusal, OpenAPI.

Workspaces are opened with ``handlers.open_workspace`` on the real repository (the code
the worker runs); the API app runs its real lifespan (MongoDB, fairness seed, Kafka
publisher).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from services.negotiation import handlers
from services.negotiation.app import SPEC
from services.negotiation.auth import mint
from services.negotiation.models import AgentProfile
from services.negotiation.repository import Repository
from services.negotiation.settings import Settings
from shared.contracts.common import Category
from shared.mongo import make_client, service_database
from shared.service import build_api
from shared.settings import CommonSettings
from shared.topics import decode
from tests.integration.negotiation.support import SECRET, completed, events, registered
from tests.support.dates import end_of_february, next_january_31, today

pytestmark = pytest.mark.integration


class Api:
    """The app in-process, its repository, and a way to call it as someone."""

    def __init__(self, app: Any, repo: Repository, settings: Settings) -> None:
        self.app, self.repo, self.settings = app, repo, settings

    def as_(self, **identity: Any) -> httpx.AsyncClient:
        token = mint(self.settings, **identity)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://negotiation",
                                 headers={"Authorization": f"Bearer {token}"})

    async def open_case(self, case_id: str, customer: str, *, amount: str = "3000.00") -> None:
        reg = registered(case_id, customer, amount=amount)
        now = datetime.now(UTC)
        await handlers.record_registration(decode("complaint.registered", reg.to_bytes()), repo=self.repo, now=now)
        raw = completed(case_id, category=Category.PRICING_FEES, cause=reg)
        await handlers.open_workspace(decode("investigation.completed", raw),
                                      repo=self.repo, settings=self.settings, now=now)


@pytest.fixture
async def api(settings: CommonSettings) -> AsyncIterator[Api]:
    ns = Settings(environment="test", jwt_secret=SECRET, kafka=settings.kafka, mongo=settings.mongo)
    app = build_api(SPEC, ns)
    client = make_client(ns.mongo)
    try:
        async with app.router.lifespan_context(app):
            repo = Repository(service_database(client, ns.mongo, "negotiation"))
            for agent_id in ("a1", "a2"):
                await repo.put_agent(AgentProfile(agent_id=agent_id, team="t1", categories=["pricing_fees"]))
            yield Api(app, repo, ns)
    finally:
        await client.drop_database(ns.mongo.database("negotiation"))
        await client.close()


async def test_tokens_are_required_and_checked(api: Api) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://n") as anon:
        resp = await anon.get("/cases")
        assert resp.status_code == 401 and "Bearer" in resp.json()["detail"]
        resp = await anon.get("/cases", headers={"Authorization": "Bearer not-a-jwt"})
        assert resp.status_code == 401 and "invalid" in resp.json()["detail"]
        expired = mint(api.settings, sub="a1", role="agent", team="t1", ttl=timedelta(seconds=-5))
        resp = await anon.get("/cases", headers={"Authorization": f"Bearer {expired}"})
        assert resp.status_code == 401 and "expired" in resp.json()["detail"]
        forged = jwt.encode({"sub": "a1", "role": "manager", "exp": datetime.now(UTC) + timedelta(hours=1),
                             "iss": "parley", "aud": "parley-negotiation"}, "another-secret-" * 3, algorithm="HS256")
        resp = await anon.get("/cases", headers={"Authorization": f"Bearer {forged}"})
        assert resp.status_code == 401
        assert (await anon.get("/health")).status_code == 200
    trail = await api.repo.audit_entries({"status": 401})
    assert len(trail) == 4 and all(e["outcome"] == "refused" for e in trail)


async def test_bad_input_is_a_422_naming_the_field(api: Api) -> None:
    await api.open_case("K-422", "c1")
    async with api.as_(sub="a1", role="agent", team="t1") as a1:
        resp = await a1.post("/cases/K-422/offers", json={
            "reason": "x",
            "terms": [{"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "100.00",
                       "waiver_amount": "10.00", "waiver_pct": "10"}],
        })
        assert resp.status_code == 422
        body = resp.json()
        assert body["errors"][0]["field"].startswith("terms.0.fee_waiver")
        assert "exactly one of waiver_amount and waiver_pct" in body["detail"]
        resp = await a1.post("/cases/K-422/offers", json={
            "reason": "x", "terms": [{"kind": "instalment_plan", "amount": "100.00", "months": 61,
                                      "first_due_date": (today() + timedelta(days=30)).isoformat()}]})
        assert resp.status_code == 422 and "months" in resp.json()["errors"][0]["field"]
        resp = await a1.post("/cases/K-422/offers", json={"reason": "x", "terms": [{"kind": "gift"}]})
        assert resp.status_code == 422 and resp.json()["errors"]
        resp = await a1.post("/cases/K-422/offers", json={
            "reason": "x", "terms": [{"kind": "refund", "amount": "12.345"}]})
        assert resp.status_code == 422 and "decimal" in resp.json()["detail"]
        # a flagged offer without justification: 422 naming justification, with the comparison
        resp = await a1.post("/cases/K-422/offers", json={
            "reason": "全额退款", "terms": [{"kind": "refund", "amount": "3000.00"}]})
        assert resp.status_code == 422, resp.text
        assert resp.json()["field"] == "justification" and "similar settled cases" in resp.json()["detail"]
        preview = await a1.post("/cases/K-422/offers/preview", json={"terms": [{"kind": "refund", "amount": "3000.00"}]})
        assert preview.status_code == 200
        assert preview.json()["fairness"]["flagged"] is True
        assert preview.json()["fairness"]["peers"] >= 20
        assert preview.json()["authority"]["required_role"] == "team_lead"
        resp = await a1.post("/cases/K-422/offers", json={
            "reason": "全额退款", "terms": [{"kind": "refund", "amount": "3000.00"}],
            "justification": "扣款未经授权，依法全额退还"})
        assert resp.status_code == 201 and resp.json()["offer"]["status"] == "pending_approval"
        resp = await a1.post("/cases/K-422/messages", json={"body": "x"}, headers={"If-Match": "abc"})
        assert resp.status_code == 422 and resp.json()["field"] == "If-Match"


async def test_concurrent_edits_of_one_case_are_detected(api: Api) -> None:
    await api.open_case("K-409", "c1")
    async with api.as_(sub="a1", role="agent", team="t1") as a1, api.as_(sub="lead", role="team_lead", team="t1") as lead:
        case = (await a1.get("/cases/K-409"))
        version = case.json()["version"]
        assert case.headers["ETag"] == f'"{version}"'
        results = await asyncio.gather(*[
            client.post("/cases/K-409/messages", json={"body": f"note {i}", "direction": "note"},
                        headers={"If-Match": f'"{version}"'})
            for i, client in enumerate([a1, lead, a1, lead])
        ])
        codes = sorted(r.status_code for r in results)
        assert codes == [201, 409, 409, 409], [r.text for r in results]
        assert all("version" in r.json()["detail"] for r in results if r.status_code == 409)
        ws = (await a1.get("/cases/K-409")).json()
        assert len(ws["messages"]) == 1 and ws["version"] == version + 1


async def test_recusal_refuses_the_agent_and_reassigns(api: Api) -> None:
    await api.open_case("K-REC", "c1")
    async with api.as_(sub="lead", role="team_lead", team="t1") as lead:
        ws = (await lead.get("/cases/K-REC")).json()
        holder = ws["assigned_agent"]
        other = "a2" if holder == "a1" else "a1"
        resp = await lead.post("/cases/K-REC/recusals", json={"agent_id": holder, "reason": "曾参与该笔欠款的催收"})
        assert resp.status_code == 200, resp.text
        ws = (await lead.get("/cases/K-REC")).json()
        assert ws["assigned_agent"] == other and ws["recusals"][0]["agent_id"] == holder
        resp = await lead.post("/cases/K-REC/assign", json={"agent_id": holder})
        assert resp.status_code == 403 and "recused" in resp.json()["detail"]
    async with api.as_(sub=holder, role="agent", team="t1") as recused:
        resp = await recused.post("/cases/K-REC/messages", json={"body": "我来处理"})
        assert resp.status_code == 403 and "recused" in resp.json()["detail"]
        resp = await recused.post("/cases/K-REC/offers", json={
            "reason": "x", "terms": [{"kind": "apology", "text": "抱歉"}], "justification": "解释说明足够长的理由"})
        assert resp.status_code == 403
    refused = await api.repo.audit_entries({"case_id": "K-REC", "outcome": "refused"})
    assert [e["status"] for e in refused] == [403, 403, 403]
    assert all("recused" in e["reason"] for e in refused)


async def test_customer_api_speaks_plainly_and_can_ask_for_mediation(api: Api) -> None:
    await api.open_case("K-CUS", "c7")
    async with api.as_(sub="c7", role="customer", customer_id="c7") as cust, \
            api.as_(sub="c8", role="customer", customer_id="c8") as stranger, \
            api.as_(sub="a1", role="agent", team="t1") as agent:
        view = (await cust.get("/customer/cases/K-CUS")).json()
        assert view["status_text"] == "我们已完成核实，正在与您协商解决方案。" and view["open_offers"] == []
        en = (await cust.get("/customer/cases/K-CUS", headers={"Accept-Language": "en-GB,en;q=0.9"})).json()
        assert en["language"] == "en" and en["deadline_text"].startswith("We will give you our answer by")
        assert [c["case_id"] for c in (await cust.get("/customer/cases")).json()] == ["K-CUS"]
        assert (await stranger.get("/customer/cases")).json() == []
        assert (await stranger.get("/customer/cases/K-CUS")).status_code == 404
        assert (await stranger.post("/customer/cases/K-CUS/messages", json={"body": "hi"})).status_code == 404
        assert (await cust.get("/cases/K-CUS")).status_code == 403  # the staff API is not for customers
        assert (await agent.get("/customer/cases/K-CUS")).status_code == 403
        assert (await agent.get("/cases/K-CUS/dossier")).status_code == 404
        resp = await cust.post("/customer/cases/K-CUS/messages", json={"body": "我想申请调解"})
        assert resp.status_code == 201
        resp = await cust.post("/customer/cases/K-CUS/escalate", json={"target": "mediation", "reason": "希望第三方调解"})
        assert resp.status_code == 200 and resp.json()["status"] == "escalated"
        view = (await cust.get("/customer/cases/K-CUS")).json()
        assert "调解" in view["status_text"] and view["messages"][0]["sender"] == "you"
        dossier = (await agent.get("/cases/K-CUS/dossier")).json()
        assert dossier["communications"][0]["body"] == "我想申请调解"
    settings = CommonSettings(kafka=api.settings.kafka, mongo=api.settings.mongo)
    escalated = await events(settings, "case.escalated", "K-CUS", 1)
    assert escalated[0]["payload"]["requested_by"] == "customer"
    assert escalated[0]["payload"]["dossier_ref"] == dossier["dossier_id"]


async def test_directory_edits_need_a_lead_and_audit_needs_an_auditor(api: Api) -> None:
    profile = {"agent_id": "a3", "team": "t1", "role": "agent", "categories": ["marketing"], "languages": ["en"]}
    async with api.as_(sub="a1", role="agent", team="t1") as a1, \
            api.as_(sub="lead", role="team_lead", team="t1") as lead, \
            api.as_(sub="au", role="auditor") as auditor:
        assert (await a1.put("/agents/a3", json=profile)).status_code == 403
        assert (await lead.put("/agents/a3", json=profile | {"team": "t2"})).status_code == 403
        assert (await lead.put("/agents/a3", json=profile | {"role": "manager"})).status_code == 403
        assert (await lead.put("/agents/a3", json=profile)).status_code == 200
        assert "a3" in [a["agent_id"] for a in (await lead.get("/agents")).json()]
        assert (await a1.get("/audit")).status_code == 403
        trail = (await auditor.get("/audit")).json()["entries"]
        assert any(e["details"]["path"] == "/agents/a3" and e["details"]["status"] == 403
                   and e["action"] == "PUT /agents/{agent_id}" and e["who"] == "lead" for e in trail)
        assert (await auditor.delete("/audit")).status_code == 405  # nobody rewrites the trail
        first = next_january_31()  # month ends: 31 January, the end of February, 31 March
        plan = await a1.post("/plans/instalment", json={"amount": "1000.00", "months": 3,
                                                          "first_due_date": first.isoformat()})
        assert [r["due_date"] for r in plan.json()["schedule"]] == [
            d.isoformat() for d in (first, end_of_february(first.year), first.replace(month=3))]


async def test_the_audit_trail_is_a_chain_read_page_by_page_without_a_cap(api: Api) -> None:
    from shared.audit import MongoChainStore, verify

    await api.open_case("K-AUD", "c9")
    async with api.as_(sub="lead", role="team_lead", team="t1") as lead, \
            api.as_(sub="m1", role="manager") as manager, api.as_(sub="au", role="auditor") as auditor:
        ws = (await lead.get("/cases/K-AUD")).json()
        resp = await lead.post("/cases/K-AUD/recusals", json={"agent_id": ws["assigned_agent"], "reason": "利益冲突需回避"})
        assert resp.status_code == 200, resp.text
        for _ in range(6):
            assert (await manager.get("/cases/K-AUD")).status_code == 200
        seen: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            page = (await auditor.get("/audit", params={"after": after, "limit": 3})).json()
            assert len(page["entries"]) <= 3
            seen += page["entries"]
            after = page["next"]
        assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1)) and len(seen) >= 8
        assert all(b["prev"] == a["hash"] for a, b in zip(seen, seen[1:], strict=False))
        recusal = [e for e in seen if e["action"] == "POST /cases/{case_id}/recusals"]
        assert [(e["who"], e["role"], e["case_id"], e["details"]["outcome"]) for e in recusal] == [
            ("lead", "team_lead", "K-AUD", "allowed")]
        mine = (await auditor.get("/audit", params={"case_id": "K-AUD", "limit": 1000})).json()
        assert mine["next"] is None and len(mine["entries"]) == 8
        paged: list[dict[str, Any]] = []
        after = 0
        while after is not None:  # a filtered page fills up to its limit, reading on past others
            page = (await auditor.get("/audit", params={"case_id": "K-AUD", "after": after, "limit": 3})).json()
            assert len(page["entries"]) == 3 or page["next"] is None
            paged += page["entries"]
            after = page["next"]
        assert paged == mine["entries"]
        assert (await auditor.get("/audit", params={"limit": 1001})).status_code == 422
        assert (await lead.get("/audit")).status_code == 403
    report = await verify(MongoChainStore(api.repo.db))
    assert report.intact and report.count >= len(seen)


def test_openapi_documents_every_response_and_error(api: Api) -> None:
    spec = api.app.openapi()
    assert "ErrorBody" in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            ok = [c for c in responses if c.startswith("2")]
            assert ok, (method, path)
            if path == "/health":
                continue
            assert "401" in responses, (method, path)
            for code, resp in responses.items():
                if code.startswith("4"):
                    ref = resp["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (method, path, code)
            if not path.endswith(".html"):
                assert responses[ok[0]]["content"]["application/json"]["schema"], (method, path)


async def test_workspace_shows_the_customers_other_cases_in_scope(api: Api) -> None:
    await api.open_case("K-H1", "c5")
    await api.open_case("K-H2", "c5", amount="800.00")
    await api.open_case("K-H3", "c6")
    async with api.as_(sub="lead", role="team_lead", team="t1") as lead, \
            api.as_(sub="x", role="team_lead", team="t2") as other_lead:
        ws = (await lead.get("/cases/K-H2")).json()
        assert [c["case_id"] for c in ws["customer_history"]] == ["K-H1"]
        assert ws["amount_disputed"] == "800.00" and ws["timeline"][0]["what"] == "workspace opened"
        assert (await other_lead.get("/cases/K-H2")).status_code == 404
