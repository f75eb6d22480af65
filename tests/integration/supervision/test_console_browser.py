"""The operations console in a real browser: Playwright driving Debian's Chromium against
supervision's worker and API running as real processes on the real stack (Kafka + FerretDB).

Real events go onto the real topics (two cases that run their whole course, one past its
deadline, one near it, an alert follow-up raised, a dead letter of intake's); then a person
signs in, reads the funnel (the numbers ``GET /overview`` gives), the deadline board,
acknowledges an alert, replays the dead letter and sees it registered (on Kafka too), finds a
case and opens its timeline, reads this period's evaluation report, downloads its CSV and
switches to English. Each page is photographed; with ``PARLEY_CONSOLE_SCREENSHOTS=<dir>``
(e.g. ``docs/console``) the pictures are kept there.

Chromium comes from Debian (``deploy/local/ensure_chromium.sh``, run by ``make setup``), never
downloaded by Playwright. Without ``/usr/bin/chromium`` the test is skipped with the reason —
except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.auth import AuthSettings, mint
from shared.clock import beijing_day
from shared.contracts.envelope import Envelope
from shared.contracts.supervision import SupervisionAlert
from shared.kafka import DeadLetter, Publisher, ensure_topics
from shared.settings import CommonSettings
from tests.support.events import registered, settled_story
from tests.support.eventually import eventually
from tests.support.kafka import read_all
from tests.support.processes import WORKER_READY, running_service, service_env

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium"))
REPO = Path(__file__).resolve().parents[3]


def _browser_or_skip() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing: Debian's chromium could not be installed (deploy/local/ensure_chromium.sh)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[dev]')"
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the browser test must run in CI: {problem}")
    pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Shots:
    """Screenshots of each page: in the test's directory, and kept under ``PARLEY_CONSOLE_SCREENSHOTS``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        kept = os.environ.get("PARLEY_CONSOLE_SCREENSHOTS")
        self.kept = (REPO / kept) if kept and not Path(kept).is_absolute() else (Path(kept) if kept else None)

    async def take(self, page: Any, name: str, *, full_page: bool = True) -> None:
        path = self.tmp / f"{name}.png"
        await page.screenshot(path=str(path), full_page=full_page)
        assert path.stat().st_size > 5_000, f"{name}: an empty screenshot"
        if self.kept is not None:
            self.kept.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.kept / f"{name}.png")


async def publish_the_day(settings: CommonSettings, now: datetime) -> dict[str, Any]:
    """Real events on the real topics; what the test looks for afterwards."""
    start = now - timedelta(days=3)
    stories = [*settled_story("web-a", start, "80.00", score=5, number=11),
               *settled_story("web-b", start + timedelta(hours=2), "260.00", score=2, agent="a2", number=12,
                              category="pricing_fees", cause="fee_opaque")]
    late = registered("web-late", received_at=now - timedelta(days=16), number=13)
    soon = registered("web-soon", received_at=now - timedelta(days=14, hours=12), number=14)
    fresh = registered("web-new", received_at=now - timedelta(hours=1), number=15)
    reopened = Envelope.wrap(SupervisionAlert(kind="case_reopened", severity="warning",
                                              message="客户对处理不满意，案件重新打开 / customer not satisfied; reopened"),
                             case_id="web-b", producer="followup")
    async with Publisher(settings.kafka) as publisher:
        for event in [*stories, late, soon, fresh, reopened]:
            await publisher.publish(event)

        async def send(topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
            await publisher._producer.send_and_wait(topic, value=value, key=key, headers=headers)  # noqa: SLF001

        await DeadLetter(send=send, consumer="intake", topic_prefix=settings.kafka.topic_prefix)(
            topic="complaint.received", key=b"web-99", value=b'{"channel": "app", ', partition=0, offset=7,
            reason="value is not valid JSON: Expecting property name enclosed in double quotes",
        )
    return {"case": stories[0], "alert_id": f"event:{reopened.event_id}", "cases": 5}


async def test_the_console_in_chromium(settings: CommonSettings, tmp_path: Path) -> None:
    _browser_or_skip()
    from playwright.async_api import async_playwright

    await ensure_topics(settings.kafka)
    now = datetime.now(UTC)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(settings, PARLEY_SUPERVISION_SWEEP_INTERVAL_S="1", PARLEY_SUPERVISION_LAG_INTERVAL_S="2")
    token = mint(AuthSettings(), role="ops", sub="ops-browser")
    api = {"Authorization": f"Bearer {token}"}
    shots = Shots(tmp_path)
    with running_service("services.supervision", ["worker"], env, tmp_path / "worker.log", ready_text=WORKER_READY), \
         running_service("services.supervision", ["api", "--port", str(port)], env, tmp_path / "api.log",
                         ready_url=f"{base}/health"):
        day = await publish_the_day(settings, now)
        case = day["case"]
        async with httpx.AsyncClient(base_url=base, headers=api, timeout=30) as http:
            async def settled() -> bool:
                overview = (await http.get("/overview")).json()
                alerts = {a["alert_id"] for a in (await http.get("/alerts?limit=500")).json()}
                return (sum(overview["cases_by_status"].values()) == day["cases"]
                        and overview["cases_by_status"].get("closed") == 2 and overview["dead_letters"] == 1
                        and day["alert_id"] in alerts
                        and any(a.startswith("deadline_breached:web-late") for a in alerts))

            await eventually(settled, timeout=120, interval=1, what="supervision recorded the day's events")

            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM),
                                                   args=["--no-sandbox", "--disable-dev-shm-usage"])
                try:
                    context = await browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                                                        locale="zh-CN")
                    page = await context.new_page()
                    page.set_default_timeout(30_000)

                    # not signed in: the console sends to the login; sign in with the token
                    await page.goto(f"{base}/console")
                    await page.click('a[href="/console/login"]')
                    await page.fill("#token", token)
                    await shots.take(page, "login")
                    await page.click("button[type=submit] >> text=登录")
                    await page.wait_for_url(f"{base}/console")

                    # the funnel shows exactly GET /overview's numbers
                    shown = {await el.get_attribute("data-status"): int(await el.inner_text())
                             for el in await page.query_selector_all("[data-status]")}
                    overview = (await http.get("/overview")).json()
                    assert {s: n for s, n in shown.items() if n} == overview["cases_by_status"]
                    assert int(await page.inner_text("#cases-total")) == day["cases"]
                    assert await page.inner_text("h2 >> nth=0") == "案件漏斗（按当前状态）"
                    await shots.take(page, "overview")

                    # the deadline board: the breached case, as GET /deadlines has it
                    await page.click("header >> text=时限看板")
                    board = (await http.get("/deadlines")).json()
                    assert int(await page.inner_text("#board-breached")) == len(board["breached"]) >= 1
                    assert await page.is_visible('[data-case="web-late"]')
                    await shots.take(page, "deadlines")

                    # acknowledge follow-up's alert with a note
                    await page.click("header >> text=告警")
                    row = page.locator(f'tr[data-alert="{day["alert_id"]}"]')
                    await row.locator("input[name=note]").fill("已联系客户")
                    await shots.take(page, "alerts")
                    await row.locator("button[value=acknowledge]").click()
                    await page.wait_for_load_state()
                    [acked] = [a for a in (await http.get("/alerts?status=acknowledged")).json()
                               if a["alert_id"] == day["alert_id"]]
                    assert acked["acknowledged"]["by"] == "ops-browser" and acked["acknowledged"]["note"] == "已联系客户"
                    assert "ops-browser" in await page.locator(f'tr[data-alert="{day["alert_id"]}"]').inner_text()

                    # replay the dead letter: registered on the page, once on the source topic
                    await page.click("header >> text=死信")
                    letter = page.locator("tr[data-dead-letter]")
                    marker = await letter.get_attribute("data-dead-letter")
                    assert "value is not valid JSON" in await letter.inner_text()
                    await letter.locator("button").click()
                    await page.wait_for_selector('#replay-result[data-outcome="replayed"]')
                    assert "已重放" in await page.locator(f'tr[data-dead-letter="{marker}"]').inner_text()
                    assert await page.locator(f'tr[data-dead-letter="{marker}"] button').count() == 0
                    await shots.take(page, "dead-letters")
                    records = await read_all(settings, "complaint.received", until=lambda rs: any(
                        dict(r.headers or []).get("replayed_from") == marker.encode() for r in rs))
                    assert [r.key for r in records if dict(r.headers or []).get("replayed_from")] == [b"web-99"]

                    # consumer lag and the workers' heartbeats
                    await page.click("header >> text=消费延迟")
                    assert await page.is_visible(f'[data-group="{settings.kafka.topic_prefix}parley-supervision"]')
                    await eventually(lambda: http.get("/heartbeats"), until=lambda r: any(
                        b["members"] > 0 for b in r.json()), timeout=60, what="supervision's own group seen")
                    await page.reload()
                    await shots.take(page, "lag", full_page=False)

                    # find a case and open its timeline
                    await page.click("header >> text=案件查询")
                    await page.fill("input[name=q]", case.payload.case_number)
                    await page.click("button >> text=查询")
                    await shots.take(page, "cases")
                    await page.click(f'a[href="/console/cases/{case.case_id}"]')
                    timeline = (await http.get(f"/cases/{case.case_id}")).json()["timeline"]
                    events = await page.locator("#timeline tr[data-event]").evaluate_all(
                        "rows => rows.map(r => r.dataset.event)")
                    assert events == [e["event_type"] for e in timeline] and len(events) == 7
                    assert await page.inner_text("#case-status") == "closed"
                    await shots.take(page, "case")

                    # this period's evaluation report, and its CSV
                    first, last = beijing_day(now - timedelta(days=20)).isoformat(), beijing_day(now).isoformat()
                    await page.click("header >> text=评估报告")
                    await page.fill("input[name=from]", first)
                    await page.fill("input[name=to]", last)
                    await page.click("button >> text=生成")
                    report = (await http.get(f"/reports/evaluation?from={first}&to={last}")).json()
                    assert int(await page.inner_text("#report-cases")) == report["cases"] == day["cases"]
                    assert await page.locator("svg.chart").count() >= 5
                    assert await page.inner_text("#concession-total") == report["concessions"]["total"] == "340.00"
                    # a remediation item for the top root cause, through the register's form
                    add = page.locator("#add-remediation")
                    await add.locator("input[name=root_cause]").fill("collection_off_hours")
                    await add.locator("input[name=owner]").fill("催收管理部")
                    await add.locator("input[name=action]").fill("晚 8 点后停止外呼，外包催收话术复核")
                    await add.locator("input[name=due_date]").fill("2026-12-31")
                    await add.locator("button").click()
                    await page.wait_for_selector('[data-root-cause="collection_off_hours"] [data-remediation]')
                    [item] = (await http.get("/remediations")).json()
                    assert item["owner"] == "催收管理部" and item["created"]["by"] == "ops-browser"
                    await shots.take(page, "report")
                    async with page.expect_download() as download_info:
                        await page.click("#download-csv")
                    download = await download_info.value
                    assert re.fullmatch(r"parley-evaluation-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv",
                                        download.suggested_filename)
                    saved = tmp_path / download.suggested_filename
                    await download.save_as(str(saved))
                    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
                    assert ["cases", "", "", "", "", "count", str(report["cases"])] in rows
                    assert ["rate", "settlement", "", "", "", "rate", str(report["rates"]["settlement"]["rate"])] in rows

                    # switch to English: the words change, the numbers stay
                    await page.click("#lang-switch")
                    await page.wait_for_selector("text=Complaint handling evaluation report")
                    assert int(await page.inner_text("#report-cases")) == report["cases"]
                    await shots.take(page, "report-en")
                    await page.click("header >> text=Overview")
                    assert await page.inner_text("h2 >> nth=0") == "Cases by status (funnel)"
                    await shots.take(page, "overview-en")
                finally:
                    await browser.close()
