"""Dead letters too large for their topic (issue 10): the size decision, the store, the
reference on the topic, and a batch that is never acknowledged while a record is nowhere."""

from __future__ import annotations

import asyncio
import base64
import random
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, RecordListTooLargeError
from pymongo.errors import DuplicateKeyError

from shared.errors import InvalidMessage
from shared.kafka.consume import Incoming, consume_batch, settle, withhold_acks
from shared.kafka.dlq import (
    HEADROOM_BYTES,
    KAFKA_MESSAGE_MAX_BYTES,
    STORE_CHUNK_BYTES,
    DeadLetter,
    DeadLetterFailed,
    MongoDeadLetterStore,
    compressed_bytes,
    dlq_limit,
    dlq_would_fit,
    read_headers,
    read_stored_body,
    record_bytes,
    stored_id,
)
from shared.settings import KafkaSettings

LIMIT = dlq_limit()
HEADERS = [("dlq.reason", b"text: too long"), ("dlq.consumer", b"intake")]


def _noise(n: int, seed: int = 7) -> bytes:
    """``n`` bytes of printable text that gzip cannot shrink below about three quarters."""
    return base64.b64encode(random.Random(seed).randbytes(n))[:n]


def _compressible(n: int) -> bytes:
    return ("投诉" * (n // 6 + 1)).encode()[:n]


async def _no_sleep(_: float) -> None:
    return None


# ------------------------------------------------------------------ the decision


def test_the_default_limit_is_kafkas_message_max_bytes_less_headroom() -> None:
    assert KafkaSettings().message_max_bytes == KAFKA_MESSAGE_MAX_BYTES == 1_048_588
    assert LIMIT == KAFKA_MESSAGE_MAX_BYTES - HEADROOM_BYTES
    assert dlq_limit(10_000) == 10_000 - 10_000 // 8  # small limits keep most of themselves


def test_a_small_record_fits_without_compressing_anything() -> None:
    assert dlq_would_fit(b"k", b"v" * 1000, HEADERS, limit=LIMIT, compressed=False)
    assert dlq_would_fit(b"k", None, HEADERS, limit=LIMIT, compressed=False)


def test_headers_and_key_count_towards_the_size() -> None:
    value = b"x" * (LIMIT - 200)
    assert record_bytes(None, value, []) <= LIMIT
    assert not dlq_would_fit(b"k" * 300, value, HEADERS, limit=LIMIT, compressed=False)


def test_a_large_compressible_record_fits_only_when_the_sender_compresses() -> None:
    value = _compressible(5 * 1024 * 1024)
    assert not dlq_would_fit(b"C1", value, HEADERS, limit=LIMIT, compressed=False)
    assert dlq_would_fit(b"C1", value, HEADERS, limit=LIMIT, compressed=True)
    assert compressed_bytes(b"C1", value, HEADERS) < 100_000


def test_a_large_record_that_does_not_compress_does_not_fit() -> None:
    value = _noise(2 * 1024 * 1024)
    assert compressed_bytes(None, value, HEADERS) > LIMIT
    assert not dlq_would_fit(None, value, HEADERS, limit=LIMIT, compressed=True)


def test_the_compressed_estimate_is_not_below_what_gzip_at_level_9_makes() -> None:
    import gzip

    value = _noise(300_000) + _compressible(300_000)
    assert compressed_bytes(b"k", value, []) >= len(gzip.compress(b"k" + value, 9))


# ------------------------------------------------------------------ the sender


class Sent:
    def __init__(self, refuse_over: int | None = None, error: type[Exception] = MessageSizeTooLargeError) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, dict[str, str]]] = []
        self.refuse_over = refuse_over
        self.error = error

    async def __call__(self, topic: str, key: bytes | None, value: bytes | None,
                       headers: list[tuple[str, bytes]]) -> None:
        if self.refuse_over is not None and len(value or b"") > self.refuse_over:
            raise self.error("too large")
        self.records.append((topic, key, value, read_headers(headers)))


class Store:
    def __init__(self, fail: Exception | None = None) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.fail = fail

    async def put(self, doc_id: str, document: dict[str, Any]) -> str:
        if self.fail is not None:
            raise self.fail
        self.docs.setdefault(doc_id, document)
        return "t_intake/dead_letter_bodies"


def _dlq(send: Sent, store: Store | None, *, compressed: bool = True) -> DeadLetter:
    return DeadLetter(send=send, consumer="intake", topic_prefix="t1.", store=store,
                      compressed=compressed, sleep=_no_sleep)


async def _letter(dlq: DeadLetter, value: bytes, key: bytes = b"C0000001") -> None:
    await dlq(topic="complaint.received", key=key, value=value, partition=2, offset=41,
              reason="text: at most 20000 characters", source_headers=[("trace", b"abc")])


async def test_a_compressible_record_goes_to_the_topic_whole() -> None:
    sent, store = Sent(), Store()
    value = _compressible(5 * 1024 * 1024)
    await _letter(_dlq(sent, store), value)
    [(topic, key, got, headers)] = sent.records
    assert (topic, key, got) == ("t1.complaint.received.dlq", b"C0000001", value)
    assert "dlq.stored_id" not in headers and store.docs == {}


async def test_a_record_that_cannot_fit_is_stored_and_referenced_on_the_topic() -> None:
    sent, store = Sent(), Store()
    value = _noise(2 * 1024 * 1024)
    await _letter(_dlq(sent, store), value)
    [(topic, key, got, headers)] = sent.records
    assert topic == "t1.complaint.received.dlq" and key == b"C0000001" and got == b""
    assert headers["dlq.stored_in"] == "t_intake/dead_letter_bodies"
    assert headers["dlq.stored_id"] == stored_id("complaint.received", 2, 41) == "complaint.received:2:41"
    assert headers["dlq.reason"] == "text: at most 20000 characters"
    assert headers["dlq.original_bytes"] == str(len(value))
    assert "do not fit" in headers["dlq.stored_reason"]
    doc = store.docs["complaint.received:2:41"]
    assert (doc["key"], doc["value"], doc["headers"]) == (b"C0000001", value, [{"name": "trace", "value": b"abc"}])


async def test_without_compression_a_large_compressible_record_is_stored() -> None:
    sent, store = Sent(), Store()
    await _letter(_dlq(sent, store, compressed=False), _compressible(2 * 1024 * 1024))
    [(_, _, got, headers)] = sent.records
    assert got == b"" and "dlq.stored_id" in headers


@pytest.mark.parametrize("error", [MessageSizeTooLargeError, RecordListTooLargeError])
async def test_a_size_refusal_from_the_producer_or_broker_falls_back_to_the_store(
    error: type[Exception],
) -> None:
    sent, store = Sent(refuse_over=100_000, error=error), Store()
    value = _noise(300_000)  # the estimate says it fits; the broker says no
    await _letter(_dlq(sent, store), value)
    [(_, _, got, headers)] = sent.records
    assert got == b"" and headers["dlq.stored_id"] == "complaint.received:2:41"
    assert error.__name__ in headers["dlq.stored_reason"]
    assert store.docs["complaint.received:2:41"]["value"] == value


async def test_a_long_key_stays_in_the_store_only() -> None:
    sent, store = Sent(), Store()
    await _letter(_dlq(sent, store), _noise(2 * 1024 * 1024), key=b"K" * 5000)
    [(_, key, _, _)] = sent.records
    assert key is None and store.docs["complaint.received:2:41"]["key"] == b"K" * 5000


async def test_too_large_without_a_store_raises() -> None:
    sent = Sent()
    with pytest.raises(DeadLetterFailed):
        await _letter(_dlq(sent, None), _noise(2 * 1024 * 1024))
    assert sent.records == []


async def test_a_store_that_fails_raises_and_sends_no_reference() -> None:
    sent, store = Sent(), Store(fail=ConnectionError("database down"))
    with pytest.raises(ConnectionError):
        await _letter(_dlq(sent, store), _noise(2 * 1024 * 1024))
    assert sent.records == []


async def test_a_reference_that_cannot_be_sent_raises() -> None:
    class Down(Sent):
        async def __call__(self, *args: Any) -> None:
            raise KafkaConnectionError("broker gone")

    store = Store()
    with pytest.raises(KafkaConnectionError):
        await _letter(_dlq(Down(), store), _noise(2 * 1024 * 1024))
    assert "complaint.received:2:41" in store.docs  # kept; the batch is retried and re-inserts idempotently


# ------------------------------------------------------------------ the Mongo store


class FakeDatabase(dict[str, Any]):
    name = "t_intake"

    def __missing__(self, name: str) -> Any:
        self[name] = FakeCollection(name, self)
        return self[name]


class FakeCollection:
    def __init__(self, name: str = "dead_letter_bodies", database: FakeDatabase | None = None) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.name = name
        self.database = database if database is not None else FakeDatabase({name: self})

    async def insert_one(self, doc: dict[str, Any]) -> None:
        if doc["_id"] in self.docs:
            raise DuplicateKeyError("duplicate")
        self.docs[doc["_id"]] = dict(doc)

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        found = self.docs.get(query["_id"])
        return dict(found) if found else None


async def test_the_mongo_store_splits_a_large_body_and_reads_it_back_whole() -> None:
    coll = FakeCollection()
    store = MongoDeadLetterStore(lambda: coll)
    value = _noise(STORE_CHUNK_BYTES * 2 + 10)
    assert await store.put("t:0:1", {"key": b"k", "value": value}) == "t_intake/dead_letter_bodies"
    assert await store.put("t:0:1", {"key": b"k", "value": value}) == "t_intake/dead_letter_bodies"
    assert sorted(coll.docs) == ["t:0:1", "t:0:1#0", "t:0:1#1", "t:0:1#2"]
    assert coll.docs["t:0:1"]["value"] is None
    doc = await read_stored_body(coll, "t:0:1", reader="ops-1", purpose="replay")
    assert doc is not None and doc["value"] == value and doc["key"] == b"k"
    small = {"key": None, "value": b"abc"}
    await store.put("t:0:2", small)
    got = await read_stored_body(coll, "t:0:2", reader="ops-1", purpose="replay")
    assert got is not None and got["value"] == b"abc"
    assert await read_stored_body(coll, "t:0:3", reader="ops-1", purpose="replay") is None


async def test_the_mongo_store_seals_bodies_and_records_who_read_them() -> None:
    from shared.crypto import is_sealed
    from shared.originals import ORIGINAL_READS

    coll = FakeCollection()
    store = MongoDeadLetterStore(lambda: coll)
    secret = "张小明 13912345678 110101199003071234".encode()
    await store.put("t:0:7", {"key": b"k", "value": secret})
    large = _noise(STORE_CHUNK_BYTES + 10) + secret
    await store.put("t:0:8", {"key": b"k", "value": large})
    for doc in coll.docs.values():  # nothing of the body in clear, in any document
        assert "13912345678" not in repr(doc) and secret not in repr(doc).encode()
        assert doc["kid"] == "dev"
    assert is_sealed(coll.docs["t:0:7"]["value"]) and is_sealed(coll.docs["t:0:8#1"]["data"])
    # a sealed part moved to another record does not open
    coll.docs["t:0:8#0"]["data"], coll.docs["t:0:8#1"]["data"] = (coll.docs["t:0:8#1"]["data"],
                                                                  coll.docs["t:0:8#0"]["data"])
    with pytest.raises(Exception, match="another field or record"):
        await read_stored_body(coll, "t:0:8", reader="ops-1", purpose="replay")
    got = await read_stored_body(coll, "t:0:7", reader="ops-2", purpose="看是哪条投诉")
    assert got is not None and got["value"] == secret
    reads = list(coll.database[ORIGINAL_READS].docs.values())
    assert [(r["reader"], r["record_id"], r["found"]) for r in reads] == [
        ("ops-1", "t:0:8", True), ("ops-2", "t:0:7", True)]
    assert reads[1]["purpose"] == "看是哪条投诉" and reads[1]["collection"] == "dead_letter_bodies"
    with pytest.raises(ValueError, match="purpose"):
        await read_stored_body(coll, "t:0:7", reader="ops-2", purpose=" ")


# ------------------------------------------------------------------ never acknowledged while nowhere


class FakeMessage:
    def __init__(self) -> None:
        self.acked = False


def _events(n: int) -> list[Any]:
    return [SimpleNamespace(message=FakeMessage()) for _ in range(n)]


async def test_settle_retries_a_batch_until_its_dead_letters_are_somewhere() -> None:
    calls = 0
    delays: list[float] = []

    async def run() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise DeadLetterFailed("nowhere yet")
        return "done"

    async def sleep(d: float) -> None:
        delays.append(d)

    events = _events(3)
    assert await settle(events, run, backoff_s=1, max_backoff_s=3, sleep=sleep) == "done"
    assert calls == 4 and delays == [1, 2, 3]
    assert not any(e.message.acked for e in events)  # left for faust to acknowledge normally


async def test_a_batch_stopped_while_unsettled_is_never_acknowledged() -> None:
    async def run() -> None:
        raise DeadLetterFailed("nowhere")

    events = _events(2)
    task = asyncio.create_task(settle(events, run, backoff_s=0.01, max_backoff_s=0.01))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # marked acked without telling the consumer: faust skips them, their offsets stay uncommitted
    assert all(e.message.acked for e in events)


def test_withhold_acks_ignores_what_is_not_an_event() -> None:
    withhold_acks([object()])


async def test_consume_batch_lets_a_record_that_is_nowhere_out_after_the_rest() -> None:
    sent = Sent()
    store = Store(fail=ConnectionError("database down"))
    dlq = DeadLetter(send=sent, consumer="intake", store=store, sleep=_no_sleep)
    big = Incoming("complaint.received", b"a", _noise(2 * 1024 * 1024), 0, 1)
    small_bad = Incoming("complaint.received", b"b", b"bad", 0, 2)
    good = Incoming("complaint.received", b"c", b"good", 0, 3)
    handled: list[Any] = []

    def decode(m: Incoming) -> bytes:
        if m.value != b"good":
            raise InvalidMessage("bad input")
        return m.value

    async def handle(items: list[Any]) -> None:
        handled.extend(items)

    with pytest.raises(ConnectionError):
        await consume_batch([small_bad, good, big], decode, handle, dead_letter=dlq)
    assert [r[1] for r in sent.records] == [b"b"]  # the record before it was dead-lettered


async def test_a_decoder_bug_dead_letters_the_record_instead_of_escaping() -> None:
    sent = Sent()
    dlq = DeadLetter(send=sent, consumer="intake", sleep=_no_sleep)

    def decode(m: Incoming) -> bytes:
        raise KeyError("payload")

    async def handle(items: list[Any]) -> None:
        raise AssertionError("nothing decoded")

    counts = await consume_batch([Incoming("t", b"k", b"v", 0, 1)], decode, handle, dead_letter=dlq)
    assert counts == {"handled": 0, "dead_lettered": 1}
    [(_, _, value, headers)] = sent.records
    assert value == b"v" and headers["dlq.error_type"] == "KeyError"
