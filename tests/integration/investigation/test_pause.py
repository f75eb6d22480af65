"""An external appraisal pauses a case on the real stack; when the appraiser reports, the sweep finishes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.clock import add_pause, beijing_day, due
from shared.contracts.common import Channel, Language, Priority, Product
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ComplaintRegistered
from shared.kafka import Publisher, ensure_topics
from shared.mongo import service_database
from shared.settings import CommonSettings
from shared.topics import decode
from tests.support.kafka import read_all
from tests.support.processes import WORKER_READY, running_service, service_env

pytestmark = pytest.mark.integration

#: A real complaint (complaints-zh/dev.csv), shortened.
TEXT = ("本人严正声明：本人从未注册过河北幸福消费金融股份有限公司任何账号，也并未于2021年2月向其进行消费贷款，"
        "更自始至今从未收到过任何打款。此属恶意盗用公民个人信息，违规发放贷款，影响我的个人征信。")


def _registered(case: str, number: int, received: datetime) -> Envelope[ComplaintRegistered]:
    return Envelope.wrap(ComplaintRegistered(
        case_number=f"TS-PAUSE-{number:06d}", complaint_id=f"cmp-{case}", channel=Channel.WEB,
        channel_complaint_id=f"web-{case}", received_at=received, deadline_at=received + timedelta(days=15),
        priority=Priority.NORMAL, product=Product.CONSUMER_LOAN, language=Language.ZH_CN, customer_id=f"cust-{case[5:]}",
        text=TEXT,
    ), case_id=case, producer="intake", occurred_at=received)


def _of(records: list[Any], topic: str, case: str) -> list[Any]:
    return [e for e in (decode(topic, r.value) for r in records) if e.case_id == case]


async def test_appraisal_pause_then_resume(settings: CommonSettings, mongo_client: Any, tmp_path: Path) -> None:
    await ensure_topics(settings.kafka)
    received = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)
    event = _registered("case-p1", 1, received)
    # the barrier: a second appraisal case whose appraisal comes back first. The sweep visits
    # paused cases in order of expected resumption (the simulated appraisals take 6 days for
    # case-p1 and 9 for case-p2), so the sweep that finishes case-p2 has looked at case-p1
    # after it was paused and, its appraisal still out, must have left it paused.
    barrier = _registered("case-p2", 2, received)
    env = service_env(settings, PARLEY_INVESTIGATION_SWEEP_INTERVAL_S="1")
    with running_service("services.investigation", ["worker"], env, tmp_path / "worker.log",
                         ready_text=WORKER_READY, timeout=240):
        async with Publisher(settings.kafka) as publisher:
            await publisher.publish(event)
        [opened] = [decode("investigation.paused", r.value)
                    for r in await read_all(settings, "investigation.paused", expected=1, timeout=90)]
        [notice] = await read_all(settings, "customer.notified", expected=1)
        assert opened.case_id == "case-p1" and opened.payload.resumed_at is None
        assert opened.payload.expected_resume_at is not None and opened.payload.expected_resume_at > datetime.now(UTC)
        assert decode("customer.notified", notice.value).payload.kind == "extension"
        db = service_database(mongo_client, settings.mongo, "investigation")
        doc = await db["investigations"].find_one({"_id": "case-p1"})
        assert doc is not None and doc["status"] == "paused"

        # still waiting for the appraiser: prove no sweep finishes the case, with the barrier
        async with Publisher(settings.kafka) as publisher:
            await publisher.publish(barrier)
        await read_all(settings, "investigation.paused",
                       until=lambda rs: bool(_of(rs, "investigation.paused", "case-p2")), timeout=90)
        other = await db["investigations"].find_one({"_id": "case-p2"})
        assert other is not None and other["status"] == "paused"
        assert other["resume_at"] > doc["resume_at"], "the barrier case must come later in the sweep"
        await db["appraisals"].update_one(
            {"case_id": "case-p2"}, {"$set": {"completed_at": datetime.now(UTC).replace(microsecond=0)}}
        )
        finished = await read_all(settings, "investigation.completed",
                                  until=lambda rs: bool(_of(rs, "investigation.completed", "case-p2")), timeout=60)
        assert _of(finished, "investigation.completed", "case-p1") == []
        doc = await db["investigations"].find_one({"_id": "case-p1"})
        assert doc is not None and doc["status"] == "paused"

        # the appraiser reports back (the institution's appraisal record gets its result)
        appraisal = await db["appraisals"].find_one({"case_id": "case-p1"})
        assert appraisal is not None
        done_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        await db["appraisals"].update_one({"_id": appraisal["_id"]}, {"$set": {"completed_at": done_at}})

        completions = await read_all(settings, "investigation.completed",
                                     until=lambda rs: bool(_of(rs, "investigation.completed", "case-p1")), timeout=60)
        [completed] = _of(completions, "investigation.completed", "case-p1")
        paused = await read_all(settings, "investigation.paused",
                                until=lambda rs: len(_of(rs, "investigation.paused", "case-p1")) == 2)
        pauses = [e.payload for e in _of(paused, "investigation.paused", "case-p1")]
    closed = pauses[-1]
    # excluded: the paused Beijing days (the day the clock stops counts, the day it resumes not)
    excluded = (beijing_day(done_at) - beijing_day(appraisal["requested_at"])).days
    assert closed.pause_id == opened.payload.pause_id and closed.resumed_at == done_at
    assert closed.days_excluded == completed.payload.paused_days == excluded >= 3
    p = completed.payload
    assert p.complex_case and "鉴定" in p.complexity_reason_zh
    expected = add_pause(due(received, 30), appraisal["requested_at"], done_at)
    assert p.deadline_at == expected.due_at  # the event carries the instant whole
    assert p.deadline_tier == 30 and expected.paused_days == excluded
    assert closed.deadline_at == p.deadline_at
    assert "unauthorised_account" in p.claims
    assert any(e.item == "external_appraisal" and e.recorded_at == done_at for e in p.evidence)
    doc = await db["investigations"].find_one({"_id": "case-p1"})
    assert doc is not None and doc["status"] == "completed"
