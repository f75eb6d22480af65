"""Supervision on the real stack: it watches streams, deadlines and dead letters."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.audit import AuditChain, MongoChainStore, verify
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed, FollowupCompleted
from shared.kafka import DeadLetter, Publisher, ensure_topics
from shared.mongo import service_database
from shared.settings import CommonSettings
from shared.topics import decode
from tests.support.events import registered
from tests.support.eventually import eventually
from tests.support.kafka import read_all
from tests.support.processes import WORKER_READY, running_service, service_env
from tests.support.tokens import bearer

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_supervision_tracks_cases_deadlines_and_dead_letters(settings: CommonSettings, tmp_path: Path) -> None:
    await ensure_topics(settings.kafka)
    now = datetime.now(UTC)
    due_soon = registered("case-soon", received_at=now - timedelta(days=14), number=1)
    due_later = registered("case-later", received_at=now, number=2)
    env = service_env(
        settings, PARLEY_SUPERVISION_SWEEP_INTERVAL_S="1", PARLEY_SUPERVISION_WARNING_DAYS="3"
    )
    port = _free_port()
    with running_service("services.supervision", ["worker"], env, tmp_path / "worker.log", ready_text=WORKER_READY), \
         running_service("services.supervision", ["api", "--port", str(port)], env, tmp_path / "api.log", ready_url=f"http://127.0.0.1:{port}/health"):
        async with Publisher(settings.kafka) as publisher:
            for event in (due_soon, due_later, due_soon):  # the repeat is a redelivery
                await publisher.publish(event)
            # follow-up's last two events on different topics, arriving in the "wrong" order
            await publisher.publish(Envelope.wrap(CaseClosed(case_number="TS-2", outcome="resolved"), case_id="case-later", producer="followup"))
            await publisher.publish(Envelope.wrap(FollowupCompleted(case_number="TS-2", satisfied=True), case_id="case-later", producer="followup"))

            async def send(topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
                await publisher._producer.send_and_wait(topic, value=value, key=key, headers=headers)  # noqa: SLF001

            await DeadLetter(send=send, consumer="intake", topic_prefix=settings.kafka.topic_prefix)(
                topic="complaint.received", key=b"app-77", value=b"{not json", partition=0, offset=3,
                reason="value is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
            )

        def kinds(records: list[Any]) -> set[str]:
            return {decode("supervision.alert", r.value).payload.kind for r in records}

        records = await read_all(
            settings, "supervision.alert", until=lambda rs: {"deadline_warning", "dead_letter"} <= kinds(rs), timeout=60
        )
        alerts = [decode("supervision.alert", r.value) for r in records]
        warning = next(a for a in alerts if a.payload.kind == "deadline_warning")
        assert warning.case_id == "case-soon"
        assert not any(a.case_id == "case-later" for a in alerts)
        dead = next(a for a in alerts if a.payload.kind == "dead_letter")
        assert "not valid JSON" in dead.payload.message

        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as anonymous:
            assert (await anonymous.get("/overview")).status_code == 401  # supervision is for ops and auditors
            assert (await anonymous.get("/overview", headers=bearer("manager"))).status_code == 403
        async with httpx.AsyncClient(base_url=base, timeout=5, headers=bearer("ops")) as http:

            async def get(path: str) -> Any:
                resp = await http.get(path)
                assert resp.status_code == 200, (path, resp.status_code, resp.text)
                return resp.json()

            case = await get("/cases/case-soon")
            assert case["status"] == "registered"
            assert [e["event_type"] for e in case["timeline"]] == ["complaint.registered"]  # once, despite redelivery
            assert "deadline_warning" in case["alerts"]
            [letter] = await get("/dead-letters")
            assert letter["consumer"] == "intake" and letter["source_offset"] == 3
            later = await eventually(lambda: get("/cases/case-later"), until=lambda c: c["status"] == "closed",
                                     what="case-later to be closed", timeout=10)
            assert len(later["timeline"]) == 3
            overview = await get("/overview")
            assert overview["cases_by_status"] == {"registered": 1, "closed": 1}
            assert (await http.get("/cases/nope")).status_code == 404


async def test_alerts_of_every_service_are_acted_on_and_lag_and_metrics_answer(
        settings: CommonSettings, tmp_path: Path, mongo_client: Any) -> None:
    """Follow-up's alert reaches GET /alerts (supervision's own are not stored twice); an ops
    person acknowledges and resolves it as their token's subject, each once on supervision's
    audit chain, which verifies; /lag shows the worker's group caught up; /metrics answers
    with parley_ metrics."""
    from shared.contracts.supervision import SupervisionAlert

    await ensure_topics(settings.kafka)
    env = service_env(settings, PARLEY_SUPERVISION_SWEEP_INTERVAL_S="1", PARLEY_SUPERVISION_LAG_INTERVAL_S="2")
    port = _free_port()
    reopened = Envelope.wrap(SupervisionAlert(kind="case_reopened", severity="warning", message="客户重新投诉 / reopened"),
                             case_id="case-r", producer="followup")
    own = Envelope.wrap(SupervisionAlert(kind="deadline_warning", severity="warning", message="own"),
                        case_id="case-o", producer="supervision")
    with running_service("services.supervision", ["worker"], env, tmp_path / "worker.log", ready_text=WORKER_READY), \
         running_service("services.supervision", ["api", "--port", str(port)], env, tmp_path / "api.log", ready_url=f"http://127.0.0.1:{port}/health"):
        async with Publisher(settings.kafka) as publisher:
            for event in (reopened, reopened, own):  # a repeat, and one of supervision's own
                await publisher.publish(event)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20,
                                     headers=bearer("ops", sub="ops-42")) as http:
            alerts = await eventually(lambda: _json(http.get("/alerts")), until=lambda a: len(a) >= 1,
                                      what="follow-up's alert in supervision", timeout=60)
            [alert] = alerts  # once, and supervision's own (published here by hand) not stored from Kafka
            assert alert["alert_id"] == f"event:{reopened.event_id}"
            assert (alert["producer"], alert["kind"], alert["status"]) == ("followup", "case_reopened", "open")

            auditor = await http.post(f"/alerts/{alert['alert_id']}/acknowledge", json={}, headers=bearer("auditor"))
            assert auditor.status_code == 403
            acked = (await http.post(f"/alerts/{alert['alert_id']}/acknowledge", json={"note": "calling"})).json()
            assert acked["status"] == "acknowledged" and acked["acknowledged"]["by"] == "ops-42"
            assert acked["acknowledged"]["note"] == "calling"
            again = await http.post(f"/alerts/{alert['alert_id']}/acknowledge", json={"note": "x"},
                                    headers=bearer("ops", sub="ops-7"))
            assert again.status_code == 200 and again.json()["acknowledged"] == acked["acknowledged"]
            assert [a["alert_id"] for a in await _json(http.get("/alerts?status=acknowledged"))] == [alert["alert_id"]]
            assert await _json(http.get("/alerts?status=open")) == []
            done = (await http.post(f"/alerts/{alert['alert_id']}/resolve", json={"note": "refunded"})).json()
            assert done["status"] == "resolved" and done["resolved"]["by"] == "ops-42"
            assert done["acknowledged"] == acked["acknowledged"]
            assert (await http.post("/alerts/nope/resolve", json={})).status_code == 404
            store = MongoChainStore(service_database(mongo_client, settings.mongo, "supervision"))
            chain, _ = await AuditChain(store).read(limit=50)
            assert [(r["action"], r["who"], r["role"], r["case_id"], r["details"]["alert_id"]) for r in chain] == [
                ("alert_acknowledged", "ops-42", "ops", "case-r", alert["alert_id"]),
                ("alert_resolved", "ops-42", "ops", "case-r", alert["alert_id"])]  # ops-7's late one is not
            assert (await verify(store)).intact

            group = f"{settings.kafka.topic_prefix}parley-supervision"

            def caught_up(view: dict[str, Any]) -> bool:
                rows = next(g for g in view["groups"] if g["group"] == group)["partitions"]
                alert_rows = [r for r in rows if r["topic"] == "supervision.alert"]
                return sum(r["end"] for r in alert_rows) == 3 and all(r["lag"] == 0 for r in alert_rows)

            lag = await eventually(lambda: _json(http.get("/lag")), until=caught_up,
                                   what="supervision's group committed past the alerts", timeout=60)
            assert {g["group"] for g in lag["groups"]} >= {group, f"{settings.kafka.topic_prefix}parley-followup"}

            metrics = await http.get("/metrics", headers={"Authorization": ""})
            assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
            assert 'parley_http_request_seconds_count{method="GET",route="/alerts"' in metrics.text
            assert "parley_consumer_lag{" in metrics.text and "parley_supervision_cases_due_today" in metrics.text


async def _json(request: Any) -> Any:
    resp = await request
    assert resp.status_code == 200, resp.text
    return resp.json()
