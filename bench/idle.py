"""What the pipeline burns while idle: CPU per process and requests per minute, no complaints flowing.

    python -m bench.idle [--window 120] [--port-base 16000] [--services intake,...] [--pg-statements]
                         [--profile SECONDS] [--service-env NAME=VALUE ...]

Brings up the same stack and service processes as ``bench.burst`` (its own Kafka + PostgreSQL +
FerretDB in ``.parley/burst-stack-<port base>``), sends 20 warm-up complaints through, stops the
harness's own Kafka clients, waits ``--settle`` seconds for the later stages, then measures over
``--window`` seconds with nothing flowing:

- the CPU seconds each process used, per minute (``tree_cpu_s``: a server's child processes,
  e.g. PostgreSQL's backends, included);
- each service's database commands per minute, by command and collection
  (``PARLEY_MONGO_COMMAND_COUNTS``);
- the TCP data segments each process sent to Kafka, FerretDB and PostgreSQL, per minute (``ss -ti``
  on its connections: a request that fits one segment — every idle poll, heartbeat and query —
  is one segment), which says which client drives each server;
- Kafka's CPU by thread (JIT compiler, request handlers, network, controller...);
- with ``--pg-statements``, FerretDB's PostgreSQL statements by calls.

With ``--profile SECONDS`` it then records each service process with py-spy (after the
measurement, so py-spy's own cost is not in it) into ``<stack>/profiles/<name>.txt`` (raw
folded stacks). A diagnostic, not a benchmark; it takes about 2 minutes plus the window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.burst import SERVICES, STATEMENTS, bring_up, command_counts
from bench.data import Complaints
from bench.observe import Observer
from bench.stack import REPO, Services, children, tree_cpu_s

PY_SPY = Path(os.environ.get("PY_SPY", REPO / ".venv" / "bin" / "py-spy"))


def say(line: str, start: float = time.monotonic()) -> None:
    print(f"[idle {time.monotonic() - start:6.1f}s] {line}", flush=True)


_CLIENT = re.compile(r'"([^"]*)",pid=(\d+)')
_SEGS = re.compile(r"\bdata_segs_out:(\d+)")


def segments_out(server_ports: dict[int, str]) -> dict[tuple[int, str, str], int]:
    """TCP data segments sent so far on each established connection to one of ``server_ports``,
    summed by (client process id, its command name, server name) (``ss -tinp``)."""
    out = subprocess.run(["ss", "-tinpH", "state", "established"], capture_output=True, text=True).stdout
    totals: dict[tuple[int, str, str], int] = {}
    lines = out.splitlines()
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) < 5 or i + 1 >= len(lines):
            continue
        try:
            peer_port = int(fields[3].rsplit(":", 1)[1])
        except (ValueError, IndexError):
            continue
        server = server_ports.get(peer_port)
        pid = _CLIENT.search(line)
        segs = _SEGS.search(lines[i + 1])
        if server is None or pid is None or segs is None:
            continue
        key = (int(pid.group(2)), pid.group(1), server)
        totals[key] = totals.get(key, 0) + int(segs.group(1))
    return totals


def thread_cpu(pid: int) -> dict[str, int]:
    """Clock ticks used so far by each thread of ``pid``, summed by thread name with its digits
    taken out (a JVM's ``data-plane-kafka-request-handler-3`` counts as ``...-N``)."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = re.sub(r"\d+", "N", (task / "comm").read_text().strip())
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the thread ended
        out[name] = out.get(name, 0) + int(fields[11]) + int(fields[12])
    return out


def per_minute(before: dict[Any, int], after: dict[Any, int], seconds: float) -> dict[Any, float]:
    """Growth per minute of each counter (a connection opened meanwhile counts from 0)."""
    return {k: round((v - before.get(k, 0)) * 60 / seconds, 1) for k, v in after.items()
            if v - before.get(k, 0) > 0}


async def profile(services: Services, directory: Path, seconds: float) -> dict[str, Path]:
    """py-spy record every service process at once for ``seconds``; the raw output files by name."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    procs, files = [], {}
    for name, pid in services.pids().items():
        files[name] = directory / f"{name}.txt"
        procs.append(await asyncio.create_subprocess_exec(
            str(PY_SPY), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50", "-f", "raw",
            "-o", str(files[name]), "--nonblocking", "--subprocesses",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for proc in procs:
        await proc.wait()
    return {k: v for k, v in files.items() if await asyncio.to_thread(v.exists)}


def top_frames(path: Path, n: int = 12) -> list[tuple[float, str]]:
    """The leaf-most frames of interest in a raw py-spy file, by share of samples, idle excluded.

    A sample's own frame is its last; samples in ``select``/``epoll`` (waiting) are counted as
    idle and left out of the shares.
    """
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        if re.search(r"\b(select|poll|epoll|_run_once \(asyncio)", leaf) and "base_events" not in leaf:
            continue
        total += int(count)
        # name the sample by the innermost project or library frame under the event loop
        interesting = [f for f in frames if "/shared/" in f or "/services/" in f]
        label = interesting[-1] if interesting else " <- ".join(reversed(frames[-3:]))
        own[label] = own.get(label, 0) + int(count)
    return [(round(100 * c / total, 1), k) for k, c in sorted(own.items(), key=lambda kv: -kv[1])[:n]] if total else []


async def run(names: list[str], port_base: int, window: float, settle: float, statements: bool = False,
              profile_s: float = 0.0, service_env: dict[str, str] | None = None) -> dict[str, Any]:
    up = await bring_up(names, port_base, statements, say)
    up.services.extra_env.update(service_env or {})
    stack, services, pg, counts_dir, run_id, prefix = up.stack, up.services, up.pg, up.counts_dir, up.run_id, up.prefix
    say(f"starting {', '.join(names)}")
    profiles: dict[str, list[tuple[float, str]]] = {}
    try:
        await asyncio.to_thread(services.start)
        observer = Observer(stack.kafka_bootstrap, prefix)
        await observer.start()
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, linger_ms=20)
        await producer.start()
        try:
            warm = Complaints(run_id).take(20)
            for key, value in warm:
                await producer.send(prefix + "complaint.received", value, key=key.encode())
            await producer.flush()
            t = time.monotonic()
            done = observer.handled_of if "investigation" in names else observer.registered_of
            while done([k for k, _ in warm]) < len(warm) and time.monotonic() - t < 180:  # noqa: ASYNC110 - polls what the observer saw
                await asyncio.sleep(0.5)
            say(f"warm-up: {done([k for k, _ in warm])}/20 complaints through in {time.monotonic() - t:.1f} s")
        finally:  # the harness's clients would poll Kafka through the window
            await producer.stop()
            await observer.stop()
        say(f"settling {settle:.0f} s, then measuring {window:.0f} s idle")
        await asyncio.sleep(settle)
        pids = {**services.pids(), **stack.server_pids()}
        ports = {stack.ports.kafka: "kafka", stack.ports.ferretdb: "ferretdb",
                 stack.ports.postgresql: "postgresql"}
        cpu0 = {name: tree_cpu_s(pid) or 0.0 for name, pid in pids.items()}
        segs0 = segments_out(ports)
        threads0 = thread_cpu(pids["kafka"]) if "kafka" in pids else {}
        counts0 = command_counts(counts_dir)
        if pg is not None:
            await pg.run("SELECT pg_stat_statements_reset()")
        t0 = time.monotonic()
        await asyncio.sleep(window)
        seconds = time.monotonic() - t0
        cpu = {name: round(((tree_cpu_s(pid) or 0.0) - cpu0[name]) * 60 / seconds, 2) for name, pid in pids.items()}
        segs = per_minute(segs0, segments_out(ports), seconds)
        tick = os.sysconf("SC_CLK_TCK")
        kafka_threads = {k: round(v / tick, 2) for k, v in per_minute(
            threads0, thread_cpu(pids["kafka"]) if "kafka" in pids else {}, seconds).items()}
        named = {pid: name for name, pid in pids.items()}  # a process by its own or its parent's name
        owner = {child: named[pid] for pid in named for child in children(pid)} | named
        counts1 = command_counts(counts_dir)
        top = (await pg.run(STATEMENTS.replace("total_exec_time DESC", "calls DESC"))).decode().splitlines() \
            if pg is not None else []
        say(f"measured {seconds:.0f} s")
        if profile_s > 0:
            say(f"profiling every service process for {profile_s:.0f} s (py-spy)")
            for name, path in (await profile(services, stack.dir / "profiles", profile_s)).items():
                profiles[name] = top_frames(path)
    finally:
        await asyncio.to_thread(services.stop)
        await asyncio.to_thread(stack.stop)
    commands: dict[str, dict[str, float]] = {}
    for pid, counts in counts1.items():
        if pid in named:
            per = per_minute(counts0.get(pid, {}), counts, seconds)
            commands[named[pid]] = dict(sorted(per.items(), key=lambda kv: -kv[1]))
    segments: dict[str, dict[str, float]] = {}
    for (pid, command, server), rate in segs.items():
        name = owner.get(pid, f"{command} (pid {pid})")
        segments.setdefault(name, {})[server] = segments.get(name, {}).get(server, 0) + rate
    return {"window_s": round(seconds, 1), "settle_s": settle, "cpu_s_per_min": cpu,
            "commands_per_min": commands, "segments_per_min": segments, "profiles": profiles,
            "kafka_threads_cpu_s_per_min": dict(sorted(kafka_threads.items(), key=lambda kv: -kv[1])),
            "statements": [dict(zip(("calls", "rows", "total_ms", "mean_ms", "query"), line.split("|", 4), strict=True))
                           for line in top if line.count("|") >= 4]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--window", type=float, default=120.0, help="seconds measured idle")
    parser.add_argument("--port-base", type=int, default=16000)
    parser.add_argument("--services", default=",".join(SERVICES))
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after the warm-up before measuring")
    parser.add_argument("--pg-statements", action="store_true",
                        help="FerretDB's PostgreSQL statements by calls (pg_stat_statements)")
    parser.add_argument("--service-env", action="append", default=[], metavar="NAME=VALUE",
                        help="more environment for every service process (to compare a setting)")
    parser.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                        help="afterwards, py-spy every service process this long")
    args = parser.parse_args(argv)
    if args.profile and not shutil.which(str(PY_SPY)):
        parser.error(f"--profile needs py-spy at {PY_SPY}")
    if any("=" not in pair for pair in args.service_env):
        parser.error("--service-env takes NAME=VALUE")
    result = asyncio.run(run(args.services.split(","), args.port_base, args.window, args.settle,
                             args.pg_statements, args.profile, dict(p.split("=", 1) for p in args.service_env)))
    cpu = result["cpu_s_per_min"]
    print(f"\nidle {result['window_s']} s, after a 20-complaint warm-up and {result['settle_s']:.0f} s settling"
          + (f" (services with {' '.join(args.service_env)})" if args.service_env else ""))
    print(f"CPU seconds per minute (total {sum(cpu.values()):.1f}): "
          + ", ".join(f"{k} {v}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])))
    print("Kafka's threads, CPU seconds per minute: " + ", ".join(
        f"{k} {v}" for k, v in list(result["kafka_threads_cpu_s_per_min"].items())[:8]))
    print("database commands per minute:")
    for name, per in result["commands_per_min"].items():
        print(f"  {name:22s} {sum(per.values()):6.1f}  " + ", ".join(f"{k} {v}" for k, v in per.items()))
    print("TCP segments sent per minute, by client process and server:")
    for name, per in sorted(result["segments_per_min"].items()):
        print(f"  {name:22s} " + ", ".join(f"{k} {v}" for k, v in sorted(per.items())))
    if result["statements"]:
        print("PostgreSQL statements by calls (calls, rows, total ms, mean ms, statement):")
        for st in result["statements"]:
            print(f"  {st['calls']:>7} {st['rows']:>8} {st['total_ms']:>7} {st['mean_ms']:>7}  {st['query'][:150]}")
    for name, frames in result["profiles"].items():
        print(f"py-spy {name} (share of non-waiting samples, innermost project frame):")
        for share, frame in frames:
            with contextlib.suppress(Exception):
                print(f"  {share:5.1f}%  {frame[:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
