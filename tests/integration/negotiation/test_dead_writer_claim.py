"""A negotiation worker SIGKILLed between its version claim and its write (issue 15).

``Repository.save`` claims a case's next version (and, for a new case of a customer, the
customer document's) with ``shared.mongo.claim_next_version`` before it writes; a claim
whose writer died stays in the way until it is stale (30 s). The worker that takes over the
dead one's partitions gets the same events again: it must wait the claim out, not give the
event up (before: three immediate tries, then the batch's retries, then the dead-letter
topic; the workspace never opened). Real repository on the real database; the claims are
put where a killed writer leaves them, aged so they go stale within a few seconds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.negotiation import handlers
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
