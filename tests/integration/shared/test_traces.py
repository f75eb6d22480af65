"""One complaint is one trace across services (issue 15, traces): complaints sent on
``complaint.received`` with a W3C ``traceparent`` (as a channel that traces would send them),
handled by an intake and an investigation worker process with ``PARLEY_TRACE_EXPORTER=file``.

The ``traceparent`` of every hop — complaint.received → complaint.registered →
investigation.completed — names the same trace id (the complaint id's, ``shared.tracing``),
and both services' exported span files hold spans of that trace: intake's and
investigation's consumer spans, each linked to the span its record's ``traceparent`` names.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.intake.handlers import complaint_id_for
from shared import tracing
from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from tests.integration.intake.support import complaint, encode
from tests.support.kafka import read_all
from tests.support.processes import WORKER_READY, ServiceProcess, service_env, start_service

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

COUNT = 4


def _trace_of(headers: Any) -> str:
    values = [v.decode() for k, v in headers or [] if k == "traceparent"]
    assert len(values) == 1, f"expected one traceparent header, got {headers}"
    version, trace_id, span_id, flags = values[0].split("-")
    assert (version, flags, len(trace_id), len(span_id)) == ("00", "01", 32, 16)
    return trace_id


def _span_parent(headers: Any) -> str:
    return next(v.decode() for k, v in headers if k == "traceparent").split("-")[2]


def _spans(directory: Path, service: str) -> list[dict[str, Any]]:
    files = sorted(directory.glob(f"{service}-*.jsonl"))
    assert files, f"no span file of {service} in {directory}"
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


async def test_one_complaint_is_one_trace_from_received_to_investigation_completed(
    settings: CommonSettings, tmp_path: Path
) -> None:
    await ensure_topics(settings.kafka)
    traces = tmp_path / "traces"
    env = service_env(settings, PARLEY_INTAKE_RELAY_INTERVAL_S="2",
                      PARLEY_INVESTIGATION_SWEEP_INTERVAL_S="2",
                      PARLEY_INTAKE_DATADIR=str(tmp_path / "faust"),
                      PARLEY_TRACE_EXPORTER="file",
                      PARLEY_TRACE_FILE=str(traces / "{service}-{pid}.jsonl"))

    def start(service: str) -> ServiceProcess:
        return start_service(f"services.{service}", ["worker", "-l", "info"], env,
                             tmp_path / f"{service}.log", ready_text=WORKER_READY, timeout=300)

    bodies = [complaint(i, channel_complaint_id=f"TR{i:06d}") for i in range(COUNT)]
    # what the channel sends: the complaint's trace, derived from intake's id of it
    expected = {b["channel_complaint_id"]: uuid.UUID(complaint_id_for(f"app:{b['channel_complaint_id']}")).hex
                for b in bodies}

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(2) as pool:
        workers = await asyncio.gather(*(loop.run_in_executor(pool, start, s)
                                         for s in ("intake", "investigation")))
    try:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
        await producer.start()
        try:
            for b in bodies:
                key = b["channel_complaint_id"]
                await producer.send_and_wait(
                    settings.kafka.topic("complaint.received"), encode(b), key=key.encode(),
                    headers=tracing.trace_headers(complaint_id_for(f"app:{key}"), f"channel:{key}"))
        finally:
            await producer.stop()

        received = [r for r in await read_all(settings, "complaint.received")
                    if r.key.decode() in expected]
        assert {r.key.decode(): _trace_of(r.headers) for r in received} == expected

        registered = await read_all(
            settings, "complaint.registered", timeout=240,
            until=lambda rs: len({json.loads(r.value)["payload"]["channel_complaint_id"] for r in rs}
                                 & set(expected)) == COUNT)
        case_trace: dict[str, str] = {}
        registered_parent: dict[str, str] = {}
        for r in registered:
            envelope = json.loads(r.value)
            cid = envelope["payload"]["channel_complaint_id"]
            if cid in expected:
                assert _trace_of(r.headers) == expected[cid] == uuid.UUID(envelope["correlation_id"]).hex
                case_trace[envelope["case_id"]] = expected[cid]
                registered_parent[envelope["case_id"]] = _span_parent(r.headers)

        outcomes: list[Any] = []

        def all_completed(rs: list[Any]) -> bool:
            outcomes[:] = rs
            return set(case_trace) <= {r.key.decode() for r in rs}

        await read_all(settings, "investigation.completed", timeout=300, until=all_completed)
        completed = [r for r in outcomes if r.key.decode() in case_trace]
        for r in completed:
            envelope = json.loads(r.value)
            assert envelope["producer"] == "investigation"
            assert _trace_of(r.headers) == case_trace[envelope["case_id"]]
        for worker in workers:
            assert worker.proc.poll() is None, worker.log_text()[-3000:]
    finally:
        for worker in workers:
            worker.stop()  # SIGTERM; every span was written when it ended (simple processor)

    wanted = {f"0x{t}" for t in expected.values()}
    intake_spans = [s for s in _spans(traces, "intake") if s["context"]["trace_id"] in wanted]
    investigation_spans = [s for s in _spans(traces, "investigation") if s["context"]["trace_id"] in wanted]
    # intake: a consumer span of complaint.received and a send span of complaint.registered per complaint
    assert {s["context"]["trace_id"] for s in intake_spans if s["name"] == "intake complaint.received"} == wanted
    assert {s["context"]["trace_id"] for s in intake_spans
            if s["name"] == "intake send complaint.registered"} == wanted
    # investigation: its consumer span hangs under the span complaint.registered's traceparent names
    consumed = [s for s in investigation_spans if s["name"] == "investigation complaint.registered"]
    assert {s["context"]["trace_id"] for s in consumed} == wanted
    for s in consumed:
        case_id = s["attributes"]["parley.case_id"]
        assert s["parent_id"] == f"0x{registered_parent[case_id]}"
        assert s["attributes"]["parley.event_type"] == "complaint.registered"
        assert f"0x{case_trace[case_id]}" == s["context"]["trace_id"]
    assert {s["context"]["trace_id"] for s in investigation_spans
            if s["name"] == "investigation send investigation.completed"} == wanted
    # the intake's send span is the one the registered record's traceparent names
    sent_ids = {s["context"]["span_id"] for s in intake_spans if s["name"] == "intake send complaint.registered"}
    assert {f"0x{p}" for p in registered_parent.values()} <= sent_ids
    # no personal data in any span
    raw = json.dumps(intake_spans + investigation_spans, ensure_ascii=False)
    assert "张小明" not in raw and "139" + "00000000" not in raw
