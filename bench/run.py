"""``make bench``: the whole pipeline against the raw clients, on servers of its own.

    python -m bench.run [--quick] [--budget 580] [--port-base 19000] [--services ...]

Brings up Kafka + FerretDB (``deploy/local/stack.py``, own ports, fresh stack directory)
and the services as real processes, drives them only through their public edges (the
``complaint.received`` channel topic, the ``complaint.registered`` and
``investigation.completed`` events, negotiation's HTTP API) and measures each figure next
to the raw aiokafka / PyMongo figure on the same servers in the same run, interleaved.
Every step is capped by time; a capped step reports the rate it reached and says so.
Writes ``bench/results/<date>.json`` and ``.png`` (``quick-<date>.*`` with ``--quick``),
prints one table and, after a full run, puts it in README's Benchmark section.
See bench/README.md for what each step measures and how.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import traceback
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from bench import raw
from bench.clone import Copier
from bench.data import Complaints
from bench.observe import Observer, now, percentile
from bench.report import build_rows, chart, print_table, update_readme
from bench.stack import REPO, Ports, Services, Stack, rss_kib, tree_cpu_s, tree_pss_kib

RESULTS = Path(__file__).resolve().parent / "results"
JWT_SECRET = "bench-secret-that-is-long-enough-for-hs256-0123456789"
RAW_TOPIC = "bench.raw"


@dataclass
class Plan:
    """Sizes and time caps of every step (seconds)."""

    kafka_n: int = 20_000
    kafka_cap: float = 4
    kafka_latency_s: float = 3
    upsert_n: int = 5_000
    upsert_cap: float = 3
    bulk_n: int = 30_000
    bulk_cap: float = 3
    probe_n: int = 500
    probe_cap: float = 20
    steady_rates: tuple[float, ...] = (50, 200)
    steady_s: float = 15
    drain_cap: float = 10
    completion_wait: float = 10
    get_clients: int = 20
    get_slice_s: float = 4
    burst_n: int = 5_000
    burst_cap: float = 60
    levels: tuple[int, ...] = (10_000, 50_000)
    preload_caps: tuple[float, ...] = (60, 280)  # the budget's remainder decides in the end
    settle_cap: float = 8
    quiet_services_cap: float = 45
    quiet_cap: float = 3
    budget: float = 580  # everything, servers up to servers down; make bench adds ~10 s

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            kafka_n=5_000, kafka_cap=2, kafka_latency_s=2, upsert_n=1_000, upsert_cap=1.5,
            bulk_n=5_000, bulk_cap=1.5, probe_n=50, probe_cap=10, steady_s=5, drain_cap=8,
            completion_wait=8, get_slice_s=2, burst_n=500, burst_cap=20, levels=(1_000, 2_000),
            preload_caps=(15, 20), settle_cap=6, quiet_cap=3, quiet_services_cap=15, budget=360,
        )


class Bench:
    """One benchmark run: its stack, services, observer, clients and results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.plan = Plan.quick() if args.quick else Plan()
        if args.budget:
            self.plan.budget = args.budget
        self.t_start = now()
        self.deadline = self.t_start + self.plan.budget
        self.run = datetime.now(UTC).strftime("%H%M") + uuid.uuid4().hex[:4]
        self.prefix = f"bench{self.run}."
        self.db_prefix = f"bench{self.run}_"
        self.stack = Stack(REPO / ".parley" / "bench-stack", Ports(args.port_base), say=self.say)
        self.services = Services(self.stack, args.services, self.prefix, self.db_prefix, JWT_SECRET, say=self.say)
        self.complaints = Complaints(self.run)
        self.results: dict[str, Any] = {"raw_rounds": [], "steps": {}, "notes": []}
        self.rss: dict[str, dict[str, int]] = {}
        self.cpu: dict[str, float] = {}  # CPU seconds per process tree over the run
        self.spans: list[tuple[str, float, float]] = []  # (step, start, end) for the chart
        self.est_rate: float | None = None  # intake registrations/s, as last measured
        self.step_no = 0

    # ------------------------------------------------------------------ output

    def say(self, msg: str) -> None:
        t = now() - self.t_start
        print(f"[bench {int(t) // 60:02d}:{int(t) % 60:02d}] {msg}", flush=True)

    def note(self, msg: str) -> None:
        self.results["notes"].append(msg)
        self.say(f"  note: {msg}")

    def left(self, reserve: float = 0) -> float:
        return self.deadline - now() - reserve

    @contextlib.asynccontextmanager
    async def step(self, name: str):  # type: ignore[no-untyped-def]
        self.step_no += 1
        self.say(f"step {self.step_no}: {name}")
        t0 = now()
        try:
            yield
        finally:
            self.spans.append((name, t0 - self.t_start, now() - self.t_start))
            self.say(f"step {self.step_no} done in {now() - t0:.1f} s")

    # ------------------------------------------------------------------ plumbing

    async def start(self) -> None:
        async with self.step("servers (own stack dir and ports)"):
            await asyncio.to_thread(self.stack.start)
            self.results["backend"] = self.stack.ferretdb_backend()
            # the topic catalogue is the pipeline's public edge: create it as the services do
            from shared.kafka import ensure_topics
            from shared.settings import KafkaSettings

            kafka = KafkaSettings(bootstrap=self.stack.kafka_bootstrap, topic_prefix=self.prefix)
            await ensure_topics(kafka)
            await ensure_topics(kafka, [RAW_TOPIC])
        async with self.step(f"services as processes ({', '.join(self.args.services)})"):
            seconds = await asyncio.to_thread(self.services.start)
            self.results["services_start_s"] = round(seconds, 1)
        self.observer = Observer(self.stack.kafka_bootstrap, self.prefix)
        # fresh topics: aiokafka logs "not found in cluster metadata" / "NotLeaderForPartition"
        # errors it retries on its own while the broker elects leaders
        fetcher = logging.getLogger("aiokafka")
        fetcher.setLevel(logging.CRITICAL)
        await self.observer.start()
        self.producer = AIOKafkaProducer(bootstrap_servers=self.stack.kafka_bootstrap, **raw.PRODUCER_OPTIONS)
        await self.producer.start()
        self.rawkafka = raw.RawKafka(self.stack.kafka_bootstrap, self.prefix + RAW_TOPIC)
        await self.rawkafka.start()
        fetcher.setLevel(logging.NOTSET)
        self.mongo: AsyncMongoClient[Any] = AsyncMongoClient(self.stack.mongo_url, uuidRepresentation="standard")
        self.raw_db = f"{self.db_prefix}rawbench"
        # on FerretDB's PostgreSQL backend the copies go straight into its tables (bench/clone.py)
        self.copier = Copier(self.mongo, self.db_prefix, say=self.say, postgres=self.stack.postgres())
        sample = Complaints("raw")
        self.raw_docs = [sample.submission(i) for i in range(300)]
        self.raw_values = [v for _, v in sample.take(300)]
        self.rss_task = asyncio.create_task(self._sample_rss())
        await self.warm_up()

    def http(self) -> httpx.AsyncClient:
        """A client for negotiation's API with a development manager token (sees every case)."""
        if not getattr(self, "token", None):
            # the documented way to mint a development token: python -m services.negotiation token
            proc = subprocess.run(
                [sys.executable, "-m", "services.negotiation", "token", "--role", "manager", "--sub", "bench"],
                cwd=REPO, env=self.services.env(), capture_output=True, text=True, check=True,
            )
            self.token = proc.stdout.strip().splitlines()[-1]
        token = self.token
        n = self.plan.get_clients
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.stack.ports.negotiation}", timeout=60,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
        )

    async def warm_up(self, n: int = 3, cap: float = 180) -> None:
        """Readiness through the public edges: complaints registered, investigated, opened."""
        async with self.step(f"warm-up: {n} complaints through intake, investigation and negotiation"):
            batch = self.complaints.take(n)
            ccids = [k for k, _ in batch]
            t0 = now()
            await self.publish(batch)
            await self.producer.flush()
            ok = await self.wait_for(
                lambda: self.observer.handled_of(ccids) == n, cap,
                lambda: f"warm-up: {self.observer.registered_of(ccids)}/{n} registered, "
                        f"{self.observer.handled_of(ccids)}/{n} investigated")
            if not ok:
                self.dead_check()
                raise RuntimeError(f"the pipeline did not handle {n} complaints in {cap:.0f} s "
                                   f"(logs in {self.stack.dir / 'services'})")
            cases = [self.observer.case_of[c] for c in ccids if self.observer.case_of.get(c) in self.observer.completed]
            async with self.http() as http:
                for case in cases[:1]:
                    while (await http.get(f"/cases/{case}")).status_code != 200:
                        if now() - t0 > cap:
                            raise RuntimeError(f"negotiation did not open case {case} in {cap:.0f} s")
                        await asyncio.sleep(0.2)
            self.results["warm_up_s"] = round(now() - t0, 1)

    async def stop(self) -> None:
        for closer in ("rss_task",):
            task = getattr(self, closer, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for name in ("observer", "producer", "rawkafka"):
            obj = getattr(self, name, None)
            if obj is not None:
                with contextlib.suppress(Exception):
                    await obj.stop()
        if getattr(self, "mongo", None) is not None:
            await self.mongo.close()
        self.say("stopping services and servers")
        await asyncio.to_thread(self.services.stop)
        await asyncio.to_thread(self.stack.stop)

    async def _sample_rss(self) -> None:
        while True:
            pids = {**{f"service {k}": v for k, v in self.services.pids().items()},
                    **{f"server {k}": v for k, v in self.stack.server_pids().items()}}
            sizes = {name: rss_kib(pid) for name, pid in pids.items()}
            pg = self.stack.server_pids().get("postgresql")
            if pg:  # PostgreSQL's work happens in its backends: the whole tree, shared pages split
                sizes["server postgresql with its backends (PSS)"] = tree_pss_kib(pg)
            for name, kib in sizes.items():
                if kib is None:
                    continue
                entry = self.rss.setdefault(name, {"peak_kib": 0, "end_kib": 0})
                entry["peak_kib"] = max(entry["peak_kib"], kib)
                entry["end_kib"] = kib
            for name, pid in pids.items():  # where the two cores went: CPU seconds per process tree
                cpu = tree_cpu_s(pid)
                if cpu is not None:
                    self.cpu[name] = max(self.cpu.get(name, 0.0), round(cpu, 1))
            await asyncio.sleep(1)

    async def publish(self, batch: list[tuple[str, bytes]]) -> None:
        """Send complaints to ``complaint.received`` (key: the channel's id) and note the time."""
        topic = self.prefix + "complaint.received"
        for key, value in batch:
            self.observer.mark_published(key)
            await self.producer.send(topic, value, key=key.encode())

    async def wait_for(self, done: Any, cap: float, progress: Any = None, every: float = 5.0) -> bool:
        """Poll ``done()`` until true or ``cap`` seconds; print ``progress()`` every ``every`` s."""
        t0 = now()
        last = t0
        while not done():
            if now() - t0 > cap:
                return False
            await asyncio.sleep(0.05)
            if progress is not None and now() - last >= every:
                last = now()
                self.say("  " + progress())
        return True

    async def settle(self, why: str, *, investigation: bool = False) -> None:
        """Wait (capped) until intake has registered everything published so far (and, with
        ``investigation``, until investigation has handled it: on two cores its backlog takes
        the CPU a probe of the stored-data cost would measure)."""
        o = self.observer

        def left() -> int:
            return o.backlog() + (o.investigation_backlog() if investigation else 0)

        if left() == 0:
            return
        cap = self.plan.settle_cap
        ok = await self.wait_for(lambda: left() == 0, cap,
                                 lambda: f"waiting for the pipeline: {o.backlog():,} not registered yet"
                                 + (f", {o.investigation_backlog():,} not investigated" if investigation else ""))
        if not ok:
            self.note(f"before {why}: {o.backlog():,} complaints still waited for intake"
                      + (f" and {o.investigation_backlog():,} for investigation" if investigation else "")
                      + f" after {cap:.0f} s")

    async def quiet(self, why: str, cap: float | None = None) -> None:
        """Wait (capped) until the services' processes use little CPU: the stages after
        investigation (negotiation, supervision, …) may still be working off an earlier step,
        which would take the cores from the next measurement."""
        cap = self.plan.quiet_services_cap if cap is None else cap
        pids = self.services.pids()

        def used() -> float:
            return sum(tree_cpu_s(pid) or 0.0 for pid in pids.values())

        t0 = last_t = now()
        last = used()
        while now() - t0 < cap:
            await asyncio.sleep(1)
            cpu, t = used(), now()
            share = (cpu - last) / (t - last_t)
            last, last_t = cpu, t
            if share < 0.25:  # under a quarter of one core for all services together
                return
        self.note(f"before {why}: the services were still busy after {cap:.0f} s")

    def dead_check(self) -> None:
        dead = self.services.dead()
        if dead:
            raise RuntimeError(f"service processes died: {dead} (logs in {self.stack.dir / 'services'})")

    # ------------------------------------------------------------------ raw baselines

    async def raw_round(self, label: str) -> dict[str, Any]:
        p = self.plan
        async with self.step(f"raw clients, round {len(self.results['raw_rounds']) + 1} ({label})"):
            tag = f"r{len(self.results['raw_rounds']) + 1}"
            # the raw clients measure the servers; let the pipeline finish what it has first (capped)
            await self.wait_for(lambda: self.observer.backlog() == 0 and self.observer.investigation_backlog() == 0,
                                p.quiet_cap)
            busy = {"intake_backlog": self.observer.backlog(),
                    "investigation_backlog": self.observer.investigation_backlog()}
            k = await self.rawkafka.throughput(self.raw_values, p.kafka_n, p.kafka_cap, tag)
            u = await raw.upserts(self.mongo, self.raw_db, self.raw_docs, p.upsert_n, p.upsert_cap, tag)
            b = await raw.bulk_inserts(self.mongo, self.raw_db, self.raw_docs, p.bulk_n, p.bulk_cap, tag)
            result = {"label": label, "at_s": round(now() - self.t_start, 1), "pipeline_busy": busy,
                      "kafka": k, "upsert": u, "bulk": b}
            self.results["raw_rounds"].append(result)
            still = (f" (the pipeline was still busy: {busy['intake_backlog']:,} waiting for intake, "
                     f"{busy['investigation_backlog']:,} for investigation)") if any(busy.values()) else ""
            self.say(f"  aiokafka produce→consume {k['msgs_per_s']:,.0f} msg/s; upsert {u['per_s']:,.0f}/s; "
                     f"insert_many {b['per_s']:,.0f}/s{still}")
            return result

    # ------------------------------------------------------------------ pipeline steps

    async def probe(self, label: str) -> dict[str, Any]:
        """Time per complaint with the cases stored so far: ``probe_n`` complaints.

        They go at once when intake's measured rate drains them in half the cap, otherwise
        topped up (``top_up``) so that a slow intake is not left with a backlog.

        Time per complaint is the span from the probe's publish to its last registration
        (investigation: its last completed/paused), divided by everything intake
        (investigation) finished in that span — the probe's complaints and any backlog ahead
        of them. When the cap ends the probe first, the span is the cap.
        """
        p = self.plan
        await self.settle(f"the probe at {label}", investigation=True)
        await self.quiet(f"the probe at {label}")
        stored = await self.stored_cases()
        backlog, inv_backlog = self.observer.backlog(), self.observer.investigation_backlog()
        async with self.step(f"time per complaint with {stored:,} cases stored ({p.probe_n} complaints, cap {p.probe_cap:g} s)"):
            t0 = now()
            if (self.est_rate or 0) * p.probe_cap / 2 >= p.probe_n:  # intake drains them well within the cap
                batch = self.complaints.take(p.probe_n)
                ccids = [k for k, _ in batch]
                await self.publish(batch)
                await self.producer.flush()
            else:  # a slow intake: never leave more than ~5 s of its work behind for the next step
                up = await self.top_up(p.probe_n, lambda: False, p.probe_cap * 0.75, "probe")
                ccids = up["ccids"]
            reg_ok = await self.wait_for(
                lambda: self.observer.registered_of(ccids) == len(ccids), max(0.5, p.probe_cap - (now() - t0)),
                lambda: f"probe: {self.observer.registered_of(ccids):,}/{len(ccids):,} registered")
            reg = [self.observer.registered[c] for c in ccids if c in self.observer.registered]
            t_reg = max(reg) if reg_ok else now()
            n_reg = self.observer.count_between(self.observer.registered_times, t0, t_reg)
            inv_ok = await self.wait_for(lambda: self.observer.handled_of(ccids) == len(ccids),
                                         max(0.5, p.probe_cap - (now() - t0)))
            t_inv = max(self._handled_at(c) for c in ccids) if inv_ok else now()
            n_inv = self.observer.count_between(self.observer.handled_times, t0, t_inv)

            def how(ok: bool, n: int, span: float, ahead: int) -> str:
                if ok and n == len(ccids):
                    return f"{n} in {span:.1f} s"
                return (f"{n} in {span:.1f} s" + ("" if ok else ", capped") + (f", behind a backlog of {ahead:,}" if ahead else ""))

            result = {
                "label": label, "stored_cases": stored, "n": len(ccids), "registered": len(reg),
                "intake_ms_per_complaint": round((t_reg - t0) / n_reg * 1000, 2) if n_reg else math.inf,
                "intake_how": how(reg_ok, n_reg, t_reg - t0, backlog), "intake_capped": not reg_ok,
                "investigation_ms_per_complaint": round((t_inv - t0) / n_inv * 1000, 2) if n_inv else math.inf,
                "investigation_how": how(inv_ok, n_inv, t_inv - t0, inv_backlog),
            }
            if n_reg:
                self.est_rate = n_reg / max(t_reg - t0, 1e-3)
            self.say(f"  intake {result['intake_ms_per_complaint']} ms/complaint ({result['intake_how']}); "
                     f"investigation {result['investigation_ms_per_complaint']} ms/complaint ({result['investigation_how']})")
            return result

    def _handled_at(self, ccid: str) -> float:
        case = self.observer.case_of.get(ccid)
        return min(self.observer.completed.get(case, math.inf), self.observer.paused.get(case, math.inf))

    async def steady(self, rate: float, completion: bool) -> dict[str, Any]:
        """Publish at a steady rate; publish→registered (and →investigation.completed) latency."""
        p = self.plan
        await self.settle(f"the {rate:g}/s step")
        asked = rate
        why = ""
        if self.est_rate is not None and rate > self.est_rate:
            rate = max(1.0, round(0.8 * self.est_rate, 1))
            why = f"{asked:g}/s is beyond intake's measured ~{self.est_rate:,.1f}/s"
        result: dict[str, Any] = {"asked_rate": asked, "reduced_because": why, "attempts": []}
        async with self.step(f"steady {asked:g}/s for {p.steady_s:g} s" + (f" (run at {rate:g}/s: {why})" if why else "")):
            for attempt in range(2):
                raw_before = await self.rawkafka.latency(self.raw_values, rate, p.kafka_latency_s, f"lat{asked:g}a{attempt}")
                ccids, sustained, t0 = await self._publish_steady(rate, p.steady_s)
                t_sent = now()
                drained = await self.wait_for(
                    lambda c=ccids: self.observer.registered_of(c) == len(c), p.drain_cap,
                    lambda c=ccids: f"draining: {self.observer.registered_of(c):,}/{len(c):,} registered")
                # sustained: intake never fell 3 s behind and caught up within 5 s of the last publish
                sustained = sustained and drained and now() - t_sent <= 5
                raw_after = await self.rawkafka.latency(self.raw_values, rate, p.kafka_latency_s, f"lat{asked:g}b{attempt}")
                lat = self.observer.register_latencies(ccids)
                reg_times = [self.observer.registered[c] for c in ccids if c in self.observer.registered]
                achieved = len(reg_times) / (max(reg_times) - t0) if reg_times else 0.0
                run = {
                    "rate": rate, "n": len(ccids), "registered": len(reg_times), "sustained": sustained,
                    "p50_ms": _ms(percentile(lat, 50)), "p99_ms": _ms(percentile(lat, 99)),
                    "registered_per_s": round(achieved, 1),
                    "raw_kafka": {"p50_ms": _mean(raw_before["p50_ms"], raw_after["p50_ms"]),
                                  "p99_ms": _mean(raw_before["p99_ms"], raw_after["p99_ms"]),
                                  "before": raw_before, "after": raw_after},
                    "ccids": ccids,
                }
                result["attempts"].append(run)
                self.say(f"  at {rate:g}/s: publish→registered p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms "
                         f"({len(reg_times):,}/{len(ccids):,} registered; raw aiokafka p99 {run['raw_kafka']['p99_ms']} ms)")
                if sustained or attempt == 1 or achieved <= 0 or self.left() < 0.5 * p.budget:
                    break
                self.est_rate = achieved
                rate = max(1.0, round(0.8 * achieved, 1))
                result["reduced_because"] = f"{run['rate']:g}/s was not sustained (backlog grew); intake reached {achieved:,.1f}/s"
                self.say(f"  not sustained; once more at {rate:g}/s")
            final = result["attempts"][-1]
            result.update({k: final[k] for k in ("rate", "n", "registered", "sustained", "p50_ms", "p99_ms", "raw_kafka")})
            if completion:
                ccids = final["ccids"]
                wait = p.completion_wait
                await self.wait_for(
                    lambda: all(not math.isinf(x) for x in self.observer.completion_latencies(ccids)), wait,
                    lambda: f"investigation: {self.observer.handled_of(ccids):,}/{len(ccids):,} handled")
                clat = self.observer.completion_latencies(ccids)
                result["completion"] = {
                    "n": len(clat), "completed": sum(1 for x in clat if not math.isinf(x)),
                    "paused": len(ccids) - len(clat), "waited_s": round(wait, 1),
                    "p50_ms": _ms(percentile(clat, 50)), "p99_ms": _ms(percentile(clat, 99)),
                }
                self.say(f"  received→investigation.completed p50 {result['completion']['p50_ms']} ms, "
                         f"p99 {result['completion']['p99_ms']} ms ({result['completion']['completed']}/{len(clat)})")
            for a in result["attempts"]:
                a.pop("ccids", None)
            return result

    async def _publish_steady(self, rate: float, seconds: float) -> tuple[list[str], bool, float]:
        """Publish at ``rate`` for ``seconds``; stop early when intake falls ~3 s behind."""
        n = max(1, int(rate * seconds))
        batch = self.complaints.take(n)
        limit = max(20, rate * 3)
        topic = self.prefix + "complaint.received"
        t0 = now()
        checked = t0
        sent: list[str] = []
        for i, (key, value) in enumerate(batch):
            delay = t0 + i / rate - now()
            if delay > 0:
                await asyncio.sleep(delay)
            self.observer.mark_published(key)
            await self.producer.send(topic, value, key=key.encode())
            sent.append(key)
            if now() - checked >= 1:
                checked = now()
                if len(sent) - self.observer.registered_of(sent) > limit:
                    return sent, False, t0
        await self.producer.flush()
        return sent, True, t0

    async def negotiation_reads(self) -> dict[str, Any]:
        """GET /cases/{id} from 20 concurrent clients vs raw find_one by _id from 20 tasks."""
        p = self.plan
        async with self.step(f"negotiation GET /cases/{{id}}, {p.get_clients} clients, vs raw find_one"):
            if not self.observer.completed:
                await self.wait_for(lambda: bool(self.observer.completed), 15,
                                    lambda: "waiting for a first investigation.completed")
            case_ids = list(self.observer.completed)[:200]
            if not case_ids:
                self.note("no investigation.completed arrived, so negotiation opened no case to read")
                return {"skipped": "no case opened"}
            async with self.http() as http:
                bodies: dict[str, dict[str, Any]] = {}

                async def fetch(cid: str) -> None:
                    with contextlib.suppress(httpx.HTTPError):
                        r = await http.get(f"/cases/{cid}")
                        if r.status_code == 200:
                            bodies[cid] = r.json()

                pending = [c for c in case_ids]
                t0 = now()
                while pending and now() - t0 < 10:
                    for i in range(0, len(pending), p.get_clients):
                        await asyncio.gather(*(fetch(c) for c in pending[i:i + p.get_clients]))
                    pending = [c for c in pending if c not in bodies]
                    if pending and bodies:
                        break  # enough cases are open; the rest may still be on their way
                    await asyncio.sleep(0.5)
                ids = list(bodies)
                if not ids:
                    self.note("negotiation answered no GET /cases/{id} with 200 for cases investigation completed")
                    return {"skipped": "no case readable"}
                # the raw side: the same documents, padded to as many as cases stored, by _id
                coll = self.mongo[self.raw_db]["cases_copy"]
                docs = [{**{k: v for k, v in b.items() if not k.startswith("$")}, "_id": cid} for cid, b in bodies.items()]
                await coll.insert_many(docs)
                pad = min(20_000, max(1_000, len(self.observer.new_cases))) - len(docs)
                for i in range(0, max(0, pad), 500):
                    await coll.insert_many([{**docs[(i + j) % len(docs)], "_id": f"pad-{i + j}"}
                                            for j in range(min(500, pad - i))], ordered=False)
                rounds: list[dict[str, Any]] = []
                slice_s = p.get_slice_s
                for r in range(2):
                    rounds.append({"raw": await raw.find_ones(self.mongo, self.raw_db, "cases_copy", ids, p.get_clients, slice_s)})
                    rounds[-1]["api"] = await self._get_load(http, ids, p.get_clients, slice_s)
                    self.say(f"  round {r + 1}: GET p50 {rounds[-1]['api']['p50_ms']} ms p99 {rounds[-1]['api']['p99_ms']} ms"
                             f" ({rounds[-1]['api']['n']} requests); find_one p50 {rounds[-1]['raw']['p50_ms']} ms"
                             f" p99 {rounds[-1]['raw']['p99_ms']} ms")
                await coll.drop()
            api_lat = [x for r in rounds for x in r["api"].pop("latencies")]
            raw_lat = [x for r in rounds for x in r["raw"].pop("latencies")]
            return {
                "cases": len(ids), "clients": p.get_clients, "rounds": rounds, "raw_docs": len(docs) + max(0, pad),
                "api": {"n": len(api_lat), "p50_ms": _ms(percentile(api_lat, 50)), "p99_ms": _ms(percentile(api_lat, 99)),
                        "errors": sum(r["api"]["errors"] for r in rounds)},
                "raw": {"n": len(raw_lat), "p50_ms": _ms(percentile(raw_lat, 50)), "p99_ms": _ms(percentile(raw_lat, 99))},
            }

    async def _get_load(self, http: httpx.AsyncClient, ids: list[str], clients: int, seconds: float) -> dict[str, Any]:
        lat: list[float] = []
        errors = 0
        stop_at = now() + seconds

        async def one(seed: int) -> None:
            nonlocal errors
            rnd = random.Random(seed)
            while now() < stop_at:
                t = now()
                try:
                    r = await http.get(f"/cases/{rnd.choice(ids)}")
                except httpx.HTTPError:  # a dropped connection counts as an error, never as fast
                    lat.append(math.inf)
                    errors += 1
                    continue
                lat.append(now() - t)
                if r.status_code != 200:
                    errors += 1

        t0 = now()
        await asyncio.gather(*(one(i) for i in range(clients)))
        elapsed = now() - t0
        return {"n": len(lat), "per_s": round(len(lat) / elapsed, 1), "errors": errors,
                "p50_ms": _ms(percentile(lat, 50)), "p99_ms": _ms(percentile(lat, 99)), "latencies": lat}

    async def top_up(self, total: int, until: Any, cap: float, label: str) -> dict[str, Any]:
        """Publish up to ``total`` complaints, keeping about 5 s of intake's work waiting.

        Intake's rate is measured as it goes (every registration since the start), so a slow
        pipeline is never left with more than a few seconds of backlog when the cap ends the
        step, and a fast one gets bigger and bigger batches. Stops at ``until()``, ``total``
        or ``cap`` seconds.
        """
        ccids: list[str] = []
        t0 = now()
        last = t0
        rate = self.est_rate or 4.0
        while len(ccids) < total and not until() and now() - t0 < cap:
            elapsed = now() - t0
            done = self.observer.count_between(self.observer.registered_times, t0, now())
            if elapsed >= 1 and done:
                rate = done / elapsed
            target = int(max(20, rate * 5))
            room = target - self.observer.backlog()
            if room >= max(10, target // 4):
                batch = self.complaints.take(min(room, total - len(ccids)))
                await self.publish(batch)
                ccids += [k for k, _ in batch]
            await asyncio.sleep(0.05)
            if now() - last >= 5:
                last = now()
                reg = self.observer.registered_of(ccids)
                eta = (total - reg) / rate if rate else math.inf
                self.say(f"  {label}: {len(ccids):,} published, {reg:,}/{total:,} registered, {rate:,.1f}/s, "
                         f"{len(self.observer.new_cases):,} cases stored, ETA {_eta(eta)} (cap {cap:.0f} s)")
        await self.producer.flush()
        self.est_rate = rate
        return {"published": len(ccids), "ccids": ccids, "t0": t0}

    async def burst(self) -> dict[str, Any]:
        """Each stage alone: 5,000 complaints at once to intake while the other services' workers
        are paused; then investigation alone on the cases intake made; then everything resumes.

        On two cores every process takes from the same CPU: with the whole pipeline running, a
        burst measures the machine (the probes and the steady steps show that figure). Paused
        (SIGSTOP), the other stages leave the cores to the stage measured, as they would on
        machines of their own, so the figure is the stage's own rate on these servers.
        """
        p = self.plan
        await self.settle("the burst", investigation=True)
        await self.quiet("the burst")
        cap = p.burst_cap
        result: dict[str, Any] = {"n": p.burst_n, "cap_s": round(cap, 1), "mode": "stage alone"}
        paused = await asyncio.to_thread(self.services.pause, {"intake"})
        result["paused"] = paused
        try:
            async with self.step(f"intake alone: {p.burst_n:,} complaints at once, {', '.join(paused)} paused "
                                 f"(cap {cap:.0f} s)"):
                batch = self.complaints.take(p.burst_n)
                ccids = [k for k, _ in batch]
                t0 = now()
                await self.publish(batch)
                await self.producer.flush()
                all_in = await self.wait_for(lambda: self.observer.registered_of(ccids) == len(ccids),
                                             max(0.5, cap - (now() - t0)), lambda: self._burst_progress(ccids, t0))
                reg = sorted(self.observer.registered[c] for c in ccids if c in self.observer.registered)
                t_reg = reg[-1] if all_in else now()
                result.update({
                    "published": len(ccids), "registered": len(reg), "seconds": round(t_reg - t0, 2),
                    "registered_per_s": round(len(reg) / (t_reg - t0), 1) if t_reg > t0 else 0.0,
                    "peak_5s_per_s": round(Observer.peak_rate(self.observer.registered_times, t0, t_reg), 1),
                    "capped": not all_in, "duplicates_seen": self.observer.duplicates,
                })
                self.say(f"  {len(reg):,}/{len(ccids):,} registered in {t_reg - t0:.1f} s: "
                         f"{result['registered_per_s']:,}/s (best 5 s: {result['peak_5s_per_s']:,}/s)")
            inv = [n for n in paused if n.startswith("investigation-")]
            async with self.step(f"investigation alone on the {len(reg):,} cases intake made (cap {cap:.0f} s)"):
                await asyncio.to_thread(self.services.resume, inv)
                t1 = now()
                inv_all = await self.wait_for(
                    lambda: self.observer.handled_of(ccids) >= len(reg), cap,
                    lambda: f"investigation: {self.observer.handled_of(ccids):,}/{len(reg):,} completed or paused")
                handled = sorted(h for h in (self._handled_at(c) for c in ccids) if not math.isinf(h))
                t_inv = handled[-1] if inv_all and handled else now()
                n_inv = sum(1 for h in handled if h >= t1)  # (none can be earlier: it was paused)
                result.update({
                    "investigation_handled": len(handled), "investigation_in_span": n_inv,
                    "investigation_seconds": round(t_inv - t1, 2),
                    "investigation_per_s": round(n_inv / (t_inv - t1), 1) if t_inv > t1 else 0.0,
                    "investigation_capped": not inv_all,
                })
                self.say(f"  {n_inv:,} completed or paused in {t_inv - t1:.1f} s: {result['investigation_per_s']:,}/s")
        finally:
            await asyncio.to_thread(self.services.resume)
        return result

    def _burst_progress(self, ccids: list[str], t0: float) -> str:
        reg = self.observer.registered_of(ccids)
        r = reg / (now() - t0)
        eta = (len(ccids) - reg) / r if r else math.inf
        return f"burst: {reg:,}/{len(ccids):,} registered, {r:,.0f}/s, ETA {_eta(eta)}"

    async def stored_cases(self) -> int:
        """Cases stored: those the pipeline registered in this run and those copied.

        (Counted here, not asked of the database: FerretDB v1 counts by reading the table,
        18 s at 21,000 cases.)"""
        return len(self.observer.new_cases) + self.copier.copied

    async def preload(self, level: int, cap: float) -> dict[str, Any]:
        """Grow the stores to ``level`` cases by copying the cases the run made (``bench/clone.py``).

        Sending 50,000 complaints through the pipeline would take longer than the whole budget
        on the 2-core machine; the copies are other customers' cases with every identifier
        renamed, made inside PostgreSQL straight into FerretDB's tables on its PostgreSQL backend,
        otherwise written with ``insert_many`` into the services' own collections.
        """
        have = await self.stored_cases()
        async with self.step(f"stored cases to {level:,} by copying the run's cases (have {have:,}; cap {cap:.0f} s)"):
            t0 = now()
            await self.wait_for(lambda: self.observer.backlog() == 0 and self.observer.investigation_backlog() == 0,
                                self.plan.settle_cap)
            # (a round of copies takes a few seconds: stop early enough to stay within the cap)
            done = await self.copier.grow(level, await self.stored_cases(), deadline=lambda: cap - 6 - (now() - t0))
            vacuum_s = await self.copier.settle()
            if vacuum_s:
                self.say(f"  vacuumed the copied tables in {vacuum_s:.1f} s (what autovacuum would do next, before the probe)")
            stored = await self.stored_cases()
            result = {"level": level, "stored": stored, "made_by_pipeline": done["made_by_pipeline"], "sample_cases": done["seed_cases"],
                      "copied_documents": done["documents"], "collections": done["collections"],
                      "seconds": round(now() - t0, 1), "copy_seconds": done["seconds"], "vacuum_seconds": vacuum_s,
                      "reached": stored >= level,
                      "method": "copies of the run's cases (bench/clone.py), written with "
                      + ("INSERT … SELECT inside PostgreSQL into FerretDB's tables" if self.copier.postgres
                         else "insert_many through FerretDB")}
            if stored < level:
                self.note(f"the stores reached {stored:,} of {level:,} cases within the {cap:.0f} s cap")
            return result

    # ------------------------------------------------------------------ the run

    async def main(self) -> dict[str, Any]:
        p = self.plan
        steps = self.results["steps"]
        task = asyncio.current_task()
        assert task is not None
        # SIGTERM (e.g. from timeout) ends the run like Ctrl-C: services and servers still stop
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await self.start()
            self.dead_check()
            await self.raw_round("before the pipeline steps")
            steps["probe_0"] = await self.probe("0")
            for i, rate in enumerate(p.steady_rates):
                if i and self.est_rate is not None and steps[f"steady_{p.steady_rates[0]:g}"]["rate"] < p.steady_rates[0]:
                    # the first rate already ran at the highest rate intake sustains; a higher one
                    # would run at that same reduced rate again: its time goes to the stored levels
                    self.note(f"steady {rate:g}/s not run: intake's measured ~{self.est_rate:,.1f}/s is below "
                              f"{p.steady_rates[0]:g}/s already, so the {p.steady_rates[0]:g}/s row is the highest rate it sustains")
                    continue
                steps[f"steady_{rate:g}"] = await self.steady(rate, completion=(i == 0))
            steps["negotiation_get"] = await self.negotiation_reads()
            self.dead_check()
            await self.raw_round("before the burst")
            steps["burst"] = await self.burst()
            await self.raw_round("after the burst")
            for i, level in enumerate(p.levels):
                # the preloads take what the budget has left, keeping enough for what follows
                rest = len(p.levels) - i
                probe_s = p.probe_cap + 5
                final = self._raw_round_s() + 10  # the last raw round and stopping (~20 s measured)
                # (the preload's own settle and step overheads come on top of its cap; after a long
                # copy the pipeline is quiet, so a probe takes little more than its own cap)
                cap = min(p.preload_caps[i], self.left(rest * probe_s + final) / rest)
                if cap >= 5:
                    steps[f"preload_{level}"] = await self.preload(level, cap)
                else:
                    self.note(f"no time left in the {p.budget:.0f} s budget to preload to {level:,} cases; "
                              f"measured with the {await self.stored_cases():,} stored")
                if self.left(final + (rest - 1) * probe_s) < probe_s:
                    self.note(f"no time left in the {p.budget:.0f} s budget for the probe at {level:,}")
                    break
                steps[f"probe_{level}"] = await self.probe(f"{level}")
            self.dead_check()
            await self.raw_round("at the end")
        except Exception as exc:  # noqa: BLE001 - the run stops; what was measured is still written
            self.results["error"] = f"{type(exc).__name__}: {exc}"
            self.results["traceback"] = traceback.format_exc()
            self.note(f"the run stopped early: {type(exc).__name__}: {str(exc)[:300]}")
        finally:
            self.results["dead_services"] = self.services.dead()
            self.results["observed"] = {
                "published": len(self.observer.published) if hasattr(self, "observer") else 0,
                "registered": len(self.observer.registered) if hasattr(self, "observer") else 0,
                "new_cases": len(self.observer.new_cases) if hasattr(self, "observer") else 0,
                "investigation_completed": len(self.observer.completed) if hasattr(self, "observer") else 0,
                "investigation_paused": len(self.observer.paused) if hasattr(self, "observer") else 0,
                "duplicate_registrations": self.observer.duplicates if hasattr(self, "observer") else 0,
            }
            await self.stop()
        self.results["rss"] = self.rss
        self.results["cpu_s"] = self.cpu
        self.results["total_s"] = round(now() - self.t_start, 1)
        return self.results

    def _raw_round_s(self) -> float:
        p = self.plan
        return p.quiet_cap + p.kafka_cap + p.upsert_cap + p.bulk_cap + 3


def _ms(seconds: float) -> float:
    return math.inf if math.isinf(seconds) else (math.nan if math.isnan(seconds) else round(seconds * 1000, 1))


def _mean(*xs: float) -> float:
    vals = [x for x in xs if not math.isnan(x)]
    return round(sum(vals) / len(vals), 2) if vals else math.nan


def _eta(seconds: float) -> str:
    if math.isinf(seconds):
        return "?"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and (math.isinf(obj) or math.isnan(obj)):
        return None if math.isnan(obj) else "inf"
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short caps (a few minutes)")
    parser.add_argument("--budget", type=float, default=0, help="seconds for the whole run (default 580; quick 360)")
    parser.add_argument("--port-base", type=int, default=int(os.environ.get("PARLEY_BENCH_PORT_BASE", "19000")),
                        help="ports: Kafka base+92/+93, FerretDB base+17, PostgreSQL base+432, negotiation API base+3")
    parser.add_argument("--services", nargs="+", default=["intake", "investigation", "negotiation", "followup", "supervision"],
                        help="which services' workers run (negotiation's API always runs with it)")
    parser.add_argument("--no-readme", action="store_true", help="do not put the table into README.md")
    parser.add_argument("--readme", action="store_true", help="put the table into README.md after a --quick run too")
    args = parser.parse_args(argv)
    for needed in ("intake", "investigation", "negotiation"):
        if needed not in args.services:
            parser.error(f"{needed} must run: the benchmark measures it")
    bench = Bench(args)
    try:
        results = asyncio.run(bench.main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("[bench] interrupted; its services and servers were stopped", flush=True)
        return 130
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    name = f"quick-{date}" if args.quick else date
    results.update({
        "date": date, "quick": args.quick, "run": bench.run, "cpus": os.cpu_count(),
        "plan": asdict(bench.plan), "services": args.services, "spans": bench.spans,
        "load": os.getloadavg(),
    })
    rows = build_rows(results)
    results["table"] = rows
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(_jsonable(results), indent=2, ensure_ascii=False) + "\n")
    png = RESULTS / f"{name}.png"
    chart(results, getattr(bench, "observer", None), bench.t_start, png)
    table = print_table(rows, results)
    if (args.readme or not args.quick) and not args.no_readme:
        update_readme(REPO / "README.md", table, results)
    print(f"\nwrote {RESULTS / f'{name}.json'} and {png}")
    if results.get("error"):
        print(f"[bench] the run stopped early: {results['error']}\n{results['traceback']}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
