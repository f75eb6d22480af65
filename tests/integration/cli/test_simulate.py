"""``parley simulate`` on the real test Kafka + FerretDB: every service as its own process on
one accelerated clock, a short simulated month, and a report whose numbers match the APIs."""

from __future__ import annotations

import asyncio
import csv
import json
import random
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from shared.auth import mint
from shared.settings import CommonSettings
from tests.support.processes import service_env

REPO = Path(__file__).resolve().parents[3]
N = 12


def _free_port() -> int:
    """A free port below Linux's ephemeral range (see the README's Ports)."""
    for _ in range(200):
        port = random.randrange(20_000, 32_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


async def _api_numbers(env: dict[str, str], first: str, after: str) -> dict[str, int]:
    """What intake and negotiation say of the month, read here independently of the report."""
    auth = CommonSettings().auth
    auditor = mint(auth, sub="t", role="auditor")
    manager = mint(auth, sub="t", role="manager")
    intake = f"http://127.0.0.1:{env['PARLEY_INTAKE_PORT']}"
    negotiation = f"http://127.0.0.1:{env['PARLEY_NEGOTIATION_PORT']}"
    async with httpx.AsyncClient(timeout=60) as client:
        page = (await client.get(f"{intake}/cases", headers={"Authorization": f"Bearer {auditor}"}, params={
            "received_from": f"{first}T00:00:00+08:00", "received_to": f"{after}T00:00:00+08:00",
            "page_size": 100})).json()
        statuses = []
        for case in page["items"]:
            ws = (await client.get(f"{negotiation}/cases/{case['case_id']}",
                                   headers={"Authorization": f"Bearer {manager}"})).json()
            statuses.append(ws)
    return {"cases": page["total"], "settled": sum(1 for ws in statuses if ws.get("agreement")),
            "escalated": sum(1 for ws in statuses if ws.get("escalation")),
            "received_at": [c["received_at"] for c in page["items"]]}  # type: ignore[dict-item]


@pytest.mark.timeout(1200)
def test_simulated_month_reports_what_the_apis_say(cli_env: CommonSettings, tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = service_env(
        cli_env, PARLEY_VAR_DIR=str(var), PARLEY_RUN_DIR=str(tmp_path / "run"),
        PARLEY_INTAKE_PORT=str(_free_port()), PARLEY_NEGOTIATION_PORT=str(_free_port()),
        PARLEY_FOLLOWUP_PORT=str(_free_port()), PARLEY_SUPERVISION_PORT=str(_free_port()),
        PARLEY_INVESTIGATION_PORT=str(_free_port()),
    )
    env.pop("PARLEY_INTAKE_URL", None)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "deploy.cli.main", "simulate", "-n", str(N), "--days", "12", "--speed", "8640",
             "--no-stack", "--concurrency", "4"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=1100)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out[-4000:]
        # the parts, in order
        positions = [out.find(s) for s in ("1. stack", "2. services", "3. simulation", "day 12.0/12", "4. report",
                                           "cases 案件", "where to look next", "/console")]
        assert all(p >= 0 for p in positions) and positions == sorted(positions), out[-4000:]

        state = json.loads((var / "simulations" / "last.json").read_text())
        head = state["headline"]
        begin = datetime.fromisoformat(state["begin"])
        assert begin >= datetime(2026, 3, 2, tzinfo=UTC)  # the simulated clock, not the machine's
        first = out.split("parley report --from ")[1].split()[0]
        after = out.split("parley report --from ")[1].split()[2]
        api = asyncio.run(_api_numbers(env, first, after))
        assert head["cases"] == api["cases"] == N, (head, api)
        assert head["settled"] == api["settled"] and head["escalated"] == api["escalated"], (head, api)
        assert head["settled"] + head["escalated"] > 0
        # every complaint arrived inside the simulated month, far from the machine's present
        for received in api["received_at"]:  # type: ignore[attr-defined]
            at = datetime.fromisoformat(received)
            assert begin <= at <= begin + timedelta(days=13)
            assert at < datetime.now(UTC) - timedelta(days=30)
        csv_path = next(Path(p) for p in state["reports"] if p.endswith(".csv"))
        rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
        assert len(rows) == N and {r["status"] for r in rows} <= {"open", "agreed", "escalated",
                                                                  "awaiting_investigation"}
        assert Path(next(p for p in state["reports"] if p.endswith(".html"))).read_text(encoding="utf-8").count(
            "<tr>") > N
    finally:
        subprocess.run([sys.executable, "-m", "deploy.local.services", "stop"], cwd=REPO, env=env,
                       capture_output=True, timeout=120)
