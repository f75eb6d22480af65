"""A reviewed finding reaching negotiation on the real stack (issue 12).

End to end: real complaints investigated (investigation's API built from its spec, the real
classifier), their findings published to Kafka and opened by negotiation's worker process; an
investigator's review through investigation's API reaches the open workspace, which takes it
and tells the customer. With an agreement standing (the real repository on FerretDB) a revised
finding is recorded and raised, not applied, and a redelivery changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.negotiation import handlers
from services.negotiation.models import Acceptance, Actor, Agreement
from services.negotiation.repository import Repository
from services.negotiation.settings import Settings
from shared.contracts.common import Category
from shared.contracts.envelope import Envelope
from shared.contracts.investigation import InvestigationCompleted, RemedyRange
from shared.mongo import service_database
from shared.settings import CommonSettings
from tests.integration.investigation.test_review import client, review_api
from tests.integration.negotiation.support import (
    Caller,
    events,
    negotiation_stack,
    service_settings,
    wait_for_case,
)

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def test_a_review_reaches_the_open_workspace_and_the_customer(settings: CommonSettings, tmp_path: Path) -> None:
    ns = service_settings(settings)
    with negotiation_stack(settings, tmp_path) as base:
        async with review_api(settings, 24, received_at=datetime.now(UTC) - timedelta(hours=1)) as (api, case_ids):
            cases = api.state.deps.repo.investigations
            low = sorted([d["_id"] async for d in cases.find({"review_status": "pending", "status": "completed"})])
            assert low, "some real complaints are under the review threshold"
            target = low[0]
            async with Caller(base, ns, sub="m1", role="manager") as manager:
                ws = await wait_for_case(manager, f"/cases/{target}", timeout=120)
                assert ws["review_pending"] is True and ws["investigation_revision"] == 1
                assert ws["status"] == "open" and ws["finding_revisions"] == []
                finding = ("unsubstantiated" if ws["finding"] != "unsubstantiated" else "substantiated")

                async with client(api, "investigator", "inv-2") as inv:
                    resp = await inv.post(f"/reviews/{target}", json={
                        "expected_revision": 1, "category": ws["category"], "finding": finding,
                        "remedy_min": "0.00", "remedy_max": "0.00", "reason": "记录不支持客户主张，复核后改为不属实"})
                    assert resp.status_code == 200, resp.text

                notices = await events(settings, "customer.notified", target, 1, timeout=90)
                reviewed = [n for n in notices if n["payload"]["kind"] == "finding_reviewed"]
                if not reviewed:  # other notices of the case may come first: read on until it is there
                    notices = await events(settings, "customer.notified", target, len(notices) + 1, timeout=90)
                    reviewed = [n for n in notices if n["payload"]["kind"] == "finding_reviewed"]
                [notice] = reviewed
                assert notice["payload"]["customer_id"] == ws["customer_id"] and "复核" in notice["payload"]["body"]

                ws = (await manager.get(f"/cases/{target}")).json()
                assert (ws["finding"], ws["investigation_revision"], ws["review_pending"]) == (finding, 2, False)
                [rev] = ws["finding_revisions"]
                assert rev["applied"] and rev["revised_by"] == "inv-2" and rev["revision"] == 2
                assert ws["remedy_range"]["max"] == "0.00"
                assert any("reviewed by an investigator" in t["what"] for t in ws["timeline"])


def _completed(revision: int, finding: str, **extra: Any) -> Envelope[InvestigationCompleted]:
    return Envelope.wrap(InvestigationCompleted(
        case_number="TS-R1", category=Category.PRICING_FEES, finding=finding, revision=revision,  # type: ignore[arg-type]
        customer_id="cust-r1", remedy_range=RemedyRange(min=Decimal("0"), max=Decimal("300")), **extra),
        case_id="R1", producer="investigation")


async def test_after_an_agreement_a_revision_is_recorded_and_raised_never_applied(
    settings: CommonSettings, mongo_client: Any
) -> None:
    repo = Repository(service_database(mongo_client, settings.mongo, "negotiation"))
    await repo.ensure_indexes()
    own = Settings(environment="test", kafka=settings.kafka, mongo=settings.mongo)
    assert await handlers.open_workspace(_completed(1, "partly_substantiated", review_pending=True),
                                         repo=repo, settings=own, now=NOW)
    ws = await repo.get("R1")
    assert ws is not None
    agreement = Agreement(agreement_id="AG-R1", offer_id="OF-1", terms=[], concession=Decimal("150.00"),
                          acceptance=Acceptance(by=Actor(sub="cust-r1", role="customer"), at=NOW, channel="in_app"),
                          text_zh="和解协议", text_en="settlement agreement")
    await repo.save(ws.model_copy(update={"status": "agreed", "agreement": agreement}), ws.version, [])

    revision = _completed(2, "unsubstantiated", revised_by="inv-3", revision_reason="复核：合同已披露该费用",
                          revised_fields=["finding"], revised_at=NOW)
    assert await handlers.open_workspace(revision, repo=repo, settings=own, now=NOW + timedelta(hours=2))
    assert not await handlers.open_workspace(revision, repo=repo, settings=own, now=NOW + timedelta(hours=3))
    older = _completed(2, "substantiated")
    assert not await handlers.open_workspace(older, repo=repo, settings=own, now=NOW + timedelta(hours=3))

    stored = await repo.get("R1")
    assert stored is not None and stored.status == "agreed" and stored.agreement == agreement
    assert (stored.finding, stored.investigation_revision) == ("partly_substantiated", 1), "the agreement's basis stands"
    [rev] = stored.finding_revisions
    assert (rev.applied, rev.finding, rev.revised_by, rev.reason) == (False, "unsubstantiated", "inv-3",
                                                                       "复核：合同已披露该费用")
    doc = await repo.cases.find_one({"_id": "R1"})
    owed = [json.loads(item["value"]) for item in (doc.get("outbox") or {}).values()]
    alerts = [e for e in owed if e["event_type"] == "supervision.alert"]
    assert [a["payload"]["kind"] for a in alerts] == ["finding_revised_after_agreement"]
    assert alerts[0]["payload"]["severity"] == "warning" and "TS-R1" in alerts[0]["payload"]["message"]
    assert not [e for e in owed if e["event_type"] == "customer.notified"], "the agent decides what the customer hears"
