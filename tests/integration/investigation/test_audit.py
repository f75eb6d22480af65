"""Investigation's audit chain on the real database (issue 11): one record per batch naming the
cases it investigated and the events it wrote, none for a redelivery; the chain verifies."""

from __future__ import annotations

from typing import Any

import pytest

from services.investigation import app
from services.investigation.records import SimulatedCoreSystems
from services.investigation.repository import RecordsRepository, Repository
from services.investigation.settings import Settings
from shared.audit import AuditChain, MongoChainStore, verify
from shared.mongo import service_database
from shared.outbox import batch_token
from shared.settings import CommonSettings
from tests.integration.investigation.test_worker import real_complaints, registered

pytestmark = pytest.mark.integration


async def test_a_batch_of_findings_is_one_chain_record_and_a_redelivery_none(
    settings: CommonSettings, mongo_client: Any
) -> None:
    db = service_database(mongo_client, settings.mongo, "investigation")
    repo, records_db = Repository(db), RecordsRepository(db)
    await repo.ensure_indexes()
    deps = app.Deps(repo, records_db, SimulatedCoreSystems(records_db),
                    Settings(environment="test", kafka=settings.kafka, mongo=settings.mongo))
    events = [registered(i, text, lang) for i, (text, lang) in enumerate(real_complaints()[:8])]

    with batch_token():  # as the runtime runs a batch
        written = await app.on_registered(deps, events)
    with batch_token():  # the same batch again: nothing new found, nothing recorded
        await app.on_registered(deps, events)

    store = MongoChainStore(db)
    [record], _ = await AuditChain(store).read(limit=10)
    assert (record["action"], record["who"], record["role"]) == ("investigated", "investigation-worker", "system")
    details = record["details"]
    assert sorted(set(details["case_ids"])) == sorted(e.case_id for e in events)
    assert set(details["events"]) <= {"investigation.completed", "investigation.paused", "customer.notified"}
    assert "investigation.completed" in details["events"]
    assert details["count"] == sum(len(w.pending or {}) for w in written if w.doc_id is not None)
    report = await verify(store)
    assert report.intact and report.count == 1
