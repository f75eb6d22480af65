"""Prometheus metrics, the same for every service (``prometheus-client``).

One registry per process (the client's default). Every name starts with ``parley_``:

- ``parley_messages_consumed_total{service, topic, outcome}`` — records a worker's agents
  handled (``outcome="handled"``) or sent to the dead-letter topic (``"dead_lettered"``);
- ``parley_handler_seconds{service, subscription}`` — how long a subscription's batch handler
  took (one observation per batch call);
- ``parley_events_published_total{topic}`` — events published from outboxes
  (``shared.outbox.publish_written``, after a batch and by the sweep);
- ``parley_http_request_seconds{service, method, route, status}`` — API request latency, by the
  route's template (``/cases/{case_id}``, never the concrete path: no ids in label values);
- supervision's gauges (``parley_consumer_lag``, ``parley_supervision_*``), set by supervision.

The API serves them at ``GET /metrics`` (open, like ``/health``: numbers, no data); a worker
on ``PARLEY_METRICS_PORT`` when that is set (``serve_worker_metrics``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

log = logging.getLogger(__name__)

#: latency buckets (seconds) for handlers and HTTP requests: FerretDB round trips are 10 ms–1 s
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

MESSAGES_CONSUMED = Counter(
    "parley_messages_consumed", "Records a worker's agents handled or dead-lettered.",
    ["service", "topic", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "parley_handler_seconds", "Time a subscription's batch handler took.",
    ["service", "subscription"], buckets=BUCKETS,
)
EVENTS_PUBLISHED = Counter(
    "parley_events_published", "Events published from outboxes.", ["topic"],
)
HTTP_SECONDS = Histogram(
    "parley_http_request_seconds", "API request latency by route template.",
    ["service", "method", "route", "status"], buckets=BUCKETS,
)
CONSUMER_LAG = Gauge(
    "parley_consumer_lag", "Records not yet consumed (end offset - committed offset), by "
    "consumer group and topic (summed over partitions).", ["group", "topic"],
)
CASES_DUE_TODAY = Gauge(
    "parley_supervision_cases_due_today", "Cases on the clock whose deadline is today (Beijing day)."
)
DEADLINES_BREACHED = Gauge(
    "parley_supervision_deadlines_breached", "Cases with a deadline_breached alert."
)
ALERTS_BY_STATUS = Gauge(
    "parley_supervision_alerts", "Alerts in supervision's store by status.", ["status"],
)
WORKERS = Gauge(
    "parley_consumer_group_members", "Members (running workers) of each service's consumer group, "
    "as supervision's heartbeat check read them.", ["group"],
)


def consumed(service: str, topic: str, outcome: str, n: int = 1) -> None:
    """Count ``n`` records of ``topic`` that ended as ``outcome``."""
    MESSAGES_CONSUMED.labels(service, topic, outcome).inc(n)


@contextmanager
def handler_timer(service: str, subscription: str) -> Iterator[None]:
    """Time one batch handler call (failures included)."""
    with HANDLER_SECONDS.labels(service, subscription).time():
        yield


def render() -> tuple[bytes, str]:
    """The process's metrics in the Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


def install_http_metrics(app: FastAPI, service: str) -> None:
    """Time every request of ``app`` by its route template and serve ``GET /metrics``.

    Before rendering, ``/metrics`` awaits the callables in ``app.state.metrics_refresh`` (a
    service's gauges computed on demand, e.g. supervision's lag); a failing one is logged and
    the rest of the metrics still answer.
    """
    app.state.metrics_refresh = []

    @app.middleware("http")
    async def _time_request(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            HTTP_SECONDS.labels(service, request.method, template, str(status)).observe(
                time.perf_counter() - started)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process (no token: numbers only)."""
        for refresh in list(getattr(request.app.state, "metrics_refresh", [])):
            try:
                await refresh(request.app)
            except Exception:  # noqa: BLE001 - one gauge's source down must not hide the others
                log.exception("could not refresh a metric")
        body, content_type = render()
        return Response(body, media_type=content_type)


def serve_worker_metrics(port: int, *, worker_index: int = 1) -> int | None:
    """Serve this worker's metrics over HTTP on ``port`` (+ ``worker_index`` - 1, so N workers
    of a service on one machine do not collide); 0 turns it off. Returns the port used."""
    if port <= 0:
        return None
    used = port + worker_index - 1
    start_http_server(used, addr="127.0.0.1")
    log.info("worker metrics on http://127.0.0.1:%d/metrics", used)
    return used
