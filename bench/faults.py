"""``make faults``: real complaints through intake and investigation while everything breaks.

    python -m bench.faults [--complaints 10000] [--hostile 1000] [--workers 2] [--kills 3]
                           [--cap-minutes 18] [--port-base 18000]

On servers of its own (``deploy/local/stack.py`` on its own ports and a fresh stack
directory, like ``make bench``), with ``--workers`` worker processes per service in one
consumer group, it publishes ``--complaints`` real complaints (Chinese and English, from
``../shared/data``) to ``complaint.received`` — **every one twice** — mixed with
``--hostile`` hostile messages, and while they flow it:

- SIGKILLs every worker ``--kills`` times (each comes back two seconds later, as a process
  supervisor would bring it back);
- kills the Kafka broker with SIGKILL and starts it again;
- kills the database server (FerretDB) with SIGKILL and starts it again.

Then it audits, from the topics and the databases: every complaint registered in exactly
one case, no complaint registered under two event ids, exactly one finding per case, the
stores' counts equal to the complaints, every hostile message on a dead-letter topic with
a reason, every worker alive. It prints the figures and exits non-zero on any loss,
duplicate, hostile message let through, or dead worker. Progress every five seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from pymongo import AsyncMongoClient

from bench.data import Complaints
from bench.observe import assignable
from bench.stack import REPO, Ports, Stack, stop_leftover_services

RESULTS = Path(__file__).resolve().parent / "results"
SERVICES = ("intake", "investigation")
RECEIVED, REGISTERED = "complaint.received", "complaint.registered"
COMPLETED, PAUSED = "investigation.completed", "investigation.paused"
WORKER_READY = "Worker]: Ready"

T0 = time.monotonic()


def say(msg: str) -> None:
    elapsed = time.monotonic() - T0
    print(f"[faults {int(elapsed // 60):02d}:{int(elapsed % 60):02d}] {msg}", flush=True)


# ------------------------------------------------------------------ processes


@dataclass
class Worker:
    """One worker process of one service; killed and brought back by the suite."""

    service: str
    index: int
    env: dict[str, str]
    logs: Path
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0

    @property
    def name(self) -> str:
        return f"{self.service}-worker-{self.index}"

    def start(self) -> None:
        log = self.logs / f"{self.name}.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.service}", "worker"],
                cwd=REPO, env={**self.env, "PARLEY_WORKER_INDEX": str(self.index)},
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        (self.logs / f"{self.name}.pid").write_text(f"{self.proc.pid}\n")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (no shutdown, no commit)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


# ------------------------------------------------------------------ hostile messages

#: Hostile kinds on ``complaint.received`` (intake must dead-letter each with a reason).
RECEIVED_KINDS = ("nul_in_name", "integer_received_at", "yes_for_boolean", "missing_text", "not_json",
                  "not_utf8", "unknown_field", "operator_in_id", "received_in_future", "bell_in_demand",
                  "number_for_text", "empty_object")
#: Hostile kinds on ``complaint.registered`` (investigation must dead-letter each).
REGISTERED_KINDS = ("schema_version_99", "garbage_bytes", "foreign_event_type")


def hostile_received(kind: str, base: dict[str, Any]) -> bytes:
    doc = json.loads(json.dumps(base))
    match kind:
        case "nul_in_name":
            doc["customer"]["name"] = "张\x00三"
        case "integer_received_at":
            doc["received_at"] = 1_700_000_000
        case "yes_for_boolean":
            doc["customer"]["vulnerable"] = "yes"
        case "missing_text":
            del doc["text"]
        case "not_json":
            return b'{"channel_complaint_id": "x", "text": '
        case "not_utf8":
            return b"\xff\xfe\xfd not utf-8 \x80"
        case "unknown_field":
            doc["is_admin"] = True
        case "operator_in_id":
            doc["channel_complaint_id"] = "$where"
        case "received_in_future":
            doc["received_at"] = (datetime.now(UTC) + timedelta(days=3)).isoformat()
        case "bell_in_demand":
            doc["demand"] = "退款\x07"
        case "number_for_text":
            doc["text"] = 12345
        case "empty_object":
            return b"{}"
    return json.dumps(doc, ensure_ascii=False).encode()


def hostile_registered(kind: str, i: int) -> bytes:
    envelope = {
        "event_id": str(uuid.uuid4()), "event_type": REGISTERED, "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "case_id": f"HC-{i}", "correlation_id": f"h-{i}",
        "producer": "faults", "payload": {"case_number": f"H-{i}"},
    }
    match kind:
        case "schema_version_99":
            envelope["schema_version"] = 99
        case "garbage_bytes":
            return b"\x00\x01garbage"
        case "foreign_event_type":
            envelope["event_type"] = "case.closed"
    return json.dumps(envelope).encode()


# ------------------------------------------------------------------ the run


@dataclass
class Chaos:
    """What has been broken so far."""

    done: list[str] = field(default_factory=list)
    broker_kills: int = 0
    db_kills: int = 0


class FaultSuite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id = uuid.uuid4().hex[:6]
        self.prefix = f"faults{self.run_id}."
        self.db_prefix = f"faults{self.run_id}_"
        self.stack = Stack(Path(args.stack_dir).resolve(), Ports(args.port_base), say=say)
        self.workers: list[Worker] = []
        self.chaos = Chaos()
        self.complaints = Complaints(self.run_id)
        self.good: dict[str, bytes] = {}  # channel complaint id -> original bytes
        self.hostile: dict[str, str] = {}  # key -> kind
        self.conflicts: dict[str, str] = {}  # key (an already registered complaint) -> kind
        self.registered: dict[str, set[str]] = defaultdict(set)  # ccid -> case ids
        self.registered_ids: dict[str, set[str]] = defaultdict(set)  # ccid -> event ids
        self.registered_copies = 0
        self.findings: dict[str, set[str]] = defaultdict(set)  # case id -> completed event ids (revision 1)
        self.paused: set[str] = set()
        self.new_cases: set[str] = set()
        self.dead_letters: dict[str, list[tuple[str, str]]] = defaultdict(list)  # key -> [(topic, reason)]
        self._positions: dict[TopicPartition, int] = {}

    # -- set-up

    def service_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_") or k == "PARLEY_SHARED_DATA"}
        env.update(
            PARLEY_ENVIRONMENT="development",
            PARLEY_KAFKA_BOOTSTRAP=self.stack.kafka_bootstrap,
            PARLEY_KAFKA_TOPIC_PREFIX=self.prefix,
            PARLEY_KAFKA_PARTITIONS=str(max(2, self.args.workers * 2)),
            PARLEY_MONGO_URL=self.stack.mongo_url,
            PARLEY_MONGO_DB_PREFIX=self.db_prefix,
            PARLEY_LOG_JSON="false",
        )
        return env

    async def setup(self) -> None:
        say(f"step 1: servers on ports {self.args.port_base}+ (stack dir {self.stack.dir})")
        await asyncio.to_thread(self.stack.start)
        from shared.kafka import ensure_topics
        from shared.settings import KafkaSettings

        await ensure_topics(KafkaSettings(bootstrap=self.stack.kafka_bootstrap, topic_prefix=self.prefix,
                                          partitions=max(2, self.args.workers * 2)))
        logs = self.stack.dir / "services"
        logs.mkdir(parents=True, exist_ok=True)
        say(f"step 2: {self.args.workers} worker(s) each of {', '.join(SERVICES)} in one consumer group per service")
        env = self.service_env()
        for service in SERVICES:
            for index in range(1, self.args.workers + 1):
                worker = Worker(service, index, env, logs)
                worker.start()
                self.workers.append(worker)
        deadline = time.monotonic() + 180
        while not all(WORKER_READY in (w.logs / f"{w.name}.log").read_text(errors="replace") for w in self.workers):
            dead = [w.name for w in self.workers if not w.alive()]
            if dead:
                raise RuntimeError(f"worker(s) exited at start: {dead}; see {logs}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready after 180 s; see {logs}")
            await asyncio.sleep(0.5)
        say(f"  {len(self.workers)} workers ready")

    # -- publishing

    async def producer(self, **extra: Any) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.kafka_bootstrap, acks="all",
                                    enable_idempotence=True, linger_ms=20, request_timeout_ms=60_000, **extra)
        await producer.start()
        return producer

    async def publish(self) -> None:
        n, h = self.args.complaints, self.args.hostile
        say(f"step 3: publishing {n:,} real complaints twice each and {h:,} hostile messages")
        batch = self.complaints.take(n)
        for key, value in batch:
            self.good[key] = value
        base = json.loads(batch[0][1])
        messages: list[tuple[str, str, bytes]] = [(RECEIVED, k, v) for k, v in batch]
        oversized = min(self.args.oversized, h)
        for i in range(h - oversized):
            if i % 5 == 4:
                kind = REGISTERED_KINDS[(i // 5) % len(REGISTERED_KINDS)]
                key = f"H{self.run_id}-{i:05d}"
                messages.append((REGISTERED, key, hostile_registered(kind, i)))
            else:
                kind = RECEIVED_KINDS[i % len(RECEIVED_KINDS)]
                key = f"H{self.run_id}-{i:05d}"
                doc = dict(base, channel_complaint_id=key)
                messages.append((RECEIVED, key, hostile_received(kind, doc)))
            self.hostile[key] = kind
        rng = random.Random(self.run_id)
        rng.shuffle(messages)
        again = [(t, k, v) for t, k, v in messages if k in self.good]
        rng.shuffle(again)  # the second delivery of every complaint, in another order
        producer = await self.producer(compression_type="gzip")
        try:
            sent = 0
            for topic, key, value in messages + again:
                await producer.send(self.prefix + topic, value, key=key.encode())
                sent += 1
                if sent % 5_000 == 0:
                    say(f"  published {sent:,}/{len(messages) + len(again):,}")
            for i in range(oversized):  # ~5 MB each, a few hundred KB gzip-compressed
                key = f"H{self.run_id}-big{i}"
                doc = dict(base, channel_complaint_id=key, text="投诉内容过长。" * 250_000)
                value = json.dumps(doc, ensure_ascii=False).encode()
                big = await self.producer(compression_type="gzip", max_request_size=16 << 20)
                try:
                    await big.send_and_wait(self.prefix + RECEIVED, value, key=key.encode())
                finally:
                    await big.stop()
                self.hostile[key] = "oversized_gzip"
            await producer.flush()
        finally:
            await producer.stop()
        say(f"  published {len(messages) + len(again) + oversized:,} messages")

    async def publish_conflicts(self, n: int) -> None:
        """Re-send ``n`` already registered complaints with different content."""
        keys = [k for k in self.good if k in self.registered][:n]
        producer = await self.producer()
        try:
            for key in keys:
                doc = json.loads(self.good[key])
                doc["text"] = doc["text"] + "（补充：内容已修改 / content changed）"
                await producer.send(self.prefix + RECEIVED, json.dumps(doc, ensure_ascii=False).encode(),
                                    key=key.encode())
                self.conflicts[key] = "conflicting_duplicate"
            await producer.flush()
        finally:
            await producer.stop()

    # -- watching

    async def watch(self, stop: asyncio.Event) -> None:
        """Read every output and dead-letter topic from the start until ``stop``."""
        topics = [self.prefix + t for t in (REGISTERED, COMPLETED, PAUSED, RECEIVED + ".dlq", REGISTERED + ".dlq")]
        while not stop.is_set():
            consumer = AIOKafkaConsumer(bootstrap_servers=self.stack.kafka_bootstrap, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        max_partition_fetch_bytes=8 << 20, fetch_max_bytes=32 << 20)
            try:
                await consumer.start()
                parts = await assignable(self.stack.kafka_bootstrap, topics)
                consumer.assign(parts)
                for tp in parts:
                    consumer.seek(tp, self._positions.get(tp, 0))
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=300, max_records=5_000)
                    for tp, records in batches.items():
                        for rec in records:
                            self._take(tp.topic.removeprefix(self.prefix), rec)
                            self._positions[tp] = rec.offset + 1
            except Exception as exc:  # noqa: BLE001 - the broker is killed on purpose; read on after
                say(f"  (observer: {type(exc).__name__}; reconnecting)")
                await asyncio.sleep(2)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    def _take(self, topic: str, rec: Any) -> None:
        key = (rec.key or b"").decode("utf-8", "replace")
        if topic.endswith(".dlq"):
            headers = {k: (v or b"").decode("utf-8", "replace") for k, v in rec.headers or []}
            self.dead_letters[key].append((topic, headers.get("dlq.reason", "")))
            return
        try:
            event = json.loads(rec.value)
        except (TypeError, ValueError):
            return
        payload = event.get("payload") or {}
        if topic == REGISTERED:
            if event.get("producer") != "intake":
                return  # a hostile message of ours on the same topic
            ccid = payload.get("channel_complaint_id", "")
            self.registered[ccid].add(event["case_id"])
            self.registered_ids[ccid].add(event["event_id"])
            self.registered_copies += 1
            if payload.get("role", "new_case") == "new_case":
                self.new_cases.add(event["case_id"])
        elif topic == COMPLETED:
            if int(payload.get("revision", 1)) == 1:
                self.findings[event["case_id"]].add(event["event_id"])
        elif topic == PAUSED:
            self.paused.add(event["case_id"])

    def progress(self) -> tuple[int, int]:
        registered = sum(1 for k in self.good if k in self.registered)
        handled = sum(1 for c in self.new_cases if c in self.findings or c in self.paused)
        return registered, handled

    def hostile_seen(self) -> int:
        return sum(1 for k in self.hostile if self.dead_letters.get(k))

    # -- chaos

    def schedule(self) -> list[tuple[float, str, Any]]:
        """(progress threshold, label, action) for every fault, spread over the run."""
        plan: list[tuple[float, str, Any]] = []
        kills = [(w, k) for k in range(self.args.kills) for w in self.workers]
        for i, (worker, k) in enumerate(kills):
            plan.append((0.04 + 0.8 * i / max(1, len(kills)), f"SIGKILL {worker.name} ({k + 1}/{self.args.kills})",
                         ("worker", worker)))
        plan.append((0.35, "SIGKILL the Kafka broker", ("server", "kafka")))
        plan.append((0.62, "SIGKILL the database server (FerretDB)", ("server", "ferretdb")))
        return sorted(plan, key=lambda p: p[0])

    async def break_worker(self, worker: Worker) -> None:
        await asyncio.to_thread(worker.kill)
        await asyncio.sleep(2)
        worker.start()

    async def break_server(self, name: str) -> None:
        pid = self.stack.server_pids().get(name)
        if pid is None:
            say(f"  no pid for {name}; not killed")
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(3)
        await asyncio.to_thread(self.stack._script, "start", name)  # noqa: SLF001 - the stack script is ours
        if name == "kafka":
            self.chaos.broker_kills += 1
        else:
            self.chaos.db_kills += 1

    # -- the whole run

    async def run(self) -> int:
        await self.setup()
        stop = asyncio.Event()
        watcher = asyncio.create_task(self.watch(stop))
        try:
            await self.publish()
            plan = self.schedule()
            n = len(self.good)
            cap = time.monotonic() + self.args.cap_minutes * 60 - (time.monotonic() - T0)
            say(f"step 4: flowing, with {len(plan)} faults on the way (cap {self.args.cap_minutes:.0f} min in all)")
            pending: set[asyncio.Task[None]] = set()
            last = 0.0
            conflicts_sent = False
            t_flow = time.monotonic()
            settled_at: float | None = None
            while True:
                registered, handled = self.progress()
                frac = registered / n if n else 1.0
                while plan and frac >= plan[0][0]:
                    _, label, (what, target) = plan.pop(0)
                    say(f"  fault: {label}")
                    self.chaos.done.append(label)
                    task = asyncio.create_task(self.break_worker(target) if what == "worker" else self.break_server(target))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    if what == "server":
                        await task  # one server fault at a time, and no worker fault during it
                if not conflicts_sent and frac >= 0.5:
                    await self.publish_conflicts(self.args.conflicts)
                    conflicts_sent = True
                if time.monotonic() - last >= 5:
                    last = time.monotonic()
                    rate = registered / max(0.1, last - t_flow)
                    eta = (n - registered) / rate if rate else float("inf")
                    say(f"  registered {registered:,}/{n:,} ({frac:.0%}), investigated {handled:,}/{len(self.new_cases):,} "
                        f"cases, dead letters for {self.hostile_seen():,}/{len(self.hostile):,} hostile, "
                        f"faults {len(self.chaos.done)}/{len(self.chaos.done) + len(plan)}, {rate:,.1f}/s, "
                        f"ETA {eta:,.0f} s")
                done = (registered == n and handled == len(self.new_cases) and not plan and not pending
                        and conflicts_sent and all(self.dead_letters.get(k) for k in self.conflicts)
                        and self.hostile_seen() == len(self.hostile))
                if done:
                    await asyncio.sleep(5)  # let late duplicates show, if there are any
                    break
                flowed = registered == n and handled == len(self.new_cases) and not plan and not pending
                settled_at = (settled_at or time.monotonic()) if flowed else None
                if settled_at is not None and time.monotonic() - settled_at > 60:
                    say("  everything flowed; some dead letters did not come within 60 s")
                    break
                if time.monotonic() > cap:
                    say("  cap reached; auditing what is there")
                    break
                await asyncio.sleep(0.5)
            for task in list(pending):
                await task
            return await self.audit(time.monotonic() - t_flow)
        finally:
            stop.set()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher

    async def audit(self, seconds: float) -> int:
        say("step 5: audit")
        n = len(self.good)
        lost = [k for k in self.good if k not in self.registered]
        two_cases = [k for k in self.good if len(self.registered.get(k, ())) > 1]
        two_ids = [k for k in self.good if len(self.registered_ids.get(k, ())) > 1]
        unfound = [c for c in self.new_cases if c not in self.findings and c not in self.paused]
        two_findings = [c for c, ids in self.findings.items() if len(ids) > 1]
        hostile_missing = [k for k in self.hostile if not self.dead_letters.get(k)]
        no_reason = [k for k in self.hostile if self.dead_letters.get(k) and not all(r for _, r in self.dead_letters[k])]
        conflicts_missing = [k for k in self.conflicts
                             if not any("conflicting_duplicate" in r for _, r in self.dead_letters.get(k, []))]
        good_dead = [k for k in self.good if k not in self.conflicts and self.dead_letters.get(k)]
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.stack.mongo_url)
        try:
            stored_complaints = await client[f"{self.db_prefix}intake"]["complaints"].count_documents({})
            stored_findings = await client[f"{self.db_prefix}investigation"]["investigations"].count_documents({})
        finally:
            await client.close()
        dead_workers = [w.name for w in self.workers if not w.alive()]
        by_kind: dict[str, int] = defaultdict(int)
        for k, kind in self.hostile.items():
            if self.dead_letters.get(k):
                by_kind[kind] += 1
        result = {
            "complaints": n, "delivered_each": 2, "workers_per_service": self.args.workers,
            "seconds": round(seconds, 1), "registrations_per_s": round(n / seconds, 1) if seconds else None,
            "lost": len(lost), "in_two_cases": len(two_cases), "registered_under_two_event_ids": len(two_ids),
            "registered_events_read": self.registered_copies,
            "republished_same_event_id": self.registered_copies - sum(len(v) for v in self.registered_ids.values()),
            "cases": len(self.new_cases), "cases_without_finding": len(unfound), "cases_with_two_findings": len(two_findings),
            "stored_complaints": stored_complaints, "stored_investigations": stored_findings,
            "hostile": len(self.hostile), "hostile_dead_lettered": len(self.hostile) - len(hostile_missing),
            "hostile_without_reason": len(no_reason), "hostile_by_kind": dict(sorted(by_kind.items())),
            "conflicting_duplicates": len(self.conflicts), "conflicts_dead_lettered": len(self.conflicts) - len(conflicts_missing),
            "good_complaints_dead_lettered": len(good_dead),
            "faults": self.chaos.done, "worker_kills": sum(w.kills for w in self.workers),
            "broker_kills": self.chaos.broker_kills, "db_kills": self.chaos.db_kills,
            "dead_workers": dead_workers,
            "examples": {"lost": lost[:5], "two_cases": two_cases[:5], "two_ids": two_ids[:5],
                         "hostile_missing": hostile_missing[:5], "good_dead": good_dead[:5]},
        }
        failures = []
        if lost:
            failures.append(f"{len(lost)} complaint(s) lost")
        if two_cases or two_ids:
            failures.append(f"{len(two_cases)} complaint(s) in two cases, {len(two_ids)} under two event ids")
        if unfound or two_findings:
            failures.append(f"{len(unfound)} case(s) without a finding, {len(two_findings)} with two")
        if stored_complaints != n:
            failures.append(f"intake stores {stored_complaints} complaints for {n}")
        if stored_findings != len(self.new_cases):
            failures.append(f"investigation stores {stored_findings} cases for {len(self.new_cases)}")
        if hostile_missing or no_reason:
            failures.append(f"{len(hostile_missing)} hostile message(s) not dead-lettered, {len(no_reason)} without a reason")
        if conflicts_missing:
            failures.append(f"{len(conflicts_missing)} conflicting duplicate(s) not dead-lettered as such")
        if good_dead:
            failures.append(f"{len(good_dead)} good complaint(s) dead-lettered")
        if dead_workers:
            failures.append(f"dead workers: {dead_workers}")
        result["failures"] = failures
        width = 44
        rows = [
            ("complaints (each delivered twice)", f"{n:,}"),
            ("workers per service", f"{self.args.workers} × {', '.join(SERVICES)}"),
            ("faults", f"{result['worker_kills']} worker SIGKILLs, {self.chaos.broker_kills} broker kill -9, "
                       f"{self.chaos.db_kills} database kill -9"),
            ("lost", f"{len(lost):,}"),
            ("duplicated (two cases or two event ids)", f"{len(set(two_cases) | set(two_ids)):,}"),
            ("republished with the same event id", f"{result['republished_same_event_id']:,} (consumers dedupe)"),
            ("cases / without finding / two findings", f"{len(self.new_cases):,} / {len(unfound):,} / {len(two_findings):,}"),
            ("stored complaints / investigations", f"{stored_complaints:,} / {stored_findings:,}"),
            ("hostile dead-lettered with a reason", f"{result['hostile_dead_lettered'] - len(no_reason):,}/{len(self.hostile):,}"),
            ("conflicting duplicates dead-lettered", f"{result['conflicts_dead_lettered']:,}/{len(self.conflicts):,}"),
            ("workers alive", f"{len(self.workers) - len(dead_workers)}/{len(self.workers)}"),
            ("time, rate", f"{seconds:,.0f} s, {result['registrations_per_s']}/s"),
        ]
        print()
        for label, value in rows:
            print(f"  {label:<{width}} {value}")
        print()
        RESULTS.mkdir(exist_ok=True)
        name = ("faults-" if self.args.complaints >= 10_000 else "faults-small-") + datetime.now(UTC).strftime("%Y-%m-%d")
        out = RESULTS / f"{name}.json"
        out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        say(f"results in {out}")
        if failures:
            say("FAILED: " + "; ".join(failures))
            return 1
        say(f"passed: 0 lost, 0 duplicated, {len(self.hostile):,}/{len(self.hostile):,} hostile dead-lettered "
            f"with reasons, {len(self.workers)} workers alive")
        return 0

    def shutdown(self) -> None:
        say("stopping workers and servers")
        for worker in self.workers:
            worker.stop()
        if self.args.keep:
            say(f"servers left running (--keep): {self.stack.dir}")
            return
        with contextlib.suppress(Exception):
            stop_leftover_services(self.stack.dir / "services", self.stack.kafka_bootstrap)
        self.stack.stop()


def main(argv: list[str] | None = None) -> int:
    import logging

    # the broker is killed on purpose: aiokafka's reconnect chatter would bury the progress lines
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    p = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    p.add_argument("--complaints", type=int, default=10_000)
    p.add_argument("--hostile", type=int, default=1_000)
    p.add_argument("--oversized", type=int, default=3, help="hostile messages of ~5 MB, gzip-compressed")
    p.add_argument("--conflicts", type=int, default=20, help="registered complaints re-sent with other content")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--kills", type=int, default=3, help="SIGKILLs per worker")
    p.add_argument("--cap-minutes", type=float, default=18)
    p.add_argument("--port-base", type=int, default=18000)
    p.add_argument("--stack-dir", default=str(REPO / ".parley" / "faults-stack"))
    p.add_argument("--keep", action="store_true", help="leave the servers running at the end")
    args = p.parse_args(argv)
    suite = FaultSuite(args)
    try:
        return asyncio.run(suite.run())
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        suite.shutdown()


if __name__ == "__main__":
    sys.exit(main())
