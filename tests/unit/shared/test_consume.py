"""The consume step's routing rules: handled, retried with a bound, or dead-lettered.

The dead-letter sender here is an in-memory fake: this tests the routing rule only; the
real round trip through Kafka is in tests/integration/shared/test_plumbing.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from shared.errors import InvalidMessage, TransientError
from shared.kafka.consume import Incoming, consume_one
from shared.kafka.dlq import DeadLetter, read_headers


class Sent:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, dict[str, str]]] = []

    async def __call__(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        self.records.append((topic, key, value, read_headers(headers)))


def _msg() -> Incoming:
    return Incoming("complaint.registered", b"case-1", b"\x00raw bytes\xff", 2, 41)


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def dlq(sent: Sent) -> DeadLetter:
    return DeadLetter(send=sent, consumer="investigation", topic_prefix="t1.")


async def test_handled_message_sends_nothing(dlq: DeadLetter, sent: Sent) -> None:
    seen: list[Incoming] = []

    async def handle(m: Incoming) -> None:
        seen.append(m)

    assert await consume_one(_msg(), handle, dead_letter=dlq) == "handled"
    assert seen == [_msg()] and sent.records == []


async def test_invalid_message_goes_to_its_dead_letter_topic_with_original_bytes(dlq: DeadLetter, sent: Sent) -> None:
    async def handle(m: Incoming) -> None:
        raise InvalidMessage("payload.case_number: Field required", errors=[{"field": "payload.case_number", "problem": "Field required"}])

    assert await consume_one(_msg(), handle, dead_letter=dlq) == "dead_lettered"
    [(topic, key, value, headers)] = sent.records
    assert topic == "t1.complaint.registered.dlq"
    assert (key, value) == (b"case-1", b"\x00raw bytes\xff")
    assert headers["dlq.reason"] == "payload.case_number: Field required"
    assert headers["dlq.source_topic"] == "complaint.registered"
    assert (headers["dlq.source_partition"], headers["dlq.source_offset"]) == ("2", "41")
    assert headers["dlq.consumer"] == "investigation"
    assert "Field required" in headers["dlq.errors"]


async def test_transient_failure_is_retried_then_handled(dlq: DeadLetter, sent: Sent) -> None:
    calls = 0

    async def handle(m: Incoming) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise AutoReconnect("primary stepped down")

    assert await consume_one(_msg(), handle, dead_letter=dlq, sleep=_no_sleep) == "handled"
    assert calls == 3 and sent.records == []


async def test_transient_failure_gives_up_after_the_bound_and_keeps_the_message(dlq: DeadLetter, sent: Sent) -> None:
    calls = 0
    delays: list[float] = []

    async def handle(m: Incoming) -> None:
        nonlocal calls
        calls += 1
        raise TransientError("records system unavailable")

    async def sleep(d: float) -> None:
        delays.append(d)

    assert await consume_one(_msg(), handle, dead_letter=dlq, max_attempts=4, backoff_s=0.1, sleep=sleep) == "dead_lettered"
    assert calls == 4
    assert delays == [0.1, 0.2, 0.4]
    assert sent.records[0][3]["dlq.reason"] == "gave up after 4 attempts: TransientError"
    assert sent.records[0][3]["dlq.attempts"] == "4"


async def test_a_bug_is_not_retried_but_dead_lettered_with_its_type(dlq: DeadLetter, sent: Sent) -> None:
    calls = 0

    async def handle(m: Incoming) -> Any:
        nonlocal calls
        calls += 1
        return {}["missing"]

    assert await consume_one(_msg(), handle, dead_letter=dlq, sleep=_no_sleep) == "dead_lettered"
    assert calls == 1
    assert sent.records[0][3]["dlq.error_type"] == "KeyError"


async def test_failure_to_dead_letter_is_not_swallowed(sent: Sent) -> None:
    async def broken_send(*args: Any) -> None:
        raise ConnectionError("broker gone")

    async def handle(m: Incoming) -> None:
        raise InvalidMessage("bad")

    with pytest.raises(ConnectionError):
        await consume_one(_msg(), handle, dead_letter=DeadLetter(send=broken_send, consumer="x"))
