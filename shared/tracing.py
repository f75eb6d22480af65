"""Traces across Kafka: one complaint's journey is one OpenTelemetry trace in every service.

The trace id is *derived*, not carried in state: every event's envelope has the story's
``correlation_id`` (intake sets it to the complaint id), and ``trace_id_for`` turns it into
a W3C trace id (the UUID's 128 bits; any other text: the first 128 bits of its SHA-256).
So an event gets the same trace id whichever process publishes it — the handler's, or an
outbox sweep in another worker minutes later — and no trace context has to be stored with
the outbox.

- **Publishing**: every enveloped record gets a W3C ``traceparent`` header
  (``outgoing_headers`` / ``envelope_headers``): trace id from ``correlation_id``, parent
  span id from the event's ``event_id`` (``span_id_for``), so a consumer can link to it.
  When tracing is on, the sender also records a PRODUCER span ``<service> send <topic>``
  with exactly that span id, whose parent is the span of the event that caused it
  (``causation_id``): the spans of one complaint form one connected tree.
  An event published with no cause (an agent's offer over HTTP, a customer's answer, a
  timer's reminder) is still in its complaint's trace (its ``correlation_id``); its send
  span has no parent there but a *link* to the span that was current when it was sent (the
  HTTP request's or the timer's, which are traces of their own).
- **Consuming**: ``consuming(service, messages)`` records a CONSUMER span
  ``<service> <topic>`` per record of a batch, its parent read from the record's
  ``traceparent`` (else derived from the envelope's ``correlation_id``), with the record's
  topic, partition, offset, event type and case id — never personal data.
- **HTTP and timers**: ``instrument_api(app)`` gives every API request a SERVER span
  (``opentelemetry-instrumentation-fastapi``; ``/health`` and ``/metrics`` left out; a
  caller's ``traceparent`` is honoured); ``timer(service, name)`` is an INTERNAL span
  ``<service> timer <name>`` around one run of a timer or an outbox sweep.
- **Set-up**: ``setup(service)`` reads ``PARLEY_TRACE_EXPORTER`` = ``none`` (default:
  headers only, no spans, nothing exported), ``console`` (JSON spans on stderr), ``file``
  (JSON lines in ``PARLEY_TRACE_FILE``, default ``var/traces/{service}-{pid}.jsonl``;
  ``{service}`` and ``{pid}`` are filled in) or ``otlp`` (batches over OTLP/HTTP to the
  collector the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` names, default ``http://localhost:4318``; needs
  the ``otlp`` extra, ``pip install 'parley[otlp]'``, and says so at start-up when missing).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
EXPORTERS = ("none", "console", "file", "otlp")
#: paths whose requests get no span (probes and scrapes, many a minute)
UNTRACED_PATHS = ("/health", "/metrics")

_PROPAGATOR = TraceContextTextMapPropagator()
#: the ids the next span gets (the send span's ids are derived, not random)
_NEXT_IDS: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "parley_next_span_ids", default=None)
_tracer: trace.Tracer | None = None
_provider: Any = None  # the SDK TracerProvider when tracing is on
_closing: list[Any] = []  # what to close when the provider is replaced (a span file)
_service = ""


class ExporterUnavailable(ValueError):
    """``PARLEY_TRACE_EXPORTER`` names an exporter whose package is not installed."""


# ------------------------------------------------------------------ ids


def _digest(text: str, bits: int) -> int:
    value = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[: bits // 8], "big")
    return value or 1  # an all-zero id is invalid in W3C trace context


def trace_id_for(correlation_id: str) -> int:
    """The W3C trace id of a story: its correlation id's UUID bits, else SHA-256's first 128."""
    try:
        value = uuid.UUID(correlation_id).int
    except ValueError:
        value = 0
    return value or _digest(correlation_id, 128)


def span_id_for(event_id: str) -> int:
    """The span id of publishing one event: the first 64 bits of SHA-256 of its id."""
    return _digest(str(event_id), 64)


def traceparent(correlation_id: str, event_id: str) -> str:
    """The ``traceparent`` header value of an event (version 00, sampled)."""
    return f"00-{trace_id_for(correlation_id):032x}-{span_id_for(event_id):016x}-01"


def _span_context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))


# ------------------------------------------------------------------ headers


class _HeaderGetter(Getter[Sequence[tuple[str, bytes]]]):
    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        found = [v.decode("latin-1") for k, v in carrier if k.lower() == key and v is not None]
        return found or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [k for k, _ in carrier]


_GETTER = _HeaderGetter()


def context_from_headers(headers: Sequence[tuple[str, bytes]]) -> SpanContext | None:
    """The span context a record's ``traceparent`` header names, if valid."""
    ctx = _PROPAGATOR.extract(headers, getter=_GETTER)
    span_context = trace.get_current_span(ctx).get_span_context()
    return span_context if span_context.is_valid else None


def trace_headers(correlation_id: str, event_id: str) -> list[tuple[str, bytes]]:
    """``[("traceparent", ...)]`` for an event (formatted directly: the propagator's inject
    costs several times more per record, and ``context_from_headers`` reads it back with the
    propagator)."""
    return [(TRACEPARENT, traceparent(correlation_id, event_id).encode("ascii"))]


def _fields(value: bytes | None) -> Mapping[str, Any] | None:
    if not value:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("correlation_id"), str):
        return None
    return data


def outgoing_headers(topic: str, value: bytes | None) -> list[tuple[str, bytes]]:
    """Headers for a record a service sends as (topic, key, value): the ``traceparent`` of
    the envelope in ``value`` (none for a value that is no envelope), and, when tracing is
    on, the PRODUCER span it names."""
    data = _fields(value)
    if data is None:
        return []
    return _send(topic, data["correlation_id"], str(data.get("event_id") or ""),
                 data.get("causation_id"), data.get("producer"), data.get("event_type"),
                 data.get("case_id"))


def envelope_headers(envelope: Any) -> list[tuple[str, bytes]]:
    """``outgoing_headers`` for a typed ``Envelope`` (no parsing)."""
    return _send(envelope.event_type, envelope.correlation_id, str(envelope.event_id),
                 envelope.causation_id, envelope.producer, envelope.event_type, envelope.case_id)


def record_headers(topic: str, correlation_id: str, record_id: str) -> list[tuple[str, bytes]]:
    """``outgoing_headers`` for a record that is no envelope but belongs to a story (a
    complaint an API puts on ``complaint.received``: its complaint id's trace), with its
    send span when tracing is on (linked to the current HTTP request's span)."""
    return _send(topic, correlation_id, record_id, None, None, topic, None)


def _send(topic: str, correlation_id: str, event_id: str, causation_id: str | None,
          producer: str | None, event_type: str | None, case_id: str | None) -> list[tuple[str, bytes]]:
    headers = trace_headers(correlation_id, event_id)
    if _tracer is not None:
        trace_id = trace_id_for(correlation_id)
        parent = Context()
        links: list[Link] = []
        current = trace.get_current_span().get_span_context()
        batch = _BATCH.get()
        if causation_id:
            parent = trace.set_span_in_context(
                NonRecordingSpan(_span_context(trace_id, span_id_for(causation_id))), parent)
        elif batch is not None and trace_id in batch:  # sent for a record of the batch in hand
            parent = trace.set_span_in_context(NonRecordingSpan(batch[trace_id]), parent)
        elif current.is_valid and current.trace_id == trace_id:  # a caller already in this story
            parent = trace.set_span_in_context(NonRecordingSpan(current), parent)
        if current.is_valid and current.trace_id != trace_id:  # an HTTP request's or a timer's span
            links.append(Link(current))
        run = _TIMER_RUN.get()
        if run is not None:
            run.sent += 1
        token = _NEXT_IDS.set((trace_id, span_id_for(event_id)))
        try:
            span = _tracer.start_span(f"{producer or _service} send {topic}", context=parent,
                                      kind=SpanKind.PRODUCER, links=links, attributes=_attributes(
                                          topic, None, None, event_type, case_id))
        finally:
            _NEXT_IDS.reset(token)
        span.end()
    return headers


# ------------------------------------------------------------------ consuming


def _attributes(topic: str, partition: int | None, offset: int | None,
                event_type: str | None, case_id: str | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"messaging.system": "kafka", "messaging.destination.name": topic}
    if partition is not None:
        attrs["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attrs["messaging.kafka.offset"] = offset
    if event_type:
        attrs["parley.event_type"] = event_type
    if case_id:
        attrs["parley.case_id"] = case_id
    return attrs


@contextmanager
def consuming(service: str, messages: Sequence[Any]) -> Iterator[None]:
    """A CONSUMER span ``<service> <topic>`` per record (``Incoming``) while the batch is
    handled; a no-op when tracing is off. None of them is made the current span: a batch
    mixes stories, and what it publishes names its own parent — its cause's send span, or,
    for an event without a cause (intake's ``complaint.registered``: ``complaint.received``
    is no envelope), the consumer span of the batch's record of the same story."""
    if _tracer is None:
        yield
        return
    spans: dict[int, SpanContext] = {}
    token = _BATCH.set(spans)
    with ExitStack() as stack:
        stack.callback(_BATCH.reset, token)
        for message in messages:
            parent = context_from_headers(message.headers)
            data = _fields(message.value)
            if parent is None and data is not None:  # no header: the envelope's own story
                parent = _span_context(trace_id_for(data["correlation_id"]),
                                       span_id_for(str(data.get("event_id") or "")))
            context = trace.set_span_in_context(NonRecordingSpan(parent), Context()) if parent else Context()
            case_id = data.get("case_id") if data is not None else None
            span = _tracer.start_span(
                f"{service} {message.topic}", context=context, kind=SpanKind.CONSUMER,
                attributes=_attributes(message.topic, message.partition, message.offset,
                                       data.get("event_type") if data is not None else None,
                                       case_id if isinstance(case_id, str) else None),
                record_exception=False, set_status_on_exception=False)
            stack.callback(span.end)
            spans.setdefault(span.get_span_context().trace_id, span.get_span_context())
        yield


@contextmanager
def timer(service: str, name: str) -> Iterator[None]:
    """An INTERNAL span ``<service> timer <name>`` for one run of a timer (a trace of its
    own; what the run publishes links to it), recorded only when the run sent something or
    failed — most runs of a sweep find nothing, and a span each second says nothing; a
    no-op when tracing is off."""
    if _tracer is None:
        yield
        return
    trace_id, span_id = random.getrandbits(128) or 1, random.getrandbits(64) or 1
    run = _TimerRun()
    current = trace.set_span_in_context(NonRecordingSpan(SpanContext(
        trace_id, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))), Context())
    attached, counting = otel_context.attach(current), _TIMER_RUN.set(run)
    started, failure = time.time_ns(), None
    try:
        yield
    except BaseException as exc:
        failure = exc
        raise
    finally:
        _TIMER_RUN.reset(counting)
        otel_context.detach(attached)
        if run.sent or failure is not None:
            ids = _NEXT_IDS.set((trace_id, span_id))
            try:
                span = _tracer.start_span(f"{service} timer {name}", context=Context(), kind=SpanKind.INTERNAL,
                                          attributes={"parley.timer": name, "parley.sent": run.sent},
                                          start_time=started)
            finally:
                _NEXT_IDS.reset(ids)
            if failure is not None:
                span.record_exception(failure)
                span.set_status(Status(StatusCode.ERROR, type(failure).__name__))
            span.end()


class _TimerRun:
    """What one run of a timer sent (``timer`` records its span only if anything)."""

    sent = 0


_TIMER_RUN: contextvars.ContextVar[_TimerRun | None] = contextvars.ContextVar("parley_timer_run", default=None)
#: the consumer spans of the batch in hand, by trace id
_BATCH: contextvars.ContextVar[dict[int, SpanContext] | None] = contextvars.ContextVar(
    "parley_batch_spans", default=None)


def instrument_api(app: Any) -> None:
    """A SERVER span per HTTP request of a FastAPI ``app`` (``opentelemetry-instrumentation-
    fastapi``), none for ``UNTRACED_PATHS``; a no-op when tracing is off."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_provider, exclude_spans=["receive", "send"], server_request_hook=_without_query,
        excluded_urls=",".join(f"^[a-z]+://[^/]+{path}$" for path in UNTRACED_PATHS))


#: the request attributes that hold the query string (old and stable HTTP conventions)
_QUERY_ATTRIBUTES = ("http.url", "http.target", "url.full", "url.query")


def _without_query(span: Any, scope: Mapping[str, Any]) -> None:
    """Keep a request's query string out of its span: a search box (the console's ``q``)
    may hold whatever someone typed, personal numbers included."""
    if not scope.get("query_string") or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for name in _QUERY_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str):
            span.set_attribute(name, "" if name == "url.query" else value.split("?", 1)[0])


# ------------------------------------------------------------------ set-up


def enabled() -> bool:
    """Whether spans are recorded (``setup`` chose an exporter other than ``none``)."""
    return _tracer is not None


def setup(service: str, environ: Mapping[str, str] | None = None) -> str:
    """Install the tracer provider ``PARLEY_TRACE_EXPORTER`` asks for; return its name.

    Raises ``ValueError`` for an unknown exporter and ``ExporterUnavailable`` (a
    ``ValueError``) for ``otlp`` without its package, before anything is replaced.
    """
    global _tracer, _provider, _service
    env = os.environ if environ is None else environ
    choice = (env.get("PARLEY_TRACE_EXPORTER") or "none").strip().lower()
    if choice not in EXPORTERS:
        raise ValueError(f"PARLEY_TRACE_EXPORTER must be one of {', '.join(EXPORTERS)}, not {choice!r}")
    exporter: Any = _otlp_exporter(env) if choice == "otlp" else None
    _shutdown()
    _service = service
    if choice == "none":
        return choice
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class _DerivedIds(RandomIdGenerator):
        """Random ids, except for the spans whose ids ``_send`` derived."""

        def generate_span_id(self) -> int:
            ids = _NEXT_IDS.get()
            return ids[1] if ids is not None else super().generate_span_id()

        def generate_trace_id(self) -> int:
            ids = _NEXT_IDS.get()
            return ids[0] if ids is not None else super().generate_trace_id()

    provider = TracerProvider(resource=Resource.create({"service.name": service}),
                              id_generator=_DerivedIds())
    if choice == "otlp":  # batched, sent from a thread of its own; flushed at exit
        provider.add_span_processor(BatchSpanProcessor(exporter))
    else:
        if choice == "file":
            template = env.get("PARLEY_TRACE_FILE") or "var/traces/{service}-{pid}.jsonl"
            path = Path(template.format(service=service, pid=os.getpid()))
            path.parent.mkdir(parents=True, exist_ok=True)
            out: Any = path.open("a", encoding="utf-8")
            _closing.append(out)
        else:
            out = sys.stderr
        provider.add_span_processor(SimpleSpanProcessor(
            ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")))
    _provider, _tracer = provider, provider.get_tracer("parley")
    return choice


def _otlp_exporter(env: Mapping[str, str]) -> Any:
    """The OTLP/HTTP span exporter (endpoint, headers and timeout from the standard
    ``OTEL_EXPORTER_OTLP_*`` variables), or ``ExporterUnavailable`` saying what to install."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ExporterUnavailable(
            "PARLEY_TRACE_EXPORTER=otlp needs the package opentelemetry-exporter-otlp-proto-http, "
            "which is not installed: pip install 'parley[otlp]' (or choose none, console or file)"
        ) from exc
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if endpoint is None and env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint)


def _shutdown() -> None:
    """Flush and drop the provider in use (tracing is off until one is installed again)."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()
    while _closing:
        _closing.pop().close()
