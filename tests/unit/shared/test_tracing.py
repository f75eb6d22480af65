"""shared.tracing: trace ids derived from correlation ids, traceparent headers that round-trip,
and spans written as JSON lines that link one story's hops."""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import tracing
from shared.contracts.envelope import Envelope, Payload
from shared.kafka.consume import Incoming
from shared.kafka.producer import event_headers


class Pinged(Payload):
    event_type = "complaint.registered"
    note: str = ""


@pytest.fixture(autouse=True)
def tracing_off() -> Iterator[None]:
    yield
    tracing.setup("test", {})  # back to none for the next test


def test_a_uuid_correlation_id_is_the_trace_id_itself() -> None:
    cid = "5f0c6a3e-2b1d-4c8e-9f7a-0123456789ab"
    assert tracing.trace_id_for(cid) == uuid.UUID(cid).int
    assert f"{tracing.trace_id_for(cid):032x}" == uuid.UUID(cid).hex


def test_other_correlation_ids_hash_to_a_stable_valid_trace_id() -> None:
    expected = int(hashlib.sha256(b"cmp-0001").hexdigest()[:32], 16)
    assert tracing.trace_id_for("cmp-0001") == expected == tracing.trace_id_for("cmp-0001")
    assert tracing.trace_id_for("cmp-0002") != expected
    # the nil UUID is no valid trace id: hashed instead
    assert tracing.trace_id_for(str(uuid.UUID(int=0))) != 0


def test_traceparent_round_trips_through_headers() -> None:
    cid, eid = str(uuid.uuid4()), str(uuid.uuid4())
    headers = tracing.trace_headers(cid, eid)
    assert headers == [("traceparent", tracing.traceparent(cid, eid).encode())]
    value = headers[0][1].decode()
    assert value.startswith(f"00-{uuid.UUID(cid).hex}-") and value.endswith("-01")
    ctx = tracing.context_from_headers([("event_type", b"x"), *headers])
    assert ctx is not None
    assert ctx.trace_id == uuid.UUID(cid).int
    assert ctx.span_id == tracing.span_id_for(eid)
    assert ctx.is_remote and ctx.trace_flags.sampled


def test_a_broken_or_missing_traceparent_gives_no_context() -> None:
    assert tracing.context_from_headers([]) is None
    assert tracing.context_from_headers([("traceparent", b"00-zz-yy-01")]) is None
    assert tracing.context_from_headers([("traceparent", b"00-" + b"0" * 32 + b"-" + b"1" * 16 + b"-01")]) is None


def test_every_published_envelope_and_outbox_value_carries_the_same_traceparent() -> None:
    env = Envelope.wrap(Pinged(note="x"), case_id="case-1", producer="intake",
                        correlation_id=str(uuid.uuid4()))
    expected = ("traceparent", tracing.traceparent(env.correlation_id, str(env.event_id)).encode())
    assert expected in event_headers(env)
    # the outbox sends (topic, key, value): the header is derived from the value at send time
    assert tracing.outgoing_headers("complaint.registered", env.to_bytes()) == [expected]
    # a value that is no envelope gets no header (and no error)
    assert tracing.outgoing_headers("complaint.received", b"{not json") == []
    assert tracing.outgoing_headers("complaint.received", b'{"text": "x"}') == []
    assert tracing.outgoing_headers("complaint.received", None) == []


def test_setup_refuses_an_unknown_exporter() -> None:
    with pytest.raises(ValueError, match="PARLEY_TRACE_EXPORTER"):
        tracing.setup("test", {"PARLEY_TRACE_EXPORTER": "jaeger"})
    assert tracing.setup("test", {}) == "none" and not tracing.enabled()


def test_spans_of_one_story_share_its_trace_and_link_hop_to_hop(tmp_path: Path) -> None:
    path = tmp_path / "{service}.jsonl"
    assert tracing.setup("investigation", {"PARLEY_TRACE_EXPORTER": "file",
                                           "PARLEY_TRACE_FILE": str(path)}) == "file"
    cid = str(uuid.uuid4())
    cause = Envelope.wrap(Pinged(), case_id="case-9", producer="intake", correlation_id=cid)
    effect = Envelope.wrap(Pinged(), case_id="case-9", producer="investigation", cause=cause)
    incoming = Incoming("complaint.registered", b"case-9", cause.to_bytes(), 2, 41, event_headers(cause))
    bare = Incoming("complaint.registered", b"case-9", cause.to_bytes(), 2, 42, [])  # no header
    with tracing.consuming("investigation", [incoming, bare]):
        tracing.outgoing_headers("investigation.completed", effect.to_bytes())

    spans = [json.loads(line) for line in (tmp_path / "investigation.jsonl").read_text().splitlines()]
    trace_hex = f"0x{uuid.UUID(cid).hex}"
    assert {s["context"]["trace_id"] for s in spans} == {trace_hex}
    by_name: dict[str, list[dict[str, object]]] = {}
    for s in spans:
        by_name.setdefault(s["name"], []).append(s)
    consumed = by_name["investigation complaint.registered"]
    assert len(consumed) == 2
    for s in consumed:
        assert s["kind"] == "SpanKind.CONSUMER"
        assert s["parent_id"] == f"0x{tracing.span_id_for(str(cause.event_id)):016x}"
        assert s["attributes"]["parley.case_id"] == "case-9"
        assert s["attributes"]["parley.event_type"] == "complaint.registered"
        assert s["attributes"]["messaging.destination.partition.id"] == "2"
    assert {s["attributes"]["messaging.kafka.offset"] for s in consumed} == {41, 42}
    (sent,) = by_name["investigation send investigation.completed"]
    # the send span has the span id the record's traceparent names, under its cause's send span
    assert sent["context"]["span_id"] == f"0x{tracing.span_id_for(str(effect.event_id)):016x}"
    assert sent["parent_id"] == f"0x{tracing.span_id_for(str(cause.event_id)):016x}"
    # no personal data in any span: only ids, topics and offsets
    assert "note" not in json.dumps(spans)


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_otlp_selects_the_otlp_http_exporter_batched() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    env = {"PARLEY_TRACE_EXPORTER": "OTLP", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example:4318/"}
    assert tracing.setup("negotiation", env) == "otlp" and tracing.enabled()
    processors = tracing._provider._active_span_processor._span_processors  # noqa: SLF001
    assert [type(p) for p in processors] == [BatchSpanProcessor]
    exporter = processors[0]._batch_processor._exporter  # noqa: SLF001
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter._endpoint == "http://collector.example:4318/v1/traces"  # noqa: SLF001
    assert tracing._provider.resource.attributes["service.name"] == "negotiation"  # noqa: SLF001


def test_otlp_without_its_package_is_a_clear_error_and_changes_nothing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tracing.setup("followup", {"PARLEY_TRACE_EXPORTER": "file", "PARLEY_TRACE_FILE": str(tmp_path / "f.jsonl")})
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(tracing.ExporterUnavailable, match=r"pip install 'parley\[otlp\]'"):
        tracing.setup("followup", {"PARLEY_TRACE_EXPORTER": "otlp"})
    assert tracing.enabled()  # the provider in use stays


def test_a_service_refuses_to_start_on_otlp_without_its_package(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from services.followup.app import SPEC
    from shared.service import run

    monkeypatch.setenv("PARLEY_TRACE_EXPORTER", "otlp")
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(SystemExit) as exited:
        run(SPEC, ["worker"])
    assert exited.value.code == 2
    assert "opentelemetry-exporter-otlp-proto-http" in capsys.readouterr().err


def test_what_a_request_or_a_timer_sends_is_in_its_story_and_links_to_the_request(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    tracing.setup("negotiation", {"PARLEY_TRACE_EXPORTER": "file", "PARLEY_TRACE_FILE": str(path)})
    cid = str(uuid.uuid4())
    offer = Envelope.wrap(Pinged(), case_id="case-1", producer="negotiation", correlation_id=cid)
    with tracing.timer("negotiation", "deadlines"):
        tracing.envelope_headers(offer)
    spans = {s["name"]: s for s in _read(path)}
    run, sent = spans["negotiation timer deadlines"], spans["negotiation send complaint.registered"]
    assert run["kind"] == "SpanKind.INTERNAL" and run["parent_id"] is None
    assert sent["context"]["trace_id"] == f"0x{uuid.UUID(cid).hex}" != run["context"]["trace_id"]
    assert sent["parent_id"] is None  # no cause: the story's root, linked to what sent it
    assert [link["context"]["span_id"] for link in sent["links"]] == [run["context"]["span_id"]]
    # a run that sends nothing leaves no span; a failing one does, with its error
    with tracing.timer("negotiation", "idle"):
        pass
    with pytest.raises(RuntimeError), tracing.timer("negotiation", "broken"):
        raise RuntimeError("database down")
    names = [s["name"] for s in _read(path)]
    assert "negotiation timer idle" not in names
    (broken,) = [s for s in _read(path) if s["name"] == "negotiation timer broken"]
    assert broken["status"]["status_code"] == "ERROR" and broken["attributes"]["parley.sent"] == 0
    # a complaint put on complaint.received (no envelope) starts its complaint id's trace
    (header,) = tracing.record_headers("complaint.received", cid, "received:app:C1")
    assert header == ("traceparent", tracing.traceparent(cid, "received:app:C1").encode())
    assert f"0x{uuid.UUID(cid).hex}" in {s["context"]["trace_id"] for s in _read(path)
                                       if s["name"] == "negotiation send complaint.received"}


async def test_a_request_gets_a_server_span_and_probes_get_none(tmp_path: Path) -> None:
    import httpx
    from fastapi import FastAPI

    path = tmp_path / "spans.jsonl"
    tracing.setup("followup", {"PARLEY_TRACE_EXPORTER": "file", "PARLEY_TRACE_FILE": str(path)})
    app = FastAPI()
    cid = str(uuid.uuid4())

    @app.post("/executions/{case_id}/callback")
    async def callback(case_id: str) -> dict[str, str]:
        tracing.envelope_headers(Envelope.wrap(Pinged(), case_id=case_id, producer="followup", correlation_id=cid))
        return {"ok": case_id}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    tracing.instrument_api(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        assert (await client.post("/executions/case-1/callback")).status_code == 200
        assert (await client.get("/health")).status_code == 200
        assert (await client.post("/executions/case-1/callback?q=13912345678")).status_code == 200
    spans = _read(path)
    server, searched = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert "13912345678" not in json.dumps(spans)  # a query string is kept out of spans
    assert searched["attributes"]["http.url"] == "http://api/executions/case-1/callback"
    assert server["name"] == "POST /executions/{case_id}/callback"
    assert server["attributes"]["http.status_code"] == 200
    sent = [s for s in spans if s["kind"] == "SpanKind.PRODUCER"][0]
    assert sent["context"]["trace_id"] == f"0x{uuid.UUID(cid).hex}"
    assert [link["context"]["span_id"] for link in sent["links"]] == [server["context"]["span_id"]]
    assert not [s for s in spans if "/health" in s["name"]]


def test_an_event_without_a_cause_hangs_under_the_batchs_record_of_its_story(tmp_path: Path) -> None:
    """intake's complaint.registered has no cause (complaint.received is no envelope): its send
    span's parent is the consumer span of the complaint it registers."""
    path = tmp_path / "spans.jsonl"
    tracing.setup("intake", {"PARLEY_TRACE_EXPORTER": "file", "PARLEY_TRACE_FILE": str(path)})
    cid, other = str(uuid.uuid4()), str(uuid.uuid4())
    received = [Incoming("complaint.received", b"C1", b'{"text": "x"}', 0, 7,
                         tracing.record_headers("complaint.received", c, f"received:{c}")) for c in (cid, other)]
    registered = Envelope.wrap(Pinged(), case_id="case-1", producer="intake", correlation_id=cid)
    with tracing.consuming("intake", received):
        tracing.envelope_headers(registered)
    spans = _read(path)
    consumed = {s["context"]["trace_id"]: s for s in spans if s["name"] == "intake complaint.received"}
    (sent,) = [s for s in spans if s["name"] == "intake send complaint.registered"]
    assert sent["parent_id"] == consumed[f"0x{uuid.UUID(cid).hex}"]["context"]["span_id"]
    tracing.envelope_headers(registered)  # outside a batch (an outbox sweep): a root again
    assert _read(path)[-1]["parent_id"] is None


def test_otlp_ships_the_spans_to_the_collector_it_is_given() -> None:
    """A real OTLP/HTTP exchange with a collector stand-in on a local port: the spans arrive
    as the protobuf ExportTraceServiceRequest, with the story's trace id."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        assert tracing.setup("followup", {"PARLEY_TRACE_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
        cid = str(uuid.uuid4())
        tracing.envelope_headers(Envelope.wrap(Pinged(), case_id="case-1", producer="followup", correlation_id=cid))
        assert tracing._provider.force_flush(10_000)  # noqa: SLF001
    finally:
        server.shutdown()
        server.server_close()
    (path, body), = received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    (span,) = [s for r in request.resource_spans for ss in r.scope_spans for s in ss.spans]
    assert span.name == "followup send complaint.registered" and span.trace_id == uuid.UUID(cid).bytes
