"""Two negotiation workers on one database (issue 15): a worker SIGKILLed between its
version claim and its write, and two workers' deadline sweeps escalating the same cases.

``Repository.save`` claims a case's next version (and, for a new case of a customer, the
customer document's) with ``shared.mongo.claim_next_version`` before it writes; a claim
whose writer died stays in the way until it is stale (30 s). The worker that takes over the
dead one's partitions gets the same events again: it must wait the claim out, not give the
event up (before: three immediate tries, then the batch's retries, then the dead-letter
topic; the workspace never opened). Real repository on the real database; the claims are
put where a killed writer leaves them, aged so they go stale within a few seconds.

Every worker runs the near-deadline timer; two sweeps escalating one case both store its
dossier (same id) before one of them loses the case's save. FerretDB's upsert is a find then
an insert, so one sweep failed on a duplicate key and left the rest of its cases (before).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.negotiation import handlers
from services.negotiation.models import Workspace
from services.negotiation.repository import Repository
from shared.mongo import service_database
from shared.settings import CommonSettings
from shared.topics import decode
from tests.integration.negotiation.support import completed, registered, service_settings

pytestmark = pytest.mark.integration

#: how old the dead writer's claim is: stale (30 s, ``claim_next_version``) 3 s from now
AGE = timedelta(seconds=27)


async def test_the_next_worker_waits_out_a_dead_writers_claims(settings: CommonSettings, mongo_client: Any) -> None:
    repo = Repository(service_database(mongo_client, settings.mongo, "negotiation"))
    await repo.ensure_indexes()
    now = datetime.now(UTC)
    assert await handlers.record_registration(registered("D1", "c1"), repo=repo, now=now)
    assert (await repo.get("D1")).version == 1  # type: ignore[union-attr]

    # the case's next version claimed by a writer that died before writing
    await repo.claims.insert_one({"_id": "D1#2", "at": datetime.now(UTC) - AGE})
    began = time.monotonic()
    assert await handlers.open_workspace(decode("investigation.completed", completed("D1")), repo=repo,
                                         settings=service_settings(settings), now=now)
    ws = await repo.get("D1")
    assert ws is not None and ws.status == "open" and ws.investigation_event_id is not None
    assert ws.registered_event_id is not None, "the registration recorded before stays"
    assert time.monotonic() - began < 20

    # the customer document's next version claimed by a writer that died: a new case of the
    # same customer (linked before the case is written) waits it out too
    await repo.customer_claims.insert_one({"_id": "c1#2", "at": datetime.now(UTC) - AGE})
    assert await handlers.record_registration(registered("D2", "c1"), repo=Repository(repo.db), now=now)
    assert sorted(w.case_id for w in await repo.customer_cases("c1")) == ["D1", "D2"]


async def test_two_workers_deadline_sweeps_escalate_each_case_once(settings: CommonSettings, mongo_client: Any) -> None:
    """Every worker runs the near-deadline timer: two sweeps at once over the same cases end
    each case once (one escalation, one dossier, its events owed once) and neither sweep fails."""
    repo = Repository(service_database(mongo_client, settings.mongo, "negotiation"))
    await repo.ensure_indexes()
    now = datetime.now(UTC)
    ids = [f"E{i}" for i in range(8)]
    for case_id in ids:
        await repo.save(Workspace(case_id=case_id, case_number=f"TS-{case_id}", status="open", customer_id="c1",
                                  language="zh-CN", opened_at=now, deadline_at=now + timedelta(hours=2)), 0, [])
    negotiation = service_settings(settings)
    first, second = await asyncio.gather(
        handlers.escalate_near_deadline(repo=Repository(repo.db), settings=negotiation, now=now),
        handlers.escalate_near_deadline(repo=Repository(repo.db), settings=negotiation, now=now),
    )
    assert sorted(first + second) == ids, (first, second)
    async for doc in repo.cases.find({"_id": {"$in": ids}}):
        assert doc["status"] == "escalated", doc["_id"]
        owed = [e["topic"] for e in (doc.get("outbox") or {}).values()]
        assert owed.count("case.escalated") == 1 and owed.count("negotiation.failed") == 1, (doc["_id"], owed)
    assert await repo.dossiers.count_documents({"case_id": {"$in": ids}}) == len(ids)
