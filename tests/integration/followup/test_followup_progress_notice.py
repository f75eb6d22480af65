"""The regular progress notice on the real stack: negotiation's worker finds an open case on
FerretDB whose period has passed and tells the customer once, not again in the same period,
and not after the case is closed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.negotiation.repository import Repository
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.mongo import make_client, service_database
from shared.settings import CommonSettings
from tests.integration.negotiation.support import negotiation_stack, publish, registered
from tests.support.eventually import eventually
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration


def _progress(records: list[Any], case_id: str) -> list[dict[str, Any]]:
    found = [json.loads(r.value) for r in records if r.key == case_id.encode()]
    return [n for n in found if n["payload"]["kind"] == "progress"]


async def test_an_open_case_gets_one_progress_notice_per_period_until_it_is_closed(
    settings: CommonSettings, tmp_path: Path,
) -> None:
    case = "CASE-P1"
    reg = registered(case, "cust-P", days=20)
    # received ten days ago (Beijing days): with a weekly notice, period 1 has passed
    received = datetime.now(UTC) - timedelta(days=10)
    reg = reg.model_copy(update={"payload": reg.payload.model_copy(update={"received_at": received})})
    client = make_client(settings.mongo)
    repo = Repository(service_database(client, settings.mongo, "negotiation"))
    try:
        with negotiation_stack(settings, tmp_path, PARLEY_NEGOTIATION_PROGRESS_NOTICE_DAYS="7",
                               PARLEY_NEGOTIATION_PROGRESS_SWEEP_INTERVAL_S="1"):
            await publish(settings, ("complaint.registered", case, reg.to_bytes()))
            records = await read_all(settings, "customer.notified", until=lambda rs: bool(_progress(rs, case)),
                                     timeout=120)
            [notice] = _progress(records, case)
            assert notice["producer"] == "negotiation" and notice["payload"]["customer_id"] == "cust-P"
            assert "进展" in notice["payload"]["subject"] and "已受理" in notice["payload"]["body"]

            ws = await eventually(lambda: repo.get(case), until=lambda w: w is not None and w.progress_notices == 1,
                                  what="the period noticed", timeout=30)
            assert ws is not None and ws.progress_due_at is not None and ws.progress_due_at > datetime.now(UTC)
            sweeps_seen = ws.version

            # more sweeps run (the worker sweeps every second); then the case closes
            closed = Envelope.wrap(CaseClosed(case_number=f"TS-{case}", outcome="resolved"), case_id=case,
                                   producer="followup")
            await publish(settings, ("case.closed", case, closed.to_bytes()))
            ws = await eventually(lambda: repo.get(case), until=lambda w: w is not None and w.closure is not None,
                                  what="the closure", timeout=60)
            assert ws is not None and ws.version >= sweeps_seen
            # the due case is no longer in the timer's query (FerretDB: $or on a missing field, closure null)
            assert case not in await repo.progress_due(datetime.now(UTC) + timedelta(days=60))
        # one notice for the period, however many sweeps ran
        assert len(_progress(await read_all(settings, "customer.notified"), case)) == 1
    finally:
        await client.close()
