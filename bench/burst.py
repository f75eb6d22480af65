"""Where a burst's work goes: CPU per process and database commands per complaint per service.

    python -m bench.burst [--complaints 2000] [--port-base 16000] [--services intake,...]

Brings up its own Kafka + PostgreSQL + FerretDB (``.parley/burst-stack-<port base>``, ports
from ``--port-base``, so two runs can go side by side) and the services as processes, each
counting the database commands it
sends (``PARLEY_MONGO_COMMAND_COUNTS``, ``shared.mongo.CommandCounts``), publishes the
complaints at once and waits until every one is registered and investigated, then
(``--settle`` seconds later, for the stages after investigation) prints the CPU seconds each
process used and each service's commands per complaint, by command and collection. A
diagnostic for the question the benchmark's figures raise — which stage costs the database
how many round trips — not a benchmark: it has no raw baseline and no target. It takes
2–3 minutes for 2,000 complaints on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer

from bench.data import Complaints
from bench.observe import Observer
from bench.stack import REPO, Ports, Services, Stack, tree_cpu_s
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings

if TYPE_CHECKING:
    from bench.clone import Postgres

SERVICES = ("intake", "investigation", "negotiation", "followup", "supervision")


def say(line: str, start: float = time.monotonic()) -> None:
    print(f"[burst {time.monotonic() - start:6.1f}s] {line}", flush=True)


def command_counts(directory: Path) -> dict[int, dict[str, int]]:
    """Each process's counts so far, by process id."""
    out: dict[int, dict[str, int]] = {}
    for path in directory.glob("*.json"):
        try:
            out[int(path.stem)] = json.loads(path.read_text())
        except (ValueError, OSError):
            continue  # being replaced right now: the next read has it
    return out


STATEMENTS = """SELECT calls, rows, round(total_exec_time)::bigint, round(mean_exec_time::numeric, 2),
  regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements
  WHERE query NOT ILIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT 15"""


@dataclass
class Run:
    """One run's servers, topics and (not yet started) service processes."""

    stack: Stack
    services: Services
    pg: Postgres | None  # FerretDB's PostgreSQL with pg_stat_statements, when asked for
    counts_dir: Path  # each service process's command counts (PARLEY_MONGO_COMMAND_COUNTS)
    run_id: str
    prefix: str  # the run's topic prefix


async def bring_up(names: list[str], port_base: int, statements: bool, say: Callable[[str], None]) -> Run:
    """Start a fresh stack in ``.parley/burst-stack-<port base>`` and create the run's topics;
    the service processes are made, not started."""
    if statements:
        os.environ["PARLEY_POSTGRESQL_STATEMENTS"] = "1"  # the stack's PostgreSQL loads pg_stat_statements
    stack = Stack(REPO / ".parley" / f"burst-stack-{port_base}", Ports(port_base), say=say)
    say(f"starting the servers ({stack.dir})")
    await asyncio.to_thread(stack.start)
    pg = stack.postgres() if statements else None
    if pg is not None:
        await pg.run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    counts_dir = stack.dir / "command-counts"
    counts_dir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:6]
    prefix = f"burst{run_id}."
    await ensure_topics(KafkaSettings(bootstrap=stack.kafka_bootstrap, topic_prefix=prefix))
    services = Services(stack, names, prefix, f"burst{run_id}_", uuid.uuid4().hex * 2, say=say,
                        extra_env={"PARLEY_MONGO_COMMAND_COUNTS": str(counts_dir / "{pid}.json")})
    return Run(stack, services, pg, counts_dir, run_id, prefix)


async def run(n: int, names: list[str], port_base: int, settle: float, statements: bool = False) -> dict[str, Any]:
    up = await bring_up(names, port_base, statements, say)
    stack, services, pg, counts_dir, run_id, prefix = up.stack, up.services, up.pg, up.counts_dir, up.run_id, up.prefix
    say(f"starting {', '.join(names)}")
    await asyncio.to_thread(services.start)
    observer = Observer(stack.kafka_bootstrap, prefix)
    await observer.start()
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    complaints = Complaints(run_id)
    try:
        warm = complaints.take(20)
        for key, value in warm:
            await producer.send(prefix + "complaint.received", value, key=key.encode())
        t = time.monotonic()
        # without investigation running, a complaint is through when it is registered
        done = observer.handled_of if "investigation" in names else observer.registered_of
        while done([k for k, _ in warm]) < len(warm) and time.monotonic() - t < 180:  # noqa: ASYNC110 - polls what the observer saw
            await asyncio.sleep(0.5)
        say(f"warm-up: 20 complaints through in {time.monotonic() - t:.1f} s; settling {settle:.0f} s")
        await asyncio.sleep(settle)
        pids = {**services.pids(), **stack.server_pids()}
        cpu0 = {name: tree_cpu_s(pid) or 0.0 for name, pid in pids.items()}
        await asyncio.sleep(1.2)  # every process has written its counts since the warm-up
        before = command_counts(counts_dir)
        if pg is not None:
            await pg.run("SELECT pg_stat_statements_reset()")
        batch = complaints.take(n)
        ids = [k for k, _ in batch]
        t0 = time.monotonic()
        for key, value in batch:
            await producer.send(prefix + "complaint.received", value, key=key.encode())
        await producer.flush()
        say(f"published {n} complaints")
        registered_at = None
        last = 0.0
        while done(ids) < n and time.monotonic() - t0 < 600:
            await asyncio.sleep(0.5)
            registered = observer.registered_of(ids)
            if registered == n and registered_at is None:
                registered_at = time.monotonic() - t0
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                say(f"registered {registered}/{n}, investigated {observer.handled_of(ids)}/{n}")
        handled_at = time.monotonic() - t0
        handled = observer.handled_of(ids)
        say(f"all registered in {registered_at or float('nan'):.1f} s, {handled} investigated in "
            f"{handled_at:.1f} s; {settle:.0f} s more for the later stages")
        await asyncio.sleep(settle)
        cpu = {name: round((tree_cpu_s(pid) or 0.0) - cpu0[name], 1) for name, pid in pids.items()}
        await asyncio.sleep(1.2)
        after = command_counts(counts_dir)
        top = (await pg.run(STATEMENTS)).decode().splitlines() if pg is not None else []
    finally:
        await producer.stop()
        await observer.stop()
        await asyncio.to_thread(services.stop)
        await asyncio.to_thread(stack.stop)
    by_service: dict[str, dict[str, float]] = {}
    pid_names = {pid: name for name, pid in services.pids().items()} or {}
    for proc in services.procs:
        if proc.proc is not None:
            pid_names[proc.proc.pid] = proc.name
    for pid, counts in after.items():
        name = pid_names.get(pid)
        if name is None:
            continue
        old = before.get(pid, {})
        per = {k: round((v - old.get(k, 0)) / n, 2) for k, v in counts.items() if v - old.get(k, 0) > 0}
        by_service[name] = dict(sorted(per.items(), key=lambda kv: -kv[1]))
    return {"complaints": n, "registered_in_s": registered_at, "investigated": handled,
            "investigated_in_s": round(handled_at, 1), "settle_s": settle, "cpu_s": cpu,
            "commands_per_complaint": by_service,
            "statements": [dict(zip(("calls", "rows", "total_ms", "mean_ms", "query"), line.split("|", 4), strict=True))
                           for line in top if line.count("|") >= 4]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--complaints", type=int, default=2000)
    parser.add_argument("--port-base", type=int, default=16000)
    parser.add_argument("--services", default=",".join(SERVICES))
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--pg-statements", action="store_true",
                        help="FerretDB's PostgreSQL statements by total time (pg_stat_statements)")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.complaints, args.services.split(","), args.port_base, args.settle,
                             args.pg_statements))
    print(f"\n{result['complaints']} complaints: registered in {result['registered_in_s']:.1f} s, "
          f"investigated in {result['investigated_in_s']} s")
    print("CPU seconds (burst + settle): " + ", ".join(f"{k} {v}" for k, v in result["cpu_s"].items()))
    print("database commands per complaint:")
    for name, per in result["commands_per_complaint"].items():
        total = sum(per.values())
        print(f"  {name:22s} {total:5.2f}  " + ", ".join(f"{k} {v}" for k, v in per.items() if v >= 0.01))
    if result["statements"]:
        print("PostgreSQL statements by total time (calls, rows, total ms, mean ms, statement):")
        for st in result["statements"]:
            print(f"  {st['calls']:>7} {st['rows']:>8} {st['total_ms']:>7} {st['mean_ms']:>7}  {st['query'][:150]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
