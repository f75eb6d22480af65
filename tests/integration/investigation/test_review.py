"""The investigator review queue on the real stack (issue 12): the investigation API built from
its spec (real lifespan, FerretDB, Kafka), real complaints investigated with the real
classifier, the queue paged, a case read, reviews refused with the field named, one review
recorded, audited and published once as a revised ``investigation.completed``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from services.investigation import app as investigation
from services.investigation.settings import Settings
from shared.audit import AuditChain, MongoChainStore, verify
from shared.auth import mint
from shared.outbox import batch_token, publish_written
from shared.service import build_api
from shared.settings import CommonSettings
from shared.topics import decode
from tests.integration.investigation.test_worker import real_complaints, registered
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration


@asynccontextmanager
async def review_api(settings: CommonSettings, count: int,
                     received_at: datetime | None = None) -> AsyncIterator[tuple[Any, list[str]]]:
    """The investigation API on this test's servers, with ``count`` real complaints investigated
    (their findings published) through the API's own dependencies; ``received_at``: when they
    came in (default: September 2026, every deadline long past)."""
    own = Settings(environment="test", kafka=settings.kafka, mongo=settings.mongo)
    api = build_api(investigation.SPEC, own)
    async with api.router.lifespan_context(api):
        events = [registered(i, text, lang) for i, (text, lang) in enumerate(real_complaints()[:count])]
        if received_at is not None:
            events = [e.model_copy(update={"payload": e.payload.model_copy(update={
                "received_at": received_at, "deadline_at": received_at + timedelta(days=15)})}) for e in events]
        with batch_token():
            written = await investigation.on_registered(api.state.deps, events)
        await publish_written(written, api.state.publisher.send)
        yield api, [e.case_id for e in events]


def client(api: Any, role: str, sub: str, **claims: str) -> httpx.AsyncClient:
    token = mint(api.state.settings.auth, role=role, sub=sub, **claims)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api",
                             headers={"Authorization": f"Bearer {token}"})


def completed_of(records: list[Any], case_id: str) -> list[Any]:
    return [e for e in (decode("investigation.completed", r.value) for r in records) if e.case_id == case_id]


async def test_the_queue_a_review_its_audit_and_one_revised_event(settings: CommonSettings) -> None:
    async with review_api(settings, 40) as (api, case_ids):
        cases = api.state.deps.repo.investigations
        stored = {d["_id"]: d async for d in cases.find({}, {"confidence": 1, "status": 1})}
        threshold = api.state.settings.review_threshold
        low = sorted(i for i in case_ids if stored[i]["confidence"] < threshold)
        assert low and len(low) < len(case_ids), "real complaints fall on both sides of the threshold"

        async with client(api, "investigator", "inv-1") as inv:
            # the queue, two at a time: exactly the cases under the threshold, in case-id order
            seen: list[str] = []
            after: str | None = None
            while True:
                page = (await inv.get("/reviews", params={"limit": 2} | ({"after": after} if after else {}))).json()
                assert page["threshold"] == threshold and len(page["items"]) <= 2
                seen += [item["case_id"] for item in page["items"]]
                after = page["next_after"]
                if after is None:
                    break
            assert seen == low
            assert all(item["category_confidence"] < threshold for item in page["items"])
            assert all(item["remedy_min"] is not None and item["remedy_max"] is not None for item in page["items"])

            target = next(i for i in low if stored[i]["status"] == "completed")
            case = (await inv.get(f"/reviews/{target}")).json()
            assert case["review_status"] == "pending" and case["revision"] == 1 and case["evidence"]
            assert case["category_confidence"] < threshold and "remedy_range" in case and "text" not in case
            new_category = "marketing" if case["category"] != "marketing" else "contract_terms"
            body = {"expected_revision": 1, "category": new_category, "finding": "partly_substantiated",
                    "remedy_min": "0.00", "remedy_max": "880.00",
                    "reason": "复核合同与销售记录：分类应为营销宣传类，客户手机 13900001111 已核实"}

            # refused, each naming what is wrong
            for change, field in (({"reason": " "}, "reason"), ({"remedy_max": "-1"}, "remedy_max"),
                                  ({"remedy_min": "900.00"}, "remedy_max"), ({"category": "x"}, "category"),
                                  ({"by": "the-ceo"}, "by")):
                resp = await inv.post(f"/reviews/{target}", json=body | change)
                assert resp.status_code == 422, (change, resp.text)
                assert resp.json()["errors"][0]["field"].endswith(field), resp.text
            missing = {k: v for k, v in body.items() if k != "reason"}
            resp = await inv.post(f"/reviews/{target}", json=missing)
            assert resp.status_code == 422 and resp.json()["errors"][0]["field"].endswith("reason")
            assert (await inv.post("/reviews/case-nope", json=body)).status_code == 404
            async with client(api, "agent", "a1", team="t1") as agent:
                assert (await agent.post(f"/reviews/{target}", json=body)).status_code == 403
                assert (await agent.get("/reviews")).status_code == 403

            # the review, and the same review again (a retried request)
            first = await inv.post(f"/reviews/{target}", json=body)
            assert first.status_code == 200, first.text
            again = await inv.post(f"/reviews/{target}", json=body)
            assert again.status_code == 200 and again.json() == first.json()
            reviewed = first.json()
            assert (reviewed["revision"], reviewed["review_status"], reviewed["category"]) == (2, "reviewed", new_category)
            assert reviewed["review"]["by"] == "inv-1" and "13900001111" not in reviewed["review"]["reason"]
            stale = await inv.post(f"/reviews/{target}", json=body | {"reason": "another view of it"})
            assert stale.status_code == 409 and stale.json()["field"] == "expected_revision"
            queue = (await inv.get("/reviews", params={"limit": 200})).json()
            assert target not in [item["case_id"] for item in queue["items"]]

            # a second review on another case: its event is the barrier after which the first
            # case's revised event must have been published exactly once
            other = next(i for i in low if i != target and stored[i]["status"] == "completed")
            second = await inv.post(f"/reviews/{other}", json=body | {"reason": "已复核：维持原结论"})
            assert second.status_code == 200, second.text

        records = await read_all(settings, "investigation.completed",
                                 until=lambda rs: any(e.payload.revision == 2 for e in completed_of(rs, other)),
                                 timeout=60)
        revisions = [e.payload for e in completed_of(records, target)]
        assert [p.revision for p in revisions] == [1, 2], "one original, one revised: the retried review published once"
        original, revised = revisions
        assert original.review_pending and not revised.review_pending
        assert (revised.category.value, revised.finding, revised.revised_by) == (new_category, "partly_substantiated", "inv-1")
        assert revised.remedy_range is not None and str(revised.remedy_range.max) == "880.00"
        assert revised.revision_reason and "13900001111" not in revised.revision_reason
        assert "category" in revised.revised_fields and revised.evidence == original.evidence

        # the audit chain: who, what, before and after, for each review once; it verifies
        store = MongoChainStore(cases.database)
        chain, _ = await AuditChain(store).read(limit=100)
        reviews = [r for r in chain if r["action"] == "finding_reviewed"]
        assert [(r["case_id"], r["who"], r["role"]) for r in reviews] == [(target, "inv-1", "investigator"),
                                                                         (other, "inv-1", "investigator")]
        assert reviews[0]["details"]["after"]["category"] == new_category
        assert reviews[0]["details"]["before"]["category"] == original.category.value
        assert (await verify(store)).intact
