"""Hostile ingress on the real stack (issue 10): loose types, control characters and unknown
envelope versions are dead-lettered with the field named while the worker keeps working; the
HTTP face answers 415 to a body that is not JSON and 422 naming the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.intake.repository import IntakeRepository
from services.intake.settings import Settings
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.kafka.dlq import read_headers
from tests.integration.intake.support import complaint, encode, produce
from tests.support.eventually import eventually
from tests.support.kafka import read_all
from tests.support.processes import ServiceProcess
from tests.support.tokens import bearer

pytestmark = pytest.mark.integration


def _hostile() -> dict[bytes, tuple[bytes, str, str]]:
    """key -> (value, the field the reason must name, words the reason must hold)."""

    def with_customer(n: int, **changes: Any) -> dict[str, Any]:
        body = complaint(n)
        body["customer"] = {**body["customer"], **changes}
        return body

    nul_ref = complaint(903)
    nul_ref["attachments"] = [{"ref": "s3://evidence/\x00/x.png"}]
    bodies = {
        "NUL in customer.name": (with_customer(901, name="张\x00小明"), "customer.name",
                                 "customer.name: contains a control character (U+0000)"),
        "NUL in demand": (complaint(902, demand="退款\x00"), "demand", "contains a control character (U+0000)"),
        "NUL in attachments.0.ref": (nul_ref, "attachments.0.ref", "contains a control character (U+0000)"),
        "ESC in filename": ({**complaint(904), "attachments": [{"ref": "s3://e/1", "filename": "a\x1b[2J.png"}]},
                            "attachments.0.filename", "U+001B"),
        "integer received_at": (complaint(905) | {"received_at": 1_700_000_000},
                                "received_at", "ISO 8601"),
        "yes for vulnerable": (with_customer(906, vulnerable="yes"), "customer.vulnerable", "boolean"),
        "on for new_facts": (complaint(907, new_facts="on"), "new_facts", "boolean"),
        "1 for vulnerable": (with_customer(908, vulnerable=1), "customer.vulnerable", "boolean"),
    }
    return {
        body["channel_complaint_id"].encode(): (encode(body), field, words)
        for body, field, words in bodies.values()
    }


async def test_hostile_messages_are_dead_lettered_naming_the_field_and_the_worker_keeps_working(
    intake_settings: Settings, repo: IntakeRepository, processes: Callable[..., ServiceProcess]
) -> None:
    hostile = _hostile()
    processes("worker")
    first = complaint(1, customer_id="KEEPER")
    records: list[tuple[bytes | None, bytes | None]] = [(b"C0000001", encode(first))]
    for key, (raw, _field, _words) in hostile.items():
        records.append((key, raw))
    await produce(intake_settings, "complaint.received", records)

    async def first_case() -> dict[str, Any] | None:
        doc = await repo.find_complaint("app:C0000001")
        return await repo.find_case(doc["case_id"]) if doc else None

    case = await eventually(first_case, timeout=90, what="the valid complaint's case")

    # an envelope of a major version intake does not know must not close the case
    future = json.loads(Envelope.wrap(CaseClosed(case_number=case["case_number"], outcome="resolved"),
                                      case_id=case["_id"], producer="followup").to_bytes())
    future["schema_version"] = 99
    future["payload"]["reopen_policy"] = "only in v99"
    future_raw = json.dumps(future).encode()
    await produce(intake_settings, "case.closed", [(case["_id"].encode(), future_raw)])

    dead = await read_all(intake_settings, "complaint.received.dlq", expected=len(hostile), timeout=90)
    assert len(dead) == len(hostile)
    for record in dead:
        raw, field, words = hostile[record.key]
        assert record.value == raw, "the DLQ keeps the original bytes"
        headers = read_headers(record.headers)
        assert headers["dlq.error_type"] == "InvalidMessage"
        assert field in {e["field"] for e in json.loads(headers["dlq.errors"])}, (field, headers)
        assert field in headers["dlq.reason"] and words in headers["dlq.reason"], (field, headers["dlq.reason"])
        assert "张" not in headers["dlq.reason"]

    closed_dead = await read_all(intake_settings, "case.closed.dlq", expected=1, timeout=60)
    assert closed_dead[0].value == future_raw
    reason = read_headers(closed_dead[0].headers)["dlq.reason"]
    assert reason == "unsupported schema_version 99 for case.closed (known: 1)"
    doc = await repo.find_case(case["_id"])
    assert doc is not None and doc["status"] != "closed", "a v99 event must not be applied"

    # the worker keeps working: a valid close and a valid complaint after the hostile ones
    ok = Envelope.wrap(CaseClosed(case_number=case["case_number"], outcome="resolved"),
                       case_id=case["_id"], producer="followup")
    await produce(intake_settings, "case.closed", [(ok.key(), ok.to_bytes())])
    later = complaint(2)
    await produce(intake_settings, "complaint.received", [(b"C0000002", encode(later))])

    async def closed_and_registered() -> bool:
        closed = await repo.find_case(case["_id"])
        return bool(closed and closed["status"] == "closed" and await repo.find_complaint("app:C0000002"))

    await eventually(closed_and_registered, timeout=90, what="the valid close and complaint applied")
    assert await repo.complaints.count_documents({}) == 2


async def test_http_refuses_a_body_that_is_not_json_and_names_bad_fields(
    intake_settings: Settings, repo: IntakeRepository, processes: Callable[..., ServiceProcess]
) -> None:
    api = processes("api", PARLEY_INTAKE_API_REGISTER_WAIT_S="0")
    good = encode(complaint(1))
    async with httpx.AsyncClient(base_url=api.url, timeout=30,  # type: ignore[attr-defined]
                                 headers=bearer("channel")) as http:
        for content_type in ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
                             "multipart/form-data; boundary=x", "application/jsonp", None]:
            headers = {"content-type": content_type} if content_type else {}
            resp = await http.post("/complaints", content=good, headers=headers)
            assert resp.status_code == 415, (content_type, resp.status_code, resp.text)
            body = resp.json()
            assert set(body) == {"detail", "field", "errors"}
            assert "application/json" in body["detail"] and body["field"] == "content-type"

        # a NUL is refused before anything else reads the body (the database cannot store it)
        bad = complaint(2)
        bad["customer"] = {**bad["customer"], "name": "张\x00小明"}
        resp = await http.post("/complaints", content=encode(bad), headers={"content-type": "application/json"})
        assert resp.status_code == 422, resp.text
        problems = {e["field"]: e["problem"] for e in resp.json()["errors"]}
        assert problems["customer.name"].startswith("contains a NUL character (U+0000)"), problems
        # other control characters and loose types, by the contract: every field named
        bad["customer"] = {**bad["customer"], "name": "张\x07小明", "vulnerable": "yes"}
        resp = await http.post("/complaints", content=encode(bad), headers={"content-type": "application/json"})
        assert resp.status_code == 422, resp.text
        problems = {e["field"]: e["problem"] for e in resp.json()["errors"]}
        assert problems["customer.name"] == "contains a control character (U+0007)"
        assert "customer.vulnerable" in problems

        for content_type in ["application/json", "application/json; charset=utf-8", "Application/JSON"]:
            ok = await http.post("/complaints", content=encode(complaint(3)), headers={"content-type": content_type})
            assert ok.status_code == 202, (content_type, ok.text)
    received = await read_all(intake_settings, "complaint.received")
    assert {r.key for r in received} == {b"C0000003"}, "only the valid complaint may be published"
