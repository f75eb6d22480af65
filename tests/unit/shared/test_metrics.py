"""Metrics: what the consume step counts, what publishing counts, what an API serves at /metrics."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from shared import metrics
from shared.errors import InvalidMessage
from shared.kafka.consume import Incoming, consume_batch
from shared.kafka.dlq import DeadLetter
from shared.outbox import Written, publish_written


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _no_send(topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
    return None


async def _no_sleep(_: float) -> None:
    return None


async def test_consume_batch_counts_handled_and_dead_lettered_records_per_topic() -> None:
    dlq = DeadLetter(send=_no_send, consumer="metrics-test", sleep=_no_sleep)
    labels = {"service": "metrics-test", "topic": "complaint.registered"}
    handled0 = _value("parley_messages_consumed_total", **labels, outcome="handled")
    dead0 = _value("parley_messages_consumed_total", **labels, outcome="dead_lettered")

    def decode(m: Incoming) -> Any:
        if m.value == b"bad":
            raise InvalidMessage("bad")
        return m.value

    async def handle(items: list[Any]) -> None:
        if b"boom" in items:
            raise ValueError("a bug")

    messages = [Incoming("complaint.registered", k, v, 0, i)
                for i, (k, v) in enumerate([(b"a", b"ok"), (b"b", b"bad"), (b"c", b"ok2"), (b"d", b"boom")])]
    await consume_batch(messages, decode, handle, dead_letter=dlq, sleep=_no_sleep)
    assert _value("parley_messages_consumed_total", **labels, outcome="handled") - handled0 == 2
    assert _value("parley_messages_consumed_total", **labels, outcome="dead_lettered") - dead0 == 2


async def test_handler_timer_observes_each_call() -> None:
    before = _value("parley_handler_seconds_count", service="metrics-test", subscription="s")
    with metrics.handler_timer("metrics-test", "s"):
        pass
    assert _value("parley_handler_seconds_count", service="metrics-test", subscription="s") - before == 1


async def test_publish_written_counts_events_per_topic() -> None:
    class Coll:
        async def update_many(self, *_: Any, **__: Any) -> None:
            return None

        async def bulk_write(self, ops: list[Any], **__: Any) -> Any:
            return type("Result", (), {"matched_count": len(ops)})()

    sent: list[str] = []

    async def send(topic: str, key: bytes, value: bytes) -> None:
        sent.append(topic)

    before = _value("parley_events_published_total", topic="metrics.test")
    pending = {"e1": {"topic": "metrics.test", "key": "k", "value": "{}", "order": "1"},
               "e2": {"topic": "metrics.test", "key": "k", "value": "{}", "order": "2"}}
    await publish_written([Written(Coll(), "doc-1", pending)], send)  # type: ignore[arg-type]
    assert sent == ["metrics.test", "metrics.test"]
    assert _value("parley_events_published_total", topic="metrics.test") - before == 2


async def test_an_api_serves_metrics_with_request_latency_by_route_template() -> None:
    app = FastAPI()
    metrics.install_http_metrics(app, "metrics-api")
    refreshed: list[Any] = []

    async def refresh(a: Any) -> None:
        refreshed.append(a)

    app.state.metrics_refresh.append(refresh)

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        assert (await client.get("/things/t-1")).status_code == 200
        resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert refreshed == [app]
    text = resp.text
    assert 'parley_http_request_seconds_count{method="GET",route="/things/{thing_id}",service="metrics-api",status="200"}' in text
    assert "t-1" not in text  # the template, never the concrete path


def test_worker_metrics_are_off_by_default() -> None:
    assert metrics.serve_worker_metrics(0) is None
