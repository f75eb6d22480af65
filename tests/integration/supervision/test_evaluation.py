"""The evaluation report, the remediation register, the deadline board, stuck cases and the
workers' heartbeats on the real stack (Kafka + FerretDB), through supervision's API app.

Cases are written by supervision's own handlers from the events services publish; the report
is read back through the API (JSON and CSV) and the console's pages; the heartbeats come from a
real consumer group on the real broker joining and leaving.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from services.supervision import app as supervision_app
from services.supervision import handlers
from shared.audit import MongoChainStore, verify
from shared.auth import mint
from shared.clock import beijing_day
from shared.contracts.envelope import Envelope
from shared.contracts.negotiation import CaseEscalated
from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from tests.integration.supervision.test_console import CSRF, browser, console_app, page, sign_in
from tests.support.events import registered, settled_story
from tests.support.eventually import eventually

pytestmark = pytest.mark.integration


async def test_evaluation_report_register_board_and_stuck_cases(settings: CommonSettings) -> None:
    await ensure_topics(settings.kafka)
    now = datetime.now(UTC)
    start = now - timedelta(days=3)
    async with console_app(settings, stuck_after_hours={"registered": 0.0005}) as (app, own):
        repo = app.state.deps.repo
        events = [*settled_story("ev-a", start, "80.00", score=5, number=1),
                  *settled_story("ev-b", start + timedelta(hours=1), "120.50", score=2, agent="a2", number=2),
                  registered("ev-c", received_at=now - timedelta(days=16), number=3),
                  registered("ev-d", received_at=now - timedelta(minutes=5), number=4)]
        escalation = Envelope.wrap(CaseEscalated(case_number="TS-3", target="mediation", reason="r"),
                                   case_id="ev-c", producer="negotiation", occurred_at=now - timedelta(hours=1))
        await handlers.record_events([*events, escalation], repo=repo)
        await handlers.record_events(events[:3], repo=repo)  # a redelivery changes nothing
        await supervision_app.check_deadlines(app.state.deps)  # ev-c: breached

        ops = mint(own.auth, role="ops", sub="ops-eval")
        api = {"Authorization": f"Bearer {ops}"}
        async with browser(app) as http:
            first = beijing_day(now - timedelta(days=20)).isoformat()
            period = f"from={first}&to={beijing_day(now).isoformat()}"
            report = (await http.get(f"/reports/evaluation?{period}", headers=api)).json()
            assert report["cases"] == 4
            assert {r["key"]: r["count"] for r in report["volumes"]["category"]} == {"collection_conduct": 2, None: 2}
            assert report["rates"]["settlement"] == {"cases": 2, "rate": 0.5}
            assert report["rates"]["escalation"] == {"cases": 1, "rate": 0.25}
            assert report["deadlines"]["breached"] == 1 and report["deadlines"]["met"] == 2
            assert report["deadlines"]["pending"] == 1
            assert report["concessions"]["total"] == "200.50"
            stages = {r["stage"]: r for r in report["stage_times"]}
            assert stages["investigation"]["p50_hours"] == 10.0 and stages["total"]["p90_hours"] == 51.0
            assert {r["key"]: r["mean_score"] for r in report["satisfaction"]["by_agent"]} == {"a1": 5.0, "a2": 2.0}
            assert [r["root_cause"] for r in report["top_root_causes"]] == ["collection_off_hours"]
            # a period without these cases, and a wrong one
            empty = (await http.get("/reports/evaluation?from=2020-01-01&to=2020-01-31", headers=api)).json()
            assert empty["cases"] == 0 and empty["deadlines"]["met_rate"] is None
            bad = await http.get("/reports/evaluation?from=2026-02-02&to=2026-02-01", headers=api)
            assert bad.status_code == 422 and "to" in bad.text
            assert (await http.get("/reports/evaluation?from=yesterday", headers=api)).status_code == 422

            # the register: created and edited through the API (ops), who and when kept
            created = await http.post("/remediations", headers=api, json={
                "root_cause": "collection_off_hours", "owner": "催收管理部", "action": "晚 8 点后停止外呼",
                "due_date": "2026-12-31"})
            assert created.status_code == 201, created.text
            item = created.json()
            assert item["status"] == "open" and item["created"]["by"] == "ops-eval"
            patched = await http.patch(f"/remediations/{item['remediation_id']}", headers=api,
                                       json={"status": "in_progress"})
            assert patched.json()["status"] == "in_progress" and patched.json()["updated"]["by"] == "ops-eval"
            assert (await http.post("/remediations", headers=api, json={"root_cause": "x", "owner": "o",
                                                                         "action": "a", "due_date": "soon"})).status_code == 422
            assert (await http.patch("/remediations/rem-none", headers=api, json={"status": "done"})).status_code == 404
            auditor = {"Authorization": f"Bearer {mint(own.auth, role='auditor', sub='aud')}"}
            assert (await http.post("/remediations", headers=auditor, json={}) ).status_code == 403
            report = (await http.get(f"/reports/evaluation?{period}", headers=api)).json()
            [listed] = report["top_root_causes"][0]["remediations"]
            assert listed["owner"] == "催收管理部" and listed["status"] == "in_progress"

            # CSV: the same numbers
            resp = await http.get(f"/reports/evaluation.csv?{period}", headers=api)
            assert resp.headers["content-type"].startswith("text/csv")
            assert "attachment" in resp.headers["content-disposition"]
            rows = list(csv.reader(io.StringIO(resp.text.lstrip("\ufeff"))))
            assert ["cases", "", "", "", "", "count", "4"] in rows
            assert ["rate", "settlement", "", "", "", "rate", "0.5"] in rows
            assert any(r[0] == "remediation" and r[3] == "晚 8 点后停止外呼" for r in rows)

            # the console: the printable page with inline SVG charts, the register's forms
            await sign_in(http, ops)
            html = await page(http, f"/console/reports/evaluation?{period}")
            assert 'id="report-cases">4<' in html and "<svg" in html and "http://" not in html.replace(
                'xmlns="http://www.w3.org/2000/svg"', "")
            assert "投诉处理总结评估报告" in html and 'data-rate="settlement"' in html
            assert re.search(r'id="concession-total">200.50<', html)
            [csrf] = set(CSRF.findall(html))
            form = {"csrf": csrf, "root_cause": "fee_opaque", "owner": "产品部", "action": "费用页面改版",
                    "due_date": "2027-01-15", "from": first}
            added = await http.post("/console/remediations", data=form)
            assert added.status_code == 303 and added.headers["location"].startswith("/console/reports/evaluation?from=")
            assert (await http.post("/console/remediations", data={**form, "csrf": "0" * 40})).status_code == 400
            assert (await http.post("/console/remediations", data={**form, "due_date": "x"})).status_code == 422
            [fee] = [d async for d in repo.remediations.find({"root_cause": "fee_opaque"})]
            saved = await http.post(f"/console/remediations/{fee['_id']}",
                                    data={"csrf": csrf, "status": "done", "owner": "产品部", "action": "费用页面改版",
                                          "due_date": "2027-01-15"})
            assert saved.status_code == 303
            assert (await repo.remediation(fee["_id"]))["status"] == "done"
            # each change of the register is once on the audit chain (API and console alike), which verifies
            changes = await repo.db["audit_chain"].find({"action": {"$in": ["remediation_added", "remediation_changed"]}}).sort("_id", 1).to_list()
            assert [(c["action"], c["who"], c["role"], c["details"]["remediation_id"]) for c in changes] == [
                ("remediation_added", "ops-eval", "ops", item["remediation_id"]),
                ("remediation_changed", "ops-eval", "ops", item["remediation_id"]),
                ("remediation_added", changes[2]["who"], "ops", fee["_id"]),
                ("remediation_changed", changes[2]["who"], "ops", fee["_id"])]
            assert changes[1]["details"]["changed"] == ["status"] and changes[3]["details"]["status"] == "done"
            assert (await verify(MongoChainStore(repo.db))).intact
            csv_page = await http.get(f"/console/reports/evaluation.csv?{period}")
            assert csv_page.status_code == 200 and csv_page.headers["content-type"].startswith("text/csv")
            assert "Complaint handling evaluation report" in await page(http, f"/console/reports/evaluation?{period}&lang=en")
            await page(http, "/console/reports/evaluation?from=2026-13-01", status=422)

            # the deadline board: ev-d due in 15 days is not this week; ev-c breached
            board = (await http.get("/deadlines", headers=api)).json()
            assert [c["case_id"] for c in board["breached"]] == ["ev-c"]
            assert "ev-d" not in [c["case_id"] for c in board["due_this_week"]]
            html = await page(http, "/console/deadlines")
            assert f'id="board-breached">{len(board["breached"])}<' in html and 'data-case="ev-c"' in html

        # stuck: ev-d has had no event in "registered" for longer than 1.8 s
        await asyncio.sleep(2)
        written = await supervision_app.check_stuck(app.state.deps)
        stuck = [w.doc_id for w in written]
        assert any(s.startswith("case_stuck:ev-d:registered:") for s in stuck), stuck
        assert await supervision_app.check_stuck(app.state.deps) == []  # once
        doc = await repo.alert(next(s for s in stuck if s.startswith("case_stuck:ev-d")))
        assert doc["kind"] == "case_stuck" and "registered" in doc["message"]
        # an event clears the mark: stuck again later is a new alert
        await handlers.record_events([registered("ev-d", received_at=now - timedelta(minutes=5), number=4)
                                      .model_copy(update={"occurred_at": datetime.now(UTC)})], repo=repo)
        assert (await repo.cases.find_one({"_id": "ev-d"})).get("stuck") is None
        await supervision_app.check_stuck(app.state.deps)  # the next sweep resolves the alert
        doc = await repo.alert(next(s for s in stuck if s.startswith("case_stuck:ev-d")))
        assert doc["status"] == "resolved" and doc["resolved"]["by"] == "supervision"


async def joined(settings: CommonSettings, group: str) -> AIOKafkaConsumer:
    """A real consumer in ``group`` (as intake's worker would be), once it has its partitions."""
    consumer = AIOKafkaConsumer(settings.kafka.topic("complaint.received"), bootstrap_servers=settings.kafka.bootstrap,
                                group_id=group, session_timeout_ms=10_000, heartbeat_interval_ms=1_000)
    await consumer.start()
    await eventually(lambda: consumer.assignment(), timeout=60, what="the consumer joined")
    return consumer


async def test_heartbeats_from_a_real_consumer_group(settings: CommonSettings) -> None:
    await ensure_topics(settings.kafka)
    group = f"{settings.kafka.topic_prefix}parley-intake"
    async with console_app(settings, heartbeat_down_after_s=0.5, heartbeat_stall_after_s=3600) as (app, _own):
        deps = app.state.deps
        consumer = await joined(settings, group)
        try:

            async def members() -> int:
                await supervision_app.check_lag(deps)
                return int((await deps.repo.heartbeat_states())[group]["members"])

            await eventually(members, timeout=60, what="the group's member is seen")
        finally:
            await consumer.stop()  # leaves the group at once
        await supervision_app.check_lag(deps)  # no members: down since now
        await asyncio.sleep(0.6)

        async def down() -> list[str]:
            await supervision_app.check_lag(deps)
            return [a["_id"] for a in await deps.repo.list_alerts("worker_down", 10)]

        [alert_id] = await eventually(down, timeout=30, what="worker_down raised")
        assert alert_id.startswith(f"worker_down:{group}:")
        await supervision_app.check_lag(deps)
        assert len(await deps.repo.list_alerts("worker_down", 10)) == 1  # once per episode
        ops = mint(_own.auth, role="ops", sub="o")
        async with browser(app) as http:
            beats = (await http.get("/heartbeats", headers={"Authorization": f"Bearer {ops}"})).json()
            [mine] = [b for b in beats if b["group"] == group]
            assert mine["members"] == 0 and mine["down_alert"] == alert_id
            await sign_in(http, ops)
            assert f'data-heartbeat="{group}"' in await page(http, "/console/lag")

        # the worker comes back: the alert is resolved by supervision
        consumer = await joined(settings, group)
        try:

            async def resolved() -> Any:
                await supervision_app.check_lag(deps)
                doc = await deps.repo.alert(alert_id)
                return doc if doc and doc.get("status") == "resolved" else None

            doc = await eventually(resolved, timeout=60, what="worker_down resolved")
            assert doc["resolved"]["by"] == "supervision"
        finally:
            await consumer.stop()
