"""Start, stop and inspect Parley's service processes on this machine (for ``make demo``).

Each service runs as ``python -m services.<name> worker`` and, where it has an HTTP face,
``python -m services.<name> api --port N``. Processes, pid files and logs live under
``PARLEY_RUN_DIR`` (default ``.parley/run``). Services are pointed at Kafka and MongoDB by
the usual ``PARLEY_KAFKA_*`` / ``PARLEY_MONGO_*`` environment variables (defaults: the local
stack). A service whose package has no ``__main__`` yet is skipped.

``start --workers N`` (or ``PARLEY_WORKERS=N``; default 1) runs N worker processes per
service in the service's one consumer group: ``intake-worker``, ``intake-worker-2``, ...,
each with its own pid and log file and ``PARLEY_WORKER_INDEX`` (1..N; it gives each its own
faust data directory). ``status --workers N`` expects N; ``stop`` stops every worker it
finds, whatever N they were started with.

A process that exits while starting is started once more (on a fresh database a service's
worker and API prepare it at the same moment, and the loser of that race may exit); a second
exit fails ``start``. The processes inherit this command's environment: ``parley simulate``
passes the accelerated clock (``PARLEY_CLOCK_*``) and short timer intervals that way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get("PARLEY_RUN_DIR", REPO / ".parley" / "run"))


@dataclass(frozen=True)
class Proc:
    """One service process."""

    service: str
    mode: str  # worker | api
    port: int | None = None
    index: int = 1  # which of the service's workers (1..N)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.mode}" + (f"-{self.index}" if self.index > 1 else "")

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, PARLEY_WORKER_INDEX=str(self.index))

    @property
    def args(self) -> list[str]:
        extra = ["--port", str(self.port)] if self.port else []
        return [sys.executable, "-m", f"services.{self.service}", self.mode, *extra]

    @property
    def pidfile(self) -> Path:
        return RUN_DIR / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return RUN_DIR / f"{self.name}.log"

    def available(self) -> bool:
        return (REPO / "services" / self.service / "__main__.py").exists()


PROCS = [
    Proc("intake", "worker"),
    Proc("intake", "api", int(os.environ.get("PARLEY_INTAKE_PORT", "8001"))),
    Proc("investigation", "worker"),
    Proc("investigation", "api", int(os.environ.get("PARLEY_INVESTIGATION_PORT", "8002"))),
    Proc("negotiation", "worker"),
    Proc("negotiation", "api", int(os.environ.get("PARLEY_NEGOTIATION_PORT", "8003"))),
    Proc("followup", "worker"),
    Proc("followup", "api", int(os.environ.get("PARLEY_FOLLOWUP_PORT", "8004"))),
    Proc("supervision", "worker"),
    Proc("supervision", "api", int(os.environ.get("PARLEY_SUPERVISION_PORT", "8005"))),
]


def default_workers() -> int:
    """Worker processes per service unless told: ``PARLEY_WORKERS`` or 1."""
    return int(os.environ.get("PARLEY_WORKERS") or 1)


def procs(workers: int = 1) -> list[Proc]:
    """Every process to run with ``workers`` workers per service (APIs once each)."""
    out: list[Proc] = []
    for proc in PROCS:
        out.append(proc)
        if proc.mode == "worker":
            out.extend(replace(proc, index=i) for i in range(2, workers + 1))
    return out


def _found() -> list[Proc]:
    """Workers with a pid file beyond those ``procs`` knows (started with a larger N)."""
    known = {(p.service, p.mode) for p in PROCS}
    extra = []
    for pidfile in sorted(RUN_DIR.glob("*-worker-*.pid")):
        service, _, index = pidfile.stem.rpartition("-worker-")
        if (service, "worker") in known and index.isdigit() and int(index) > 1:
            extra.append(Proc(service, "worker", index=int(index)))
    return extra


def _with_found(listed: list[Proc]) -> list[Proc]:
    names = {p.name for p in listed}
    return listed + [p for p in _found() if p.name not in names]


def _pid(proc: Proc) -> int | None:
    try:
        pid = int(proc.pidfile.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    try:
        if f"services.{proc.service}".encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    except OSError:
        pass
    return pid


def _ready(proc: Proc) -> bool:
    if proc.port:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{proc.port}/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False
    try:
        return "Worker]: Ready" in proc.logfile.read_text(errors="replace").rsplit("==== start", 1)[-1]
    except OSError:
        return False


async def _ensure_topics() -> None:
    from shared.kafka import ensure_topics
    from shared.settings import KafkaSettings

    await ensure_topics(KafkaSettings())


def _spawn(proc: Proc) -> subprocess.Popen[bytes]:
    """Start one process, its output appended to its log, its pid in its pid file."""
    with proc.logfile.open("ab") as log:
        log.write(f"\n==== start {time.strftime('%Y-%m-%dT%H:%M:%S')} ====\n".encode())
        p = subprocess.Popen(
            proc.args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, env=proc.env,
        )
    proc.pidfile.write_text(str(p.pid))
    return p


def start(timeout: float = 120, workers: int = 1) -> int:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    asyncio.run(_ensure_topics())
    print("[services] topic catalogue ensured" + (f"; {workers} workers per service" if workers > 1 else ""))
    started = []
    children: dict[str, subprocess.Popen[bytes]] = {}
    for proc in procs(workers):
        if not proc.available():
            continue
        if _pid(proc):
            print(f"[services] {proc.name} already running (pid {_pid(proc)})")
            continue
        children[proc.name] = _spawn(proc)
        started.append(proc)
    deadline = time.monotonic() + timeout
    waiting = list(started)
    retried: set[str] = set()
    while waiting and time.monotonic() < deadline:
        for proc in list(waiting):
            if _ready(proc):
                print(f"[services] {proc.name} ready" + (f" on http://127.0.0.1:{proc.port}" if proc.port else ""))
                waiting.remove(proc)
            elif children[proc.name].poll() is not None:
                # our own child: poll() is the truth (right after the fork, /proc/<pid>/cmdline
                # still shows this script, which once made a starting service look dead)
                code = children[proc.name].returncode
                if proc.name not in retried:
                    # once: on a fresh database a service's worker and API prepare it at the same
                    # moment, and the loser of a race may exit (seen: a duplicate key on first start)
                    retried.add(proc.name)
                    print(f"[services] {proc.name} exited while starting (code {code}); starting it once more "
                          f"(see {proc.logfile})", file=sys.stderr)
                    children[proc.name] = _spawn(proc)
                    continue
                print(f"[services] {proc.name} exited (code {code}); see {proc.logfile}", file=sys.stderr)
                return 1
        time.sleep(0.5)
    if waiting:
        print(f"[services] not ready in {timeout:.0f}s: {[p.name for p in waiting]}", file=sys.stderr)
        return 1
    return 0


def stop(timeout: float = 30) -> int:
    """SIGTERM every running process (all workers, however many), then SIGKILL after ``timeout``."""
    running: dict[str, tuple[Proc, int]] = {}
    for proc in reversed(_with_found(procs(1))):
        pid = _pid(proc)
        if pid is None:
            proc.pidfile.unlink(missing_ok=True)
            continue
        os.kill(pid, signal.SIGTERM)
        running[proc.name] = (proc, pid)
    deadline = time.monotonic() + timeout
    while running:
        for name, (proc, pid) in list(running.items()):
            if _pid(proc) is None:
                proc.pidfile.unlink(missing_ok=True)
                print(f"[services] {name} stopped")
                del running[name]
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                proc.pidfile.unlink(missing_ok=True)
                print(f"[services] {name} killed (no exit {timeout:.0f}s after SIGTERM)")
                del running[name]
        time.sleep(0.2)
    return 0


def status(workers: int = 1) -> int:
    ok = True
    for proc in _with_found(procs(workers)):
        if not proc.available():
            print(f"{proc.name:22} not built yet")
            continue
        pid = _pid(proc)
        up = bool(pid) and _ready(proc)
        ok &= up
        where = f"http://127.0.0.1:{proc.port}" if proc.port else ""
        print(f"{proc.name:22} {'up' if up else 'down':5} pid={pid or '-':<8} {where:24} log={proc.logfile}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.services")
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument(
        "--workers", type=int, default=default_workers(), metavar="N",
        help="worker processes per service, in one consumer group (default: $PARLEY_WORKERS or 1); "
        "stop stops all of them whatever N",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.command == "start":
        return start(workers=args.workers)
    if args.command == "status":
        return status(workers=args.workers)
    return stop()


if __name__ == "__main__":
    sys.exit(main())
