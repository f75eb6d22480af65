"""Schemathesis against every API's OpenAPI, on the real stack.

Each HTTP API (intake, investigation, negotiation, follow-up, supervision) runs as
its own process (``python -m services.<name> api``, as production runs it) on this test's
Kafka and FerretDB. Schemathesis reads the schema the process serves at ``/openapi.json`` and,
for every operation, sends a bounded number of generated requests — valid ones and invalid
ones (wrong types, missing fields, out-of-range values) — with a token of a role
docs/security.md lets through that route (a customer's as well where customers may call it).
Each answer must

- not be a server error (5xx): bad input is a 4xx naming the field;
- conform to the schema: a documented status's body validates against its declared schema,
  and the content type is the declared one.

Path values are generated too, so most reads of a case answer 404; for negotiation and
follow-up each case route also gets valid requests on a seeded open case (and plan), which
reach the handlers. ``PARLEY_SCHEMATHESIS_EXAMPLES``
(default 15) bounds the examples per operation and mode.
"""

from __future__ import annotations

import asyncio
import os
import socket
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from shared.auth import AuthSettings, mint
from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from tests.integration.test_access_matrix import IDENTITIES, OPEN, documented_matrix
from tests.support.processes import running_service, service_env

pytestmark = pytest.mark.integration

SECRET = "schemathesis-secret-that-is-long-enough-for-hs256-0123"
EXAMPLES = int(os.environ.get("PARLEY_SCHEMATHESIS_EXAMPLES", "15"))
SERVICES = ("intake", "investigation", "negotiation", "followup", "supervision")
#: which allowed role calls an operation: the first of these the route lets through
PREFERENCE = ("manager", "ops", "channel", "team_lead", "agent", "committee", "auditor", "investigator", "customer")
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def callers(allowed: frozenset[str]) -> list[str]:
    """The roles that call an operation: the preferred allowed role, plus a customer when allowed."""
    chosen = [next(role for role in PREFERENCE if role in allowed)] if allowed else []
    if "customer" in allowed and "customer" not in chosen:
        chosen.append("customer")
    return chosen


async def seed(name: str, settings: CommonSettings) -> dict[str, str]:
    """Real records for the generated requests to reach past the 404s: path values naming them.

    Negotiation: an open workspace of the matrix customer, assigned to the matrix agent.
    Follow-up: an execution plan of the matrix customer with one institution step.
    """
    from shared.mongo import make_client, service_database

    client = make_client(settings.mongo)
    try:
        db = service_database(client, settings.mongo, name)
        now = datetime.now(UTC)
        if name == "negotiation":
            from services.negotiation import handlers
            from services.negotiation.models import AgentProfile
            from services.negotiation.repository import Repository
            from services.negotiation.settings import Settings
            from shared.contracts.common import Category
            from shared.topics import decode
            from tests.integration.negotiation.support import completed, registered

            repo = Repository(db)
            await repo.put_agent(AgentProfile(agent_id=IDENTITIES["agent"]["sub"], team=IDENTITIES["agent"]["team"],
                                              categories=["pricing_fees"]))
            reg = registered("ST-1", IDENTITIES["customer"]["customer_id"])
            own = Settings(environment="test", kafka=settings.kafka, mongo=settings.mongo)
            await handlers.record_registration(decode("complaint.registered", reg.to_bytes()), repo=repo, now=now)
            await handlers.open_workspace(decode("investigation.completed", completed(
                "ST-1", category=Category.PRICING_FEES, cause=reg)), repo=repo, settings=own, now=now)
            return {"case_id": "ST-1"}
        if name == "followup":
            from services.followup.models import Execution, Step
            from services.followup.repository import Repository as Plans

            steps = [Step(step_id="s1", kind="refund", owner="institution", title_zh="退款", title_en="refund",
                          due_at=now + timedelta(days=3))]
            await Plans(db).create(Execution(case_id="ST-1", case_number="TS-ST-1",
                                             customer_id=IDENTITIES["customer"]["customer_id"],
                                             status="executing", steps=steps), [])
            return {"case_id": "ST-1", "step_id": "s1"}
        return {}
    finally:
        await client.close()


def exercise(operation: Any, base_url: str, headers: dict[str, str], mode: GenerationMode,
             known: dict[str, str] | None = None) -> str | None:
    """Run ``EXAMPLES`` generated requests of one mode; the first failure's report, or None.

    ``known`` fixes path values to records that exist (the other values are generated)."""

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=known or None))
    @hsettings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
               phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
               report_multiple_bugs=False)
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=60)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body): nothing to send
        assert mode is GenerationMode.NEGATIVE, f"no valid request of {operation.label} could be generated"
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected: every operation is tried, then all failures shown
        return "".join(traceback.format_exception_only(exc))[-3000:]
    return None


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", SERVICES)
def test_no_request_makes_a_server_error_or_breaks_the_schema(
    name: str, settings: CommonSettings, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(settings.kafka))
    known = asyncio.run(seed(name, settings))
    matrix = documented_matrix()[name]
    auth = AuthSettings(secret=SecretStr(SECRET))
    env = service_env(settings, PARLEY_AUTH_SECRET=SECRET)
    port = _port()
    base = f"http://127.0.0.1:{port}"
    with running_service(f"services.{name}", ["api", "--port", str(port)], env, tmp_path / f"{name}-api.log",
                         ready_url=f"{base}/health", timeout=180) as api:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        failures: list[str] = []
        tried = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            key = (operation.method.upper(), operation.path)
            if key in OPEN:
                roles: list[str | None] = [None]
            else:
                assert key in matrix, f"{key} has no row in docs/security.md"
                roles = list(callers(matrix[key]))
            for role in roles:
                headers = {} if role is None else {
                    "Authorization": f"Bearer {mint(auth, role=role, **IDENTITIES[role])}"}
                params = {p.name for p in operation.path_parameters}
                fixed = {k: v for k, v in known.items() if k in params}
                runs = [(mode, None) for mode in GenerationMode] + [(GenerationMode.POSITIVE, fixed)] * bool(fixed)
                for mode, values in runs:
                    tried += 1
                    failure = exercise(operation, base, headers, mode, values)
                    if failure is not None:
                        on = f" on {values}" if values else ""
                        failures.append(f"--- {key[0]} {key[1]} as {role or 'anonymous'} ({mode.value}{on}):\n{failure}")
        assert tried >= 4, f"{name}: only {tried} operation runs; is the schema served?"
        server_errors = api.log_text().count("Traceback")
        assert not failures, f"{name}: {len(failures)} failing operation runs ({server_errors} tracebacks " \
                             f"in the API log):\n" + "\n".join(failures)
