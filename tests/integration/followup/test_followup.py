"""Follow-up on the real stack: an agreed settlement is carried out, called back and closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.kafka import Publisher, ensure_topics
from shared.settings import CommonSettings
from shared.topics import decode
from tests.integration.followup.support import followup_stack
from tests.support.events import agreed
from tests.support.eventually import eventually
from tests.support.kafka import read_all
from tests.support.tokens import bearer

pytestmark = pytest.mark.integration


OPS = bearer("ops", sub="ops1")


async def _call(method: str, url: str, body: Any = None, headers: dict[str, str] = OPS) -> tuple[int, Any]:
    async with httpx.AsyncClient(timeout=10, headers=headers) as http:
        resp = await http.request(method, url, json=body)
    return resp.status_code, resp.json()


async def test_agreed_settlement_is_executed_followed_up_and_closed(settings: CommonSettings, tmp_path: Path) -> None:
    await ensure_topics(settings.kafka)
    event = agreed("case-f1", terms=[
        {"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "120.00", "waiver_pct": "100"},
        {"kind": "refund", "amount": "35.50"},
    ])
    with followup_stack(settings, tmp_path) as base:
        async with Publisher(settings.kafka) as publisher:
            await publisher.publish(event)
            await publisher.publish(event)  # redelivery

        status, execution = await eventually(lambda: _call("GET", f"{base}/executions/case-f1"),
                                             until=lambda answer: answer[0] == 200, what="the execution plan",
                                             timeout=20)
        assert [s["kind"] for s in execution["steps"]] == ["fee_waiver", "refund"]
        assert execution["steps"][1]["amount"] == "35.50"

        # a stale version is refused, a wrong step is 404, the callback must wait for execution
        assert (await _call("POST", f"{base}/executions/case-f1/steps/s1/complete", {"expected_version": 9}))[0] == 409
        assert (await _call("POST", f"{base}/executions/case-f1/steps/s7/complete", {}))[0] == 404
        assert (await _call("POST", f"{base}/executions/case-f1/callback", {"satisfied": True, "score": 5}))[0] == 409
        assert (await _call("POST", f"{base}/executions/case-f1/steps/s1/complete", {"score": 1}))[0] == 422
        # who did it is the token's subject: nobody writes in another's name, and nobody without a token
        assert (await _call("POST", f"{base}/executions/case-f1/steps/s1/complete", {"by": "the-ceo"}))[0] == 422
        assert (await _call("POST", f"{base}/executions/case-f1/steps/s1/complete", {}, headers={}))[0] == 401
        assert (await _call("POST", f"{base}/executions/case-f1/steps/s1/complete", {},
                            headers=bearer("auditor")))[0] == 403

        status, after = await _call("POST", f"{base}/executions/case-f1/steps/s1/complete", {"evidence_ref": "WV-88"})
        assert status == 200 and after["status"] == "executing"
        assert after["steps"][0]["done_by"] == "ops1"
        status, after = await _call("POST", f"{base}/executions/case-f1/steps/s2/complete", {"evidence_ref": "RF-12"})
        assert status == 200 and after["status"] == "executed"
        status, after = await _call("POST", f"{base}/executions/case-f1/callback", {"satisfied": True, "score": 4},
                                    headers=bearer("agent", sub="cs7"))
        assert status == 200 and after["status"] == "closed" and after["callback"]["by"] == "cs7"

    for topic in ("settlement.executed", "followup.completed", "case.closed"):
        [record] = await read_all(settings, topic, expected=1)
        got = decode(topic, record.value)
        assert got.case_id == "case-f1" and record.key == b"case-f1"
    # the customer hears that it was carried out, then that it is closed
    notices = [decode("customer.notified", r.value) for r in await read_all(settings, "customer.notified", expected=2)]
    assert [n.payload.kind for n in notices] == ["progress", "outcome"] and all(n.case_id == "case-f1" for n in notices)
    closed = decode("case.closed", (await read_all(settings, "case.closed", expected=1))[0].value)
    assert closed.payload.outcome == "resolved"
