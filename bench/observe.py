"""What the benchmark sees of the pipeline: its output topics, read like any other consumer.

One consumer without a group reads every partition of ``complaint.registered``,
``investigation.completed`` and ``investigation.paused`` from the beginning and notes when
each event arrived (the harness's own monotonic clock, the same one that timed the publish).
Nothing here reads a service's database or imports a service's code.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import math
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

REGISTERED = "complaint.registered"
COMPLETED = "investigation.completed"
PAUSED = "investigation.paused"


def now() -> float:
    """The harness's clock for every time it takes (seconds, monotonic)."""
    return time.perf_counter()


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank); ``inf`` entries stand for never-arrived."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


async def assignable(bootstrap: str, topics: list[str], wait_s: float = 30) -> list[TopicPartition]:
    """Every partition of ``topics`` (asked through a producer, whose ``partitions_for`` fetches metadata)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        parts = []
        for topic in topics:
            found = await asyncio.wait_for(producer.partitions_for(topic), wait_s)
            parts += [TopicPartition(topic, p) for p in sorted(found)]
        return parts
    finally:
        await producer.stop()


@dataclass
class Observer:
    """Arrival times of the pipeline's events, by channel complaint id and by case."""

    bootstrap: str
    prefix: str
    published: dict[str, float] = field(default_factory=dict)  # ccid -> publish time
    registered: dict[str, float] = field(default_factory=dict)  # ccid -> arrival
    case_of: dict[str, str] = field(default_factory=dict)  # ccid -> case_id
    new_cases: set[str] = field(default_factory=set)
    completed: dict[str, float] = field(default_factory=dict)  # case_id -> arrival
    paused: dict[str, float] = field(default_factory=dict)  # case_id -> arrival
    registered_times: list[float] = field(default_factory=list)  # every arrival, in order
    handled_times: list[float] = field(default_factory=list)  # first completed/paused per case
    duplicates: int = 0
    undecodable: int = 0
    _published_registered: int = 0  # published complaints registered so far (kept, not counted)
    _new_handled: int = 0  # new cases investigation completed or paused so far
    _task: asyncio.Task[None] | None = None
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            # the broker answers a fetch as soon as a record is there (fetch_min_bytes 1), so a long
            # wait delays no arrival; 20 ms made the harness fetch 50 times a second all run long
            auto_offset_reset="earliest", fetch_max_wait_ms=500, max_partition_fetch_bytes=4 << 20,
        )
        await consumer.start()
        topics = [self.prefix + t for t in (REGISTERED, COMPLETED, PAUSED)]
        parts = await assignable(self.bootstrap, topics)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        reg_topic, done_topic = self.prefix + REGISTERED, self.prefix + COMPLETED
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            t = now()
            for tp, records in batches.items():
                for rec in records:
                    try:
                        event = json.loads(rec.value)
                        case_id = event["case_id"]
                    except (ValueError, TypeError, KeyError):
                        self.undecodable += 1
                        continue
                    if tp.topic == reg_topic:
                        payload = event.get("payload") or {}
                        ccid = payload.get("channel_complaint_id", "")
                        if ccid in self.registered:
                            self.duplicates += 1
                            continue
                        self.registered[ccid] = t
                        self.case_of[ccid] = case_id
                        if ccid in self.published:
                            self._published_registered += 1
                        if payload.get("role", "new_case") == "new_case" and case_id not in self.new_cases:
                            self.new_cases.add(case_id)
                            if case_id in self.completed or case_id in self.paused:
                                self._new_handled += 1
                        self.registered_times.append(t)
                    else:
                        target = self.completed if tp.topic == done_topic else self.paused
                        if case_id in target:
                            continue
                        if case_id not in self.completed and case_id not in self.paused:
                            self.handled_times.append(t)
                            if case_id in self.new_cases:
                                self._new_handled += 1
                        target[case_id] = t

    # ------------------------------------------------------------------ questions

    def registered_of(self, ccids: list[str]) -> int:
        return sum(1 for c in ccids if c in self.registered)

    def handled_of(self, ccids: list[str]) -> int:
        cases = [self.case_of.get(c) for c in ccids]
        return sum(1 for c in cases if c and (c in self.completed or c in self.paused))

    def mark_published(self, ccid: str) -> None:
        """Note that a complaint was just published (call right before sending it)."""
        self.published[ccid] = now()
        if ccid in self.registered:  # never in practice: registration follows publication
            self._published_registered += 1

    def backlog(self) -> int:
        """Published but not yet registered (intake's backlog as the channels see it)."""
        return len(self.published) - self._published_registered

    def investigation_backlog(self) -> int:
        """New cases registered but neither completed nor paused by investigation yet."""
        return len(self.new_cases) - self._new_handled

    def register_latencies(self, ccids: list[str]) -> list[float]:
        """Publish→registered seconds per complaint; ``inf`` for those not registered."""
        return [self.registered[c] - self.published[c] if c in self.registered else math.inf for c in ccids]

    def completion_latencies(self, ccids: list[str]) -> list[float]:
        """Publish→investigation.completed seconds; paused cases left out, ``inf`` if not yet."""
        out = []
        for c in ccids:
            case = self.case_of.get(c)
            if case in self.paused and case not in self.completed:
                continue
            out.append(self.completed[case] - self.published[c] if case in self.completed else math.inf)
        return out

    @staticmethod
    def count_between(times: list[float], t0: float, t1: float) -> int:
        return bisect.bisect_right(times, t1) - bisect.bisect_left(times, t0)

    @staticmethod
    def peak_rate(times: list[float], t0: float, t1: float, window: float = 5.0) -> float:
        """The highest rate over any ``window`` seconds between ``t0`` and ``t1`` (per second)."""
        lo = bisect.bisect_left(times, t0)
        hi = bisect.bisect_right(times, t1)
        sel = times[lo:hi]
        if not sel:
            return 0.0
        if t1 - t0 <= window:
            return len(sel) / max(t1 - t0, 1e-9)
        best, j = 0, 0
        for i, t in enumerate(sel):
            while sel[j] < t - window:
                j += 1
            best = max(best, i - j + 1)
        return best / window
