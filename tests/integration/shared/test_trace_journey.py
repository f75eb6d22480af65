"""One complaint is one trace from ``complaint.received`` to ``case.closed`` (issue 15, traces).

Every service runs as its own processes (five workers, four APIs) with
``PARLEY_TRACE_EXPORTER=file``, and one complaint is driven through to a closed case the
way the e2e test drives it (``tests.support.journey``: the intake API, the agent's offer and
the customer's acceptance over negotiation's API, execution and the callback over
follow-up's). Then:

- every record of the case on every topic — each hop from ``complaint.received`` to
  ``case.closed``, including those sent because of an HTTP request — has a ``traceparent``
  naming the complaint's trace id (``shared.tracing``: the complaint id's UUID bits), and
  the span id it names is a real send span of that trace;
- every service's span files hold that trace: the consumer span of each hop it reads, whose
  parent is the send span the record's ``traceparent`` names; the send spans of what it
  publishes; the APIs' request spans, to which what a request sent without a cause links;
- no span holds the complaint's personal data.

``test_a_hop_without_its_traceparent_fails_the_check`` shows that the hop check fails when a
record lacks its header or names another trace.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from services.intake.handlers import complaint_id_for
from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from shared.topics import CATALOGUE
from tests.integration.intake.support import complaint
from tests.support.eventually import eventually
from tests.support.journey import drive_to_closure, pipeline
from tests.support.kafka import read_all

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

#: the hops of a settled complaint's journey, in order
HOPS = (
    "complaint.received", "complaint.registered", "investigation.completed", "negotiation.started",
    "settlement.agreed", "settlement.executed", "followup.completed", "case.closed",
)
#: the consumer spans each service must have recorded in the trace (its subscriptions on HOPS)
CONSUMED = {
    service: {t for t in HOPS if service in CATALOGUE[t].consumers}
    for service in ("intake", "investigation", "negotiation", "followup", "supervision")
}
#: the send spans each service must have recorded in the trace
SENT = {
    "intake": {"complaint.received", "complaint.registered"},  # the API's and the worker's
    "investigation": {"investigation.completed"},
    "negotiation": {"negotiation.started", "settlement.agreed"},
    "followup": {"settlement.executed", "followup.completed", "case.closed"},
    "supervision": set(),
}
PERSONAL = ("李小红", "13700001111", "11010119880101123X")


def traceparent_of(record: Any) -> tuple[str, str]:
    """(trace id, parent span id) of a record's one ``traceparent`` header, as hex."""
    values = [v.decode() for k, v in record.headers or [] if k == "traceparent"]
    assert len(values) == 1, f"{record.topic}: expected one traceparent header, got {record.headers}"
    version, trace_id, span_id, flags = values[0].split("-")
    assert (version, flags, len(trace_id), len(span_id)) == ("00", "01", 32, 16), values[0]
    return trace_id, span_id


def check_hops(records: Mapping[str, Iterable[Any]], trace_id: str) -> dict[str, set[str]]:
    """Assert that each hop has records and that every record names ``trace_id``; return the
    span ids their headers name, by topic."""
    named: dict[str, set[str]] = {}
    for topic in HOPS:
        hop = list(records.get(topic, ()))
        assert hop, f"no record of the story on {topic}"
        for record in hop:
            found, span_id = traceparent_of(record)
            assert found == trace_id, f"{topic}: trace {found}, not the complaint's {trace_id}"
            named.setdefault(topic, set()).add(span_id)
    return named


def test_a_hop_without_its_traceparent_fails_the_check() -> None:
    trace_id, other = uuid.uuid4().hex, uuid.uuid4().hex

    def record(topic: str, trace: str | None) -> Any:
        headers = [("event_type", topic.encode())]
        if trace is not None:
            headers.append(("traceparent", f"00-{trace}-{'1' * 16}-01".encode()))
        return SimpleNamespace(topic=topic, headers=headers)

    whole = {t: [record(t, trace_id)] for t in HOPS}
    assert set(check_hops(whole, trace_id)) == set(HOPS)
    for broken, why in ((None, "expected one traceparent"), (other, "not the complaint's")):
        with pytest.raises(AssertionError, match=why):
            check_hops(whole | {"settlement.executed": [record("settlement.executed", broken)]}, trace_id)
    with pytest.raises(AssertionError, match="no record of the story on case.closed"):
        check_hops({t: rs for t, rs in whole.items() if t != "case.closed"}, trace_id)


#: the requests of the story whose server spans the trace holds
REQUESTS = {"POST /complaints", "POST /cases/{case_id}/offers",
            "POST /customer/cases/{case_id}/offers/{offer_id}/accept", "POST /executions/{case_id}/callback"}


def _spans(directory: Path, service: str) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(directory.glob(f"{service}-*.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]


async def test_one_complaint_is_one_trace_from_received_to_closed(settings: CommonSettings, tmp_path: Path) -> None:
    await ensure_topics(settings.kafka)
    traces = tmp_path / "traces"
    submission = complaint(
        1, channel_complaint_id="TRJ-0001", customer_id="CUST-TRJ-1", product="credit_card",
        text=("我的信用卡只逾期了3天，就被收取了500元滞纳金和800元罚息，合同里没有约定这么高的费用，"
              "客服也不给解释。要求退还不合理的滞纳金和罚息。"),
        amount_disputed="1300.00", demand="减免滞纳金和罚息",
        customer={"customer_id": "CUST-TRJ-1", "name": PERSONAL[0], "phone": PERSONAL[1], "id_number": PERSONAL[2]},
    )
    trace_id = uuid.UUID(complaint_id_for(f"app:{submission['channel_complaint_id']}")).hex
    wanted = f"0x{trace_id}"
    services = tuple(CONSUMED)

    def missing_spans() -> list[str]:
        """What the span files do not show yet (empty when every service's part is there)."""
        missing = []
        for service in services:
            spans = [s for s in _spans(traces, service) if s["context"]["trace_id"] == wanted]
            names = {s["name"] for s in spans}
            missing += [f"{service} {t}" for t in CONSUMED[service] if f"{service} {t}" not in names]
            missing += [f"{service} send {t}" for t in SENT[service] if f"{service} send {t}" not in names]
        # the requests' server spans too (an API exports them in batches: a loaded machine is late)
        served = {s["name"] for service in services for s in _spans(traces, service) if s["kind"] == "SpanKind.SERVER"}
        return missing + sorted(REQUESTS - served)

    with pipeline(settings, tmp_path, PARLEY_TRACE_EXPORTER="file",
                  PARLEY_TRACE_FILE=str(traces / "{service}-{pid}.jsonl")) as base:
        async with httpx.AsyncClient(timeout=30) as http:
            closed = await drive_to_closure(http, base, submission, wait_s=300)  # a loaded machine is slow
        # the last consumers (supervision, intake, negotiation reading case.closed) catch up
        await eventually(missing_spans, until=lambda m: not m,
                         what="every service's spans of the trace", timeout=120, interval=1)

    # 1. every record of the case, on every topic, names the complaint's trace
    records: dict[str, list[Any]] = {}
    for topic, entry in CATALOGUE.items():
        if topic == "complaint.received":
            records[topic] = await read_all(settings, topic, timeout=30, until=bool)
        elif entry.payload is not None:
            records[topic] = [r for r in await read_all(settings, topic, timeout=30)
                              if r.key == closed.case_id.encode()]
    for topic, hop in records.items():
        for record in hop:
            assert traceparent_of(record)[0] == trace_id, (topic, record.headers)
    named = check_hops(records, trace_id)

    # 2. every service's span files hold the trace, hop to hop
    spans = {service: [s for s in _spans(traces, service) if s["context"]["trace_id"] == wanted]
             for service in services}
    everything = [s for service_spans in spans.values() for s in service_spans]
    assert not missing_spans()
    sends = {s["context"]["span_id"]: s for s in everything if s["kind"] == "SpanKind.PRODUCER"}
    for topic, span_ids in named.items():
        for span_id in span_ids:  # each header names a real send span of this trace and topic
            assert sends[f"0x{span_id}"]["name"].endswith(f" send {topic}"), (topic, span_id)
    for service, consumed in CONSUMED.items():
        for span in spans[service]:
            if span["kind"] == "SpanKind.CONSUMER" and span["attributes"]["messaging.destination.name"] in consumed:
                topic = span["attributes"]["messaging.destination.name"]
                assert span["parent_id"][2:] in named[topic], (service, span["name"], span["parent_id"])
                if CATALOGUE[topic].payload is not None:  # an envelope: its case is named
                    assert span["attributes"]["parley.case_id"] == closed.case_id

    # 3. what was sent without a cause hangs under the consumer span of the record it was sent
    # for (intake's complaint.registered), or, sent by a request or a timer, is a root of the
    # trace linked to that request's or timer's span (a trace of its own)
    every_span = {s["context"]["span_id"]: s for service in services for s in _spans(traces, service)}
    requests = {i: s for i, s in every_span.items() if s["kind"] == "SpanKind.SERVER"}
    assert REQUESTS <= {s["name"] for s in requests.values()}
    roots = [s for s in sends.values() if s["parent_id"] is None]
    assert {s["name"] for s in roots} >= {"intake send complaint.received", "negotiation send settlement.agreed",
                                          "followup send followup.completed"}
    assert "intake complaint.received" in {every_span[s["parent_id"]]["name"] for s in everything
                                           if s["name"] == "intake send complaint.registered" and s["parent_id"]}
    for root in roots:
        linked = [every_span.get(link["context"]["span_id"]) for link in root["links"]]
        assert any(s is not None and (s["kind"] == "SpanKind.SERVER" or " timer " in s["name"]) for s in linked), root

    # 4. no personal data in any span of any service
    for f in traces.glob("*.jsonl"):
        text = f.read_text(encoding="utf-8")
        for value in PERSONAL:
            assert value not in text, f"{f.name} holds personal data"
