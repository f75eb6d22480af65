"""Supervision's web console on the real stack (Kafka + FerretDB), through its API app with httpx.

The app is supervision's own (``shared.service.build_api`` from its spec, real lifespan), called
in-process; its store holds cases, an alert and a dead letter written by supervision's handlers,
and the dead letter is a real record on a real ``.dlq`` topic, replayed to its real source topic.
(A real browser — Playwright — is not part of this slice.)
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.supervision import handlers
from services.supervision.app import SPEC
from services.supervision.settings import Settings
from shared.audit import MongoChainStore, verify
from shared.auth import mint
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.contracts.supervision import SupervisionAlert
from shared.kafka import DeadLetter, Publisher, ensure_topics
from shared.kafka.dlq import read_headers
from shared.mongo import make_client
from shared.service import build_api
from shared.settings import CommonSettings
from tests.support.events import registered
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@asynccontextmanager
async def console_app(settings: CommonSettings, **extra: Any) -> AsyncIterator[tuple[Any, Settings]]:
    own = Settings(environment="test", kafka=settings.kafka, mongo=settings.mongo, **extra)
    app = build_api(SPEC, own)
    client = make_client(own.mongo)
    try:
        async with app.router.lifespan_context(app):
            yield app, own
    finally:
        await client.drop_database(own.mongo.database("supervision"))
        await client.close()


def browser(app: Any) -> httpx.AsyncClient:
    """A client that keeps cookies, like a browser (redirects are looked at, not followed)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test")


async def sign_in(http: httpx.AsyncClient, token: str) -> None:
    resp = await http.post("/console/login", data={"token": token})
    assert resp.status_code == 303 and resp.headers["location"] == "/console", resp.text
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie


async def page(http: httpx.AsyncClient, path: str, status: int = 200) -> str:
    resp = await http.get(path)
    assert resp.status_code == status, (path, resp.status_code, resp.text[:500])
    assert resp.headers["content-type"].startswith("text/html")
    return resp.text


async def dead_letter_on_kafka(settings: CommonSettings) -> Any:
    """A real dead letter of intake's on ``complaint.received.dlq``; its record."""
    async with Publisher(settings.kafka) as publisher:
        async def send(topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
            await publisher._producer.send_and_wait(topic, value=value, key=key, headers=headers)  # noqa: SLF001

        await DeadLetter(send=send, consumer="intake", topic_prefix=settings.kafka.topic_prefix)(
            topic="complaint.received", key=b"app-88", value=b'{"broken": ', partition=0, offset=5,
            reason="value is not valid JSON",
        )
    [record] = await read_all(settings, "complaint.received.dlq", expected=1)
    return record


async def test_console_for_ops_and_auditors(settings: CommonSettings) -> None:
    await ensure_topics(settings.kafka)
    now = datetime.now(UTC)
    async with console_app(settings) as (app, own):
        repo = app.state.deps.repo
        soon, later = registered("case-a", received_at=now - timedelta(days=14), number=1), registered("case-b", number=2)
        closed = Envelope.wrap(CaseClosed(case_number="TS-B", outcome="resolved"), case_id="case-b",
                               producer="followup", cause=later)
        await handlers.record_events([soon, later, closed, registered("case-c", number=3)], repo=repo)
        alert = Envelope.wrap(SupervisionAlert(kind="case_reopened", severity="warning", message="客户重新投诉"),
                              case_id="case-a", producer="followup")
        alert_id = f"event:{alert.event_id}"
        assert await repo.store_alert(alert_id, alert)
        letter = await dead_letter_on_kafka(settings)
        assert await handlers.record_dead_letter(
            source_topic="complaint.received", partition=letter.partition, offset=letter.offset,
            headers=read_headers(letter.headers), key="app-88", now=now, repo=repo)

        ops_token = mint(own.auth, role="ops", sub="ops-me")
        api = {"Authorization": f"Bearer {ops_token}"}
        async with browser(app) as http:
            # not signed in: the pages answer 401 with a way to the login; the login is open
            resp = await http.get("/console")
            assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
            assert 'href="/console/login"' in resp.text
            assert "<textarea" in await page(http, "/console/login")
            refused = await http.post("/console/login", data={"token": "not-a-jwt"})
            assert refused.status_code == 200 and 'id="login-error"' in refused.text
            manager = await http.post("/console/login", data={"token": mint(own.auth, role="manager", sub="m")})
            assert 'id="login-error"' in manager.text and "parley_console" not in manager.headers.get("set-cookie", "")

            await sign_in(http, ops_token)

            # overview: the funnel has GET /overview's numbers (zh-CN by default)
            html = await page(http, "/console")
            overview = (await http.get("/overview", headers=api)).json()
            shown = {s: int(n) for s, n in re.findall(r'data-status="(\w+)">(\d+)<', html)}
            assert overview["cases_by_status"] == {"registered": 2, "closed": 1}
            assert {s: n for s, n in shown.items() if n} == overview["cases_by_status"]
            assert re.search(r'id="cases-total">3<', html)
            assert re.search(r'id="dead-letters-total">1<', html)
            assert "案件漏斗" in html and "Cases by status" not in html
            assert [m for m in re.findall(r'data-stage="(\w+)"', html)][:7] == [
                "registered", "investigated", "negotiating", "offer", "settled_escalated", "executed", "closed"]

            # ?lang=en switches the words and is remembered
            english = await http.get("/console?lang=en")
            assert "Cases by status" in english.text and "案件漏斗" not in english.text
            assert "parley_lang=en" in english.headers["set-cookie"]
            assert "Alerts" in await page(http, "/console/alerts")
            assert "案件漏斗" in await page(http, "/console?lang=zh")

            # alerts: acknowledge through the form (CSRF token required)
            html = await page(http, "/console/alerts?status=open")
            assert alert_id in html and "/acknowledge" in html
            assert 'id="lang-switch"' in html and 'href="?status=open&amp;lang=en"' in html  # keeps the filter
            [csrf] = set(CSRF.findall(html))
            no_csrf = await http.post(f"/console/alerts/{alert_id}/acknowledge", data={"note": "x"})
            assert no_csrf.status_code == 400
            bad = await http.post(f"/console/alerts/{alert_id}/acknowledge", data={"note": "x", "csrf": "0" * 40})
            assert bad.status_code == 400
            done = await http.post(f"/console/alerts/{alert_id}/acknowledge",
                                   data={"note": "calling back", "csrf": csrf, "back": "open"})
            assert done.status_code == 303 and done.headers["location"] == "/console/alerts?status=open"
            [acked] = (await http.get("/alerts?status=acknowledged", headers=api)).json()
            assert acked["alert_id"] == alert_id
            assert acked["acknowledged"]["by"] == "ops-me" and acked["acknowledged"]["note"] == "calling back"
            assert alert_id not in await page(http, "/console/alerts?status=open")
            assert "ops-me" in await page(http, "/console/alerts?status=acknowledged")
            # then resolved through the same row's Resolve button
            assert "/resolve" in await page(http, "/console/alerts?status=acknowledged")
            assert (await http.post(f"/console/alerts/{alert_id}/resolve", data={"note": "x"})).status_code == 400
            resolved = await http.post(f"/console/alerts/{alert_id}/resolve",
                                       data={"note": "customer called back", "csrf": csrf, "back": "acknowledged"})
            assert resolved.status_code == 303
            [done_alert] = [a for a in (await http.get("/alerts?status=resolved", headers=api)).json()
                            if a["alert_id"] == alert_id]
            assert done_alert["resolved"]["by"] == "ops-me" and done_alert["acknowledged"]["note"] == "calling back"
            assert alert_id not in await page(http, "/console/alerts?status=acknowledged")
            acted = await repo.db["audit_chain"].find({"details.alert_id": alert_id}).sort("_id", 1).to_list()
            assert [(a["action"], a["who"], a["role"]) for a in acted] == [
                ("alert_acknowledged", "ops-me", "ops"), ("alert_resolved", "ops-me", "ops")]  # once each

            # dead letters: listed with reason, source and position; replayed once, however often pressed
            html = await page(http, "/console/dead-letters")
            marker = f"complaint.received.dlq:{letter.partition}:{letter.offset}"
            assert f'data-dead-letter="{marker}"' in html and "value is not valid JSON" in html
            assert "complaint.received@0/5" in html and "/console/dead-letters/replay" in html
            form = {"csrf": csrf, "dlq_topic": "complaint.received.dlq", "partition": str(letter.partition),
                    "offset": str(letter.offset)}
            first = await http.post("/console/dead-letters/replay", data=form)
            assert first.status_code == 200 and 'data-outcome="replayed"' in first.text, first.text[:500]
            second = await http.post("/console/dead-letters/replay", data=form)
            assert second.status_code == 200 and 'data-outcome="already"' in second.text
            assert "/console/dead-letters/replay" not in second.text  # no Replay button once replayed
            records = await read_all(settings, "complaint.received", until=lambda rs: len(rs) >= 1)
            replays = [r for r in records if dict(r.headers or []).get("replayed_from") == marker.encode()]
            assert len(replays) == 1 and replays[0].value == b'{"broken": ' and replays[0].key == b"app-88"
            audit = await repo.db["audit_chain"].find({"action": "console replay dead letter"}).to_list()
            assert [(a["who"], a["details"]["outcome"]) for a in audit] == [("ops-me", "replayed"), ("ops-me", "already")]
            assert (await verify(MongoChainStore(repo.db))).intact

            # lag, the case search and a case's timeline
            lag = await page(http, "/console/lag")
            assert f"{settings.kafka.topic_prefix}parley-supervision" in lag
            found = await page(http, f"/console/cases?q={soon.payload.case_number}")
            assert 'href="/console/cases/case-a"' in found and "case-b" not in found
            assert 'href="/console/cases/case-b"' in await page(http, "/console/cases?q=case-b")
            assert 'id="no-match"' in await page(http, "/console/cases?q=nothing-like-it")
            timeline = await page(http, "/console/cases/case-b")
            assert re.findall(r'data-event="([\w.]+)"', timeline) == ["complaint.registered", "case.closed"]
            assert 'id="case-status">closed<' in timeline
            await page(http, "/console/cases/nope", status=404)

            # sign out: the cookie is gone
            out = await http.post("/console/logout")
            assert out.status_code == 200 and 'parley_console=""' in out.headers["set-cookie"]
            assert (await http.get("/console")).status_code == 401

        # an auditor sees everything, but no Acknowledge or Replay, and is refused both POSTs
        auditor_token = mint(own.auth, role="auditor", sub="aud-1")
        await repo.store_alert("event:another", Envelope.wrap(
            SupervisionAlert(kind="instalment_missed", severity="warning", message="m"), case_id="case-c",
            producer="followup"))
        async with browser(app) as http:
            await sign_in(http, auditor_token)
            html = await page(http, "/console/alerts")
            assert "event:another" in html and "/acknowledge" not in html and 'name="csrf"' not in html
            assert "/console/dead-letters/replay" not in await page(http, "/console/dead-letters")
            assert "Auditor: read only." in await page(http, "/console?lang=en")
            assert (await http.post("/console/alerts/event:another/acknowledge", data={"csrf": csrf})).status_code == 403
            assert (await http.post("/console/alerts/event:another/resolve", data={"csrf": csrf})).status_code == 403
            assert (await http.post("/console/dead-letters/replay", data=form)).status_code == 403
        async with browser(app) as http:  # the Authorization header works as well as the cookie
            resp = await http.get("/console/alerts", headers={"Authorization": f"Bearer {auditor_token}"})
            assert resp.status_code == 200
            resp = await http.get("/console", headers={"Authorization": f"Bearer {mint(own.auth, role='agent', sub='a', team='t')}"})
            assert resp.status_code == 403
