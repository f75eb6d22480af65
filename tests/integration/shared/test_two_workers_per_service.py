"""Two worker processes of intake and two of investigation, each pair in its service's one
consumer group (issue 10: several workers per service): ~300 real complaints through both
stages; every complaint registered exactly once, every case investigated exactly once, both
workers of each service given partitions, nothing dead-lettered.

Workers are started as the local runner starts them (``deploy/local/services.py``):
``python -m services.<name> worker`` with ``PARLEY_WORKER_INDEX`` 1 and 2, each with its
own log (and faust data directory).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from services.intake.repository import IntakeRepository
from shared.kafka import ensure_topics
from shared.mongo import service_database
from shared.settings import CommonSettings
from shared.topics import decode
from tests.integration.intake.realdata import real_complaints
from tests.integration.intake.support import encode, produce
from tests.support.eventually import eventually
from tests.support.kafka import group_assignments, read_all
from tests.support.processes import service_env, start_workers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ZH, EN = 240, 60
COUNT = ZH + EN
SERVICES = ("intake", "investigation")


async def test_two_workers_per_service_register_and_investigate_every_complaint_once(
    settings: CommonSettings, mongo_client: Any, tmp_path: Path
) -> None:
    await ensure_topics(settings.kafka)
    complaints = real_complaints(ZH, EN, prefix="W2")
    base_env = service_env(settings, PARLEY_INTAKE_RELAY_INTERVAL_S="2",
                           PARLEY_INVESTIGATION_SWEEP_INTERVAL_S="2")

    workers = await asyncio.to_thread(
        start_workers, [(service, index) for service in SERVICES for index in (1, 2)], base_env, tmp_path)
    try:
        # both members of each group hold partitions of what the service consumes
        for service, source in (("intake", "complaint.received"), ("investigation", "complaint.registered")):
            physical = settings.kafka.topic(source)

            async def balanced(service: str = service, physical: str = physical) -> dict[str, Any] | None:
                members = await group_assignments(settings, f"{settings.kafka.topic_prefix}parley-{service}")
                held = {m: {tp for tp in tps if tp[0] == physical} for m, tps in members.items()}
                return held if len(held) == 2 and all(held.values()) else None

            held = await eventually(balanced, timeout=120, interval=1,
                                    what=f"two {service} workers holding partitions of {source}")
            assert set().union(*held.values()) == {(physical, p) for p in range(settings.kafka.partitions)}

        await produce(settings, "complaint.received",
                      [(c["channel_complaint_id"].encode(), encode(c)) for c in complaints])

        intake_db = service_database(mongo_client, settings.mongo, "intake")
        investigation_db = service_database(mongo_client, settings.mongo, "investigation")
        await eventually(lambda: intake_db["complaints"].count_documents({}),
                         until=lambda n: n >= COUNT, timeout=300, interval=2,
                         what=f"{COUNT} complaints registered")
        await eventually(lambda: investigation_db["investigations"].count_documents({}),
                         until=lambda n: n >= COUNT, timeout=400, interval=2,
                         what=f"{COUNT} cases investigated")
        registered = await read_all(
            settings, "complaint.registered", timeout=120,
            until=lambda rs: len({r.key for r in rs}) >= COUNT,
        )

        async def outcome_keys() -> int:
            keys = set()
            for topic in ("investigation.completed", "investigation.paused"):
                keys |= {r.key for r in await read_all(settings, topic)}
            return len(keys)

        await eventually(outcome_keys, until=lambda n: n >= COUNT, timeout=120, interval=2,
                         what="an outcome event for every case")
        for worker in workers:
            assert worker.proc.poll() is None, f"{worker.log} exited:\n{worker.log_text()[-3000:]}"
    finally:
        for worker in workers:
            worker.stop()

    # every complaint registered exactly once: one complaint record, one case, one event id
    repo = IntakeRepository(service_database(mongo_client, settings.mongo, "intake"))
    assert await repo.complaints.count_documents({}) == COUNT
    records = await repo.find_complaints([f"{c['channel']}:{c['channel_complaint_id']}" for c in complaints])
    assert len(records) == COUNT
    case_ids = {r["case_id"] for r in records.values()}
    assert len(case_ids) == COUNT
    events_by_case: dict[str, set[str]] = {}
    for record in registered:
        event = decode("complaint.registered", record.value)
        events_by_case.setdefault(event.case_id, set()).add(str(event.event_id))
    assert set(events_by_case) == case_ids
    assert all(len(ids) == 1 for ids in events_by_case.values()), {
        k: v for k, v in events_by_case.items() if len(v) > 1}

    # every case investigated exactly once: one finding per case; at most one event id per
    # case on each outcome topic (a case paused for an appraisal may be completed later)
    investigations = investigation_db["investigations"]
    assert await investigations.count_documents({}) == COUNT
    investigated = {d["_id"] async for d in investigations.find({}, {"_id": 1})}
    assert investigated == case_ids
    with_outcome: set[str] = set()
    for topic in ("investigation.completed", "investigation.paused"):
        outcomes: dict[str, set[str]] = {}
        for record in await read_all(settings, topic):
            event = decode(topic, record.value)
            outcomes.setdefault(event.case_id, set()).add(str(event.event_id))
        assert all(len(ids) == 1 for ids in outcomes.values()), {
            k: v for k, v in outcomes.items() if len(v) > 1}
        with_outcome |= set(outcomes)
    assert with_outcome == case_ids, f"{len(case_ids - with_outcome)} cases without an outcome event"

    # nothing dead-lettered
    for topic in ("complaint.received.dlq", "complaint.registered.dlq"):
        assert await read_all(settings, topic) == [], topic
