"""The access matrix of every API, checked against docs/security.md.

Each service's API is built in-process from its spec (``shared.service.build_api``) with its
real lifespan on the test database and broker. Every route the app has — enumerated from
``app.routes``, so a route added without a row in docs/security.md fails here — is called
with a valid token of every role, with no token and with bad tokens (forged, expired,
``alg=none``, wrong issuer or audience, incomplete identities):

- a bad or missing token → 401 on every route but the open ones (``/health``, the docs);
- a role the documented row does not allow → 403 from the route's gate;
- a role it allows → neither 401 nor 403 (nor a 5xx): path values name nothing that exists
  and bodies are empty, so the answer is 404 or 422 and nothing is changed.

Then the scopes on real cases: a customer sees their own case and gets 404 for another's; a
recused agent gets 403 on every route of that case in negotiation, reads included, and does
not see it in the list; follow-up records the token's subject as who did a step and refuses
a ``by`` in the body.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi.routing import APIRoute
from pydantic import SecretStr

from shared.auth import ROLES, AuthSettings, mint
from shared.mongo import make_client, service_database
from shared.service import ServiceSpec, build_api
from shared.settings import CommonSettings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECURITY_DOC = REPO / "docs" / "security.md"
SERVICES = ("intake", "investigation", "negotiation", "followup", "supervision")
#: routes that answer without a token (FastAPI's schema and docs pages, /health, /metrics, the console's login)
OPEN = {("GET", "/health"), ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc"),
        ("GET", "/docs/oauth2-redirect"),
        # supervision's console: the sign-in form, the sign-in (checks the token itself), sign-out
        ("GET", "/console/login"), ("POST", "/console/login"), ("POST", "/console/logout")}
#: path values that are valid but name nothing that exists
PATH_VALUES = {"channel": "app"}

IDENTITIES: dict[str, dict[str, str]] = {
    "customer": {"sub": "matrix-customer", "customer_id": "matrix-customer"},
    "channel": {"sub": "app"},
    "investigator": {"sub": "inv-1"},
    "agent": {"sub": "agent-1", "team": "matrix-team"},
    "team_lead": {"sub": "lead-1", "team": "matrix-team"},
    "manager": {"sub": "manager-1"},
    "committee": {"sub": "committee-1"},
    "ops": {"sub": "ops-1"},
    "auditor": {"sub": "auditor-1"},
}


def documented_matrix() -> dict[str, dict[tuple[str, str], frozenset[str]]]:
    """service -> (method, path) -> the roles docs/security.md lets through."""
    matrix: dict[str, dict[tuple[str, str], frozenset[str]]] = {}
    service: str | None = None
    columns: list[str] = []
    for line in SECURITY_DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^### (\w+)\s*$", line)
        if heading or line.startswith("## "):  # a table belongs to its service's heading only
            service = heading.group(1) if heading else None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if service is None or not cells:
            continue
        if cells[0] == "route":
            columns = cells[1:]
            assert columns == list(ROLES), f"the {service} table's columns must be the roles in order"
            continue
        route = re.fullmatch(r"`(GET|POST|PUT|PATCH|DELETE) (\S+)`", cells[0])
        if route is None:
            continue
        assert len(cells) == len(columns) + 1, line
        allowed = frozenset(role for role, cell in zip(columns, cells[1:], strict=True) if cell.startswith("✓"))
        matrix.setdefault(service, {})[(route.group(1), route.group(2))] = allowed
    assert set(matrix) == set(SERVICES), f"docs/security.md has tables for {sorted(matrix)}"
    return matrix


def spec_of(name: str) -> ServiceSpec[Any, Any]:
    import importlib

    spec: ServiceSpec[Any, Any] = importlib.import_module(f"services.{name}.app").SPEC
    return spec


def settings_for(name: str, settings: CommonSettings) -> Any:
    """The service's own settings on this test's servers and names."""
    import importlib

    kind = importlib.import_module(f"services.{name}.settings").Settings
    return kind(environment="test", kafka=settings.kafka, mongo=settings.mongo)


@dataclass
class Built:
    app: Any
    settings: Any
    db: Any

    def client(self, token: str | None = None, **headers: str) -> httpx.AsyncClient:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://api",
                                 headers=headers)

    def token(self, role: str, **override: Any) -> str:
        return mint(self.settings.auth, role=role, **(IDENTITIES[role] | override))


@asynccontextmanager
async def built(name: str, settings: CommonSettings) -> AsyncIterator[Built]:
    own = settings_for(name, settings)
    app = build_api(spec_of(name), own)
    client = make_client(own.mongo)
    try:
        async with app.router.lifespan_context(app):
            yield Built(app, own, service_database(client, own.mongo, name))
    finally:
        await client.drop_database(own.mongo.database(name))
        await client.close()


def bad_tokens(auth: AuthSettings) -> dict[str, str]:
    """Tokens every route must refuse with 401, by what is wrong with them."""
    now = datetime.now(UTC)
    good = {"sub": "manager-1", "role": "manager", "iat": now, "exp": now + timedelta(hours=1),
            "iss": auth.issuer, "aud": auth.audience}
    secret = auth.secret.get_secret_value()
    return {
        "not a JWT": "not-a-jwt",
        "forged (another secret)": mint(AuthSettings(secret=SecretStr("another-secret-" * 4)),
                                        sub="manager-1", role="manager"),
        "expired": mint(auth, sub="manager-1", role="manager", ttl=timedelta(seconds=-5)),
        "alg=none": jwt.encode(good, None, algorithm="none"),
        "wrong audience": jwt.encode(good | {"aud": "somebody-else"}, secret, algorithm="HS256"),
        "wrong issuer": jwt.encode(good | {"iss": "evil"}, secret, algorithm="HS256"),
        "unknown role": jwt.encode(good | {"role": "root"}, secret, algorithm="HS256"),
        "agent without team": jwt.encode(good | {"role": "agent"}, secret, algorithm="HS256"),
        "customer without customer_id": jwt.encode(good | {"role": "customer"}, secret, algorithm="HS256"),
    }


def _flat(routes: list[Any]) -> Any:
    """The app's routes with included routers flattened (FastAPI ≥ 0.16x keeps an included
    router as one entry with ``effective_route_contexts()``; older ones copy its routes)."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            yield from route.effective_route_contexts()
        else:
            yield route


def routes_of(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) the app answers, hidden ones included."""
    found = []
    for route in _flat(app.routes):
        methods = sorted(m for m in (getattr(route, "methods", None) or []) if m != "HEAD")
        found += [(method, route.path) for method in methods]
        if not isinstance(getattr(route, "original_route", route), APIRoute):
            assert [(m, route.path) for m in methods] and all((m, route.path) in OPEN for m in methods), \
                f"an unexpected route {route.path}"
    documented = {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}
    assert documented <= set(found), f"routes in the OpenAPI the walk missed: {documented - set(found)}"
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), f"matrix-nope-{m.group(1)}"), path)


async def call(client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    if method in ("POST", "PUT", "PATCH"):
        return await client.request(method, concrete(path), json={})
    return await client.request(method, concrete(path))


@pytest.mark.parametrize("name", SERVICES)
async def test_every_route_answers_as_docs_security_says(name: str, settings: CommonSettings) -> None:
    matrix = documented_matrix()[name]
    async with built(name, settings) as api:
        routes = routes_of(api.app)
        guarded = [r for r in routes if r not in OPEN]
        undocumented = sorted(set(guarded) - set(matrix))
        assert not undocumented, f"{name}: routes without a decision in docs/security.md: {undocumented}"
        phantom = sorted(set(matrix) - set(guarded))
        assert not phantom, f"{name}: docs/security.md lists routes the app does not have: {phantom}"

        async with api.client() as anonymous:
            for method, path in routes:
                resp = await call(anonymous, method, path)
                if (method, path) in OPEN:
                    assert resp.status_code in (200, 503), (method, path, resp.status_code)
                else:
                    assert resp.status_code == 401, (method, path, "no token", resp.status_code)
                    assert resp.headers.get("www-authenticate") == "Bearer"

        for what, token in bad_tokens(api.settings.auth).items():
            async with api.client(token) as bad:
                for method, path in guarded:
                    resp = await call(bad, method, path)
                    assert resp.status_code == 401, (method, path, what, resp.status_code, resp.text)

        failures = []
        for role in ROLES:
            async with api.client(api.token(role)) as caller:
                for method, path in guarded:
                    resp = await call(caller, method, path)
                    allowed = role in matrix[(method, path)]
                    if allowed and (resp.status_code in (401, 403) or resp.status_code >= 500):
                        failures.append(f"{role} {method} {path}: {resp.status_code} {resp.text[:200]}")
                    if not allowed and resp.status_code != 403:
                        failures.append(f"{role} {method} {path}: {resp.status_code}, documented 403")
        assert not failures, "\n".join(failures)


async def test_negotiation_recused_agent_is_refused_everything_of_the_case(settings: CommonSettings) -> None:
    from services.negotiation import handlers
    from services.negotiation.models import AgentProfile
    from services.negotiation.repository import Repository
    from shared.contracts.common import Category
    from shared.topics import decode
    from tests.integration.negotiation.support import completed, registered

    matrix = documented_matrix()["negotiation"]
    async with built("negotiation", settings) as api:
        repo = Repository(api.db)
        for agent_id in ("agent-1", "agent-2"):
            await repo.put_agent(AgentProfile(agent_id=agent_id, team="matrix-team", categories=["pricing_fees"]))
        now = datetime.now(UTC)
        for case_id, customer in (("M-REC", "matrix-customer"), ("M-OTHER", "someone-else")):
            reg = registered(case_id, customer)
            await handlers.record_registration(decode("complaint.registered", reg.to_bytes()), repo=repo, now=now)
            await handlers.open_workspace(decode("investigation.completed", completed(
                case_id, category=Category.PRICING_FEES, cause=reg)), repo=repo, settings=api.settings, now=now)

        async with api.client(api.token("team_lead")) as lead:
            ws = (await lead.get("/cases/M-REC")).json()
            holder = ws["assigned_agent"]
            resp = await lead.post("/cases/M-REC/recusals", json={"agent_id": holder, "reason": "亲属关系"})
            assert resp.status_code == 200, resp.text

        async with api.client(api.token("agent", sub=holder)) as recused:
            case_routes = [(m, p) for m, p in routes_of(api.app) if p.startswith("/cases/{case_id}")]
            assert len(case_routes) >= 14
            for method, path in case_routes:
                url = path.replace("{case_id}", "M-REC").replace("{offer_id}", "O-1")
                resp = await (recused.request(method, url, json={}) if method != "GET" else recused.get(url))
                assert resp.status_code == 403, (method, path, resp.status_code, resp.text)
                if "agent" in matrix[(method, path)]:  # past the role gate: refused for the recusal
                    assert "recused" in resp.json()["detail"], (method, path, resp.text)
            listed = [c["case_id"] for c in (await recused.get("/cases")).json()]
            assert "M-REC" not in listed
        other = "agent-2" if holder == "agent-1" else "agent-1"
        async with api.client(api.token("agent", sub=other)) as colleague:
            assert (await colleague.get("/cases/M-REC")).status_code == 200

        # a customer: their own case, and 404 (not 403) for another customer's
        async with api.client(api.token("customer")) as customer:
            assert (await customer.get("/customer/cases/M-REC")).status_code == 200
            assert [c["case_id"] for c in (await customer.get("/customer/cases")).json()] == ["M-REC"]
            other_case = await customer.get("/customer/cases/M-OTHER")
            nothing = await customer.get("/customer/cases/M-NOTHING")
            assert other_case.status_code == nothing.status_code == 404
            assert other_case.json()["detail"].replace("M-OTHER", "X") == nothing.json()["detail"].replace("M-NOTHING", "X")


async def test_followup_scopes_customers_and_records_the_token_subject(settings: CommonSettings) -> None:
    from services.followup.models import Execution, Step
    from services.followup.repository import Repository

    async with built("followup", settings) as api:
        repo = Repository(api.db)
        due = datetime.now(UTC) + timedelta(days=3)
        steps = [Step(step_id="s1", kind="refund", owner="institution", title_zh="退款", title_en="refund", due_at=due)]
        await repo.create(Execution(case_id="F-1", case_number="TS-F-1", customer_id="matrix-customer",
                                    status="executing", steps=steps), [])

        async with api.client(api.token("customer")) as customer:
            assert (await customer.get("/executions/F-1")).status_code == 200
        async with api.client(api.token("customer", sub="c2", customer_id="c2")) as stranger:
            mine, nothing = await stranger.get("/executions/F-1"), await stranger.get("/executions/F-NONE")
            assert mine.status_code == nothing.status_code == 404
            assert mine.json()["detail"].replace("F-1", "X") == nothing.json()["detail"].replace("F-NONE", "X")
            assert (await stranger.post("/executions/F-1/steps/s1/complete", json={})).status_code == 403

        async with api.client(api.token("ops", sub="ops-7")) as ops:
            resp = await ops.post("/executions/F-1/steps/s1/complete", json={"by": "the-ceo", "evidence_ref": "RF-1"})
            assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "by"
            resp = await ops.post("/executions/F-1/steps/s1/complete", json={"evidence_ref": "RF-1"})
            assert resp.status_code == 200, resp.text
            assert resp.json()["steps"][0]["done_by"] == "ops-7"
            resp = await ops.post("/executions/F-1/callback", json={"satisfied": True, "score": 5, "by": "x"})
            assert resp.status_code == 422
            resp = await ops.post("/executions/F-1/callback", json={"satisfied": True, "score": 5})
            assert resp.status_code == 200, resp.text
            assert resp.json()["callback"]["by"] == "ops-7" and resp.json()["status"] == "closed"
