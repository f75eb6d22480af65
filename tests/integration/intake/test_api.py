"""The HTTP face as a real process: POST /complaints through the worker, the read side, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.intake.repository import IntakeRepository
from services.intake.settings import Settings
from tests.integration.intake.support import complaint, hostile_kinds
from tests.support.eventually import eventually
from tests.support.kafka import read_all
from tests.support.processes import ServiceProcess
from tests.support.tokens import bearer

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}  # POST /complaints answers 415 to anything else


async def test_post_registers_through_the_worker_and_cases_are_searchable(
    intake_settings: Settings, repo: IntakeRepository, processes: Callable[..., ServiceProcess]
) -> None:
    processes("worker")
    api = processes("api")
    products = ["credit_card", "consumer_loan", "instalment", "payments", "insurance"]
    # staff who take complaints in may submit and read; a channel submits but may not read cases
    async with httpx.AsyncClient(base_url=api.url, timeout=30, headers=bearer("ops")) as http, \
            httpx.AsyncClient(base_url=api.url, timeout=30, headers=bearer("channel")) as channel, \
            httpx.AsyncClient(base_url=api.url, timeout=30) as anonymous:  # type: ignore[attr-defined]
        answers = []
        for i, product in enumerate(products):
            body = complaint(500 + i, customer_id="WEBCUST", product=product, channel="web",
                             received_at=datetime.now(UTC) - timedelta(days=i))
            resp = await http.post("/complaints", content=json.dumps(body, ensure_ascii=False), headers=JSON)
            assert resp.status_code == 202, resp.text
            answers.append(resp.json())
        other = await channel.post("/complaints", json=complaint(599, channel="regulator_transfer"))
        assert other.status_code == 202
        assert (await anonymous.post("/complaints", json=complaint(598))).status_code == 401

        async def all_registered() -> bool:
            return await repo.complaints.count_documents({}) == 6

        await eventually(all_registered, timeout=60, what="6 registrations")
        status = await channel.get(answers[0]["status_url"])
        assert status.status_code == 200 and status.json()["case_number"].startswith("TS-")
        case_id = status.json()["case_id"]
        # the case reads are staff-only: no token 401, a channel or a customer 403
        for path in (f"/cases/{case_id}", "/cases"):
            assert (await anonymous.get(path)).status_code == 401
            assert (await channel.get(path)).status_code == 403
            assert (await anonymous.get(path, headers=bearer("customer"))).status_code == 403

        case = (await http.get(f"/cases/{case_id}")).json()
        assert case["customer_phone_masked"].startswith("139****")
        assert case["customer_name_masked"] == "张**"
        assert "张小明" not in json.dumps(case, ensure_ascii=False)
        by_number = await http.get(f"/cases/{case['case_number']}")
        assert by_number.status_code == 200 and by_number.json()["case_id"] == case_id
        assert (await http.get("/cases/nope")).status_code == 404

        page1 = (await http.get("/cases", params={"customer_id": "WEBCUST", "page_size": 2})).json()
        page3 = (await http.get("/cases", params={"customer_id": "WEBCUST", "page_size": 2, "page": 3})).json()
        assert page1["total"] == 5 and len(page1["items"]) == 2 and len(page3["items"]) == 1
        seen = set()
        for page in (1, 2, 3):
            items = (await http.get("/cases", params={"customer_id": "WEBCUST", "page_size": 2, "page": page})).json()["items"]
            seen |= {c["case_id"] for c in items}
        assert len(seen) == 5
        regulator = (await http.get("/cases", params={"channel": "regulator_transfer", "status": "open"})).json()
        assert regulator["total"] == 1 and regulator["items"][0]["priority"] == "high"
        recent = (await http.get("/cases", params={
            "customer_id": "WEBCUST",
            "received_from": (datetime.now(UTC) - timedelta(days=2, hours=12)).isoformat(),
            "received_to": datetime.now(UTC).isoformat(),
        })).json()
        assert recent["total"] == 3
        assert (await http.get("/cases", params={"status": "whatever"})).status_code == 422
        assert (await http.get("/cases", params={"page_size": 5000})).status_code == 422
        assert (await http.get("/cases", params={"customer_id": '{"$ne": null}'})).status_code == 422

    registered = await read_all(intake_settings, "complaint.registered", expected=6, timeout=30)
    assert {json.loads(r.value)["payload"]["channel"] for r in registered} == {"web", "regulator_transfer"}


async def test_bad_http_input_gets_field_level_errors_and_is_never_published(
    intake_settings: Settings, repo: IntakeRepository, processes: Callable[..., ServiceProcess]
) -> None:
    api = processes("api", PARLEY_INTAKE_API_REGISTER_WAIT_S="0")
    async with httpx.AsyncClient(base_url=api.url, timeout=60,  # type: ignore[attr-defined]
                                 headers=bearer("channel")) as http:
        for name, raw, expected in hostile_kinds():
            resp = await http.post("/complaints", content=raw or b"",
                                   headers={"content-type": "application/json"})
            assert resp.status_code == 422, (name, resp.status_code, resp.text[:300])
            body = resp.json()
            if raw is None:  # an empty HTTP body is simply not JSON
                expected = "not valid JSON"
            named = {e["field"] for e in body["errors"]}
            problems = " ".join(e["problem"] for e in body["errors"])
            assert expected in named or expected in problems, (name, body)
        five_mb = complaint(1, text="长" * (5 * 1024 * 1024 // 3))
        resp = await http.post("/complaints", content=json.dumps(five_mb, ensure_ascii=False), headers=JSON)
        assert resp.status_code == 422 and {e["field"] for e in resp.json()["errors"]} == {"text"}
        nine_mb = b'{"text": "' + b"x" * (9 * 1024 * 1024) + b'"}'
        resp = await http.post("/complaints", content=nine_mb, headers=JSON)
        assert resp.status_code == 413
        ok = await http.post("/complaints", json=complaint(2))
        # no worker runs and the API waits 0 s: the complaint is received, not yet registered
        answer = ok.json()
        assert ok.status_code == 202 and answer["status"] == "accepted", answer
        assert answer["case_id"] is None and answer["case_number"] is None, answer
        assert ok.headers["location"] == answer["status_url"] == "/complaints/app/C0000002"
        assert (await http.get(answer["status_url"])).status_code == 404  # not registered (yet)
    received = await read_all(intake_settings, "complaint.received")
    assert [r.key for r in received] == [b"C0000002"], "only the valid complaint may be published"
