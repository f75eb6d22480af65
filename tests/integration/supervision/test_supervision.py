"""Supervision on the real stack: it watches streams, deadlines and dead letters."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed, FollowupCompleted
from shared.kafka import DeadLetter, Publisher, ensure_topics
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
