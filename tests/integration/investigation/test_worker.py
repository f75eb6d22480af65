"""Investigation on the real stack: a few hundred real complaints from ``complaint.registered``
to ``investigation.completed``, malformed events to the dead-letter topic, and a replay of
every event that changes no finding."""

from __future__ import annotations

import csv
import gzip
import json
import os
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.investigation import handlers
from services.investigation.repository import RecordsRepository
from services.investigation.settings import Settings
from shared.clock import due, to_local
from shared.contracts.common import Channel, Language, Priority, Product
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ComplaintRegistered
from shared.kafka import Publisher, ensure_topics
from shared.kafka.dlq import read_headers
from shared.mongo import service_database
from shared.settings import CommonSettings
from shared.topics import decode
from tests.support.eventually import eventually
from tests.support.kafka import group_caught_up, read_all
from tests.support.processes import WORKER_READY, running_service, service_env
from tests.support.servers import REPO

pytestmark = pytest.mark.integration

ZH_COUNT, EN_COUNT = 230, 20
BASE = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)  # in the past: every external appraisal is done


def _data() -> Path:
    return Path(os.environ.get("PARLEY_SHARED_DATA") or REPO.parent / "shared" / "data")


def real_complaints() -> list[tuple[str, Language]]:
    """The first complaints of dev.csv (zh) and the first CFPB narratives (en), in file order."""
    out: list[tuple[str, Language]] = []
    with (_data() / "complaints-zh" / "dev.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            if len(row) == 2 and len(row[0].strip()) >= 8 and len(out) < ZH_COUNT:
                out.append((row[0].strip()[:4000], Language.ZH_CN))
    with gzip.open(_data() / "cfpb-2023-sample.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            text = (json.loads(line).get("complaint_what_happened") or "").strip()
            if len(text) >= 40:
                out.append((text[:4000], Language.EN))
            if len(out) >= ZH_COUNT + EN_COUNT:
                break
    return out


def registered(i: int, text: str, language: Language) -> Envelope[ComplaintRegistered]:
    received = BASE + timedelta(hours=i)
    return Envelope.wrap(ComplaintRegistered(
        case_number=f"TS-{received:%Y%m%d}-{i:06d}", complaint_id=f"cmp-{i:04d}", channel=Channel.APP,
        channel_complaint_id=f"app-{i:04d}", received_at=received, deadline_at=received + timedelta(days=15),
        priority=Priority.NORMAL, product=Product.OTHER, language=language, customer_id=f"cust-{i:04d}",
        customer_phone_masked="139****0000", text=text,
    ), case_id=f"case-{i:04d}", producer="intake", occurred_at=received)


async def test_real_complaints_are_investigated_once_and_replays_change_no_finding(
    settings: CommonSettings, mongo_client: Any, tmp_path: Path
) -> None:
    await ensure_topics(settings.kafka)
    complaints = real_complaints()
    assert len(complaints) == ZH_COUNT + EN_COUNT
    events = [registered(i, text, lang) for i, (text, lang) in enumerate(complaints)]
    ok = events[0]
    missing_customer = ok.model_dump(mode="json")
    del missing_customer["payload"]["customer_id"]
    wrong_money = ok.model_dump(mode="json")
    wrong_money["payload"]["amount_disputed"] = "-5"
    malformed = [b"{not json", json.dumps(missing_customer).encode(), json.dumps(wrong_money).encode()]

    env = service_env(settings, PARLEY_INVESTIGATION_SWEEP_INTERVAL_S="2")
    with running_service("services.investigation", ["worker"], env, tmp_path / "worker.log",
                         ready_text=WORKER_READY, timeout=240) as worker:
        async with Publisher(settings.kafka) as publisher:
            for raw in malformed:
                await publisher.send_raw("complaint.registered", raw, key=b"case-bad")
            for event in events:
                await publisher.publish(event)

        wanted = {e.case_id.encode() for e in events}
        records = await read_all(settings, "investigation.completed", timeout=240,
                                 until=lambda rs: wanted <= {r.key for r in rs})
        # at least once: a redelivered event is the same event (same event_id); keep one
        records = list({decode("investigation.completed", r.value).event_id: r for r in records}.values())
        dead = await read_all(settings, "complaint.registered.dlq", expected=3, timeout=60)

        completed = [decode("investigation.completed", r.value) for r in records]
        assert sorted(r.key.decode() for r in records) == sorted(e.case_id for e in events)
        assert all(c.case_id == r.key.decode() and c.producer == "investigation" for c, r in zip(completed, records, strict=True))
        by_case = {c.case_id: c.payload for c in completed}
        findings = {p.finding for p in by_case.values()}
        assert findings == {"substantiated", "partly_substantiated", "unsubstantiated"}
        assert len({p.category for p in by_case.values()}) >= 4
        outcomes = {e.outcome for p in by_case.values() for e in p.evidence}
        assert outcomes == {"confirmed", "contradicted", "not_found"}
        assert all(p.reasons_zh and len(p.reasons_zh) == len(p.reasons_en) for p in by_case.values())
        assert any(p.complex_case and p.deadline_tier == 30 and not p.paused_days
                   and p.deadline_at == due(e.payload.received_at, 30).due_at
                   for e in events for p in [by_case[e.case_id]])
        # every deadline ends at 24:00 Beijing time (shared.clock), whatever the tier
        assert all(to_local(p.deadline_at, "Asia/Shanghai").time() == time(23, 59, 59, 999999)
                   for p in by_case.values() if p.deadline_at is not None)
        english = [by_case[e.case_id] for e in events if e.payload.language == Language.EN]
        assert all(p.language == Language.EN and p.category_confidence is not None for p in english)
        assert all(b"139****0000" not in r.value for r in records)  # no contact data leaves the service

        reasons = [read_headers(r.headers)["dlq.reason"] for r in dead]
        assert any("JSON" in r for r in reasons)
        assert any("payload.customer_id" in r for r in reasons)
        assert any("payload.amount_disputed" in r for r in reasons)
        assert all(r.value in malformed for r in dead)

        # the appraisal pauses were recorded, opened and closed, for the supervision clock
        pauses = [decode("investigation.paused", r.value).payload
                  for r in await read_all(settings, "investigation.paused")]
        appraised = [p for p in by_case.values() if p.paused_days]
        assert len({p.pause_id for p in pauses}) == len({p.case_number for p in pauses}) >= len(appraised)
        assert all(p.resumed_at is not None for p in pauses if p.case_number in {a.case_number for a in appraised})

        db = service_database(mongo_client, settings.mongo, "investigation")
        before = {d["_id"]: (d["finding"], d["fingerprint"]) async for d in db["investigations"].find({})}
        assert len(before) == len(events)

        # replay every event (Kafka redelivers; an operator may re-publish a topic)
        async with Publisher(settings.kafka) as publisher:
            for event in events:
                await publisher.publish(event)
        group = f"{settings.kafka.topic_prefix}parley-investigation"
        await eventually(lambda: group_caught_up(settings, group, "complaint.registered"),
                         what=f"{group} to commit the replay", timeout=120, interval=0.5)
        assert "Traceback" not in worker.log_text()

    after = {d["_id"]: (d["finding"], d["fingerprint"]) async for d in db["investigations"].find({})}
    assert after == before
    again = await read_all(settings, "investigation.completed")
    # the replay made no new event (an at-least-once redelivery repeats the same event_id)
    assert len({decode("investigation.completed", r.value).event_id for r in again}) == len(events)

    # the stored findings are what the records in the store give, read back from MongoDB
    store = RecordsRepository(db)
    checked = 0
    async for doc in db["investigations"].find({}).sort("_id", 1).limit(40):
        env = Envelope[ComplaintRegistered].model_validate_json(doc["source_event"])
        recs = await store.load(env.payload.customer_id)
        assert recs is not None
        a = handlers.assess(env.payload, text="\n".join(doc["texts"]), category=doc["category"],
                            confidence=doc["confidence"], records=recs, settings=Settings(environment="test"),
                            now=datetime.now(UTC))
        assert handlers.fingerprint(a) == doc["fingerprint"]
        checked += 1
    assert checked == 40
