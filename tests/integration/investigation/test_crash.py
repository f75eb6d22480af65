"""A worker killed mid-stream (SIGKILL) and restarted: every case still gets one investigation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.kafka import Publisher, ensure_topics
from shared.mongo import service_database
from shared.settings import CommonSettings
from shared.topics import decode
from tests.integration.investigation.test_worker import real_complaints, registered
from tests.support.kafka import read_all
from tests.support.processes import WORKER_READY, running_service, service_env, start_service

pytestmark = pytest.mark.integration

COUNT = 60


async def test_killed_worker_resumes_without_a_second_finding(
    settings: CommonSettings, mongo_client: Any, tmp_path: Path
) -> None:
    await ensure_topics(settings.kafka)
    events = [registered(i, text, lang) for i, (text, lang) in enumerate(real_complaints()[:COUNT])]
    env = service_env(settings, PARLEY_INVESTIGATION_SWEEP_INTERVAL_S="1")
    worker = start_service("services.investigation", ["worker"], env, tmp_path / "worker1.log",
                           ready_text=WORKER_READY, timeout=240)
    try:
        async with Publisher(settings.kafka) as publisher:
            for event in events:
                await publisher.publish(event)
        await read_all(settings, "investigation.completed", expected=15, timeout=120)
    finally:
        worker.kill()  # no chance to commit offsets or relay what it wrote last

    with running_service("services.investigation", ["worker"], env, tmp_path / "worker2.log",
                         ready_text=WORKER_READY, timeout=240):
        records = await read_all(
            settings, "investigation.completed", timeout=180,
            until=lambda rs: len({r.key for r in rs}) == COUNT,
        )
    by_case: dict[str, set[str]] = {}
    for record in records:
        got = decode("investigation.completed", record.value)
        by_case.setdefault(got.case_id, set()).add(str(got.event_id))
    assert sorted(by_case) == sorted(e.case_id for e in events)
    # a re-published outbox entry is the same event (same id, consumers dedupe); never a second finding
    assert all(len(ids) == 1 for ids in by_case.values()), {k: v for k, v in by_case.items() if len(v) > 1}
    db = service_database(mongo_client, settings.mongo, "investigation")
    assert await db["investigations"].count_documents({}) == COUNT
