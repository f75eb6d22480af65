"""The benchmark's own servers and service processes, on its own ports and stack directory.

The servers are started with ``deploy/local/stack.py`` (the same script as ``make demo``),
pointed by its environment variables at a fresh stack directory and ports of their own, so
a benchmark never touches the demo stack or the test servers. The services run as real
processes, ``python -m services.<name> worker`` / ``api --port N``, configured only through
their environment (``PARLEY_KAFKA_*``, ``PARLEY_MONGO_*``, ``PARLEY_NEGOTIATION_*``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.clone import Postgres

REPO = Path(__file__).resolve().parents[1]
STACK_SCRIPT = REPO / "deploy" / "local" / "stack.py"
WORKER_READY = "Worker]: Ready"


@dataclass
class Ports:
    """Every port the benchmark uses, from one base (default 19000, below the ephemeral range)."""

    base: int = 19000

    @property
    def kafka(self) -> int:
        return self.base + 92

    @property
    def controller(self) -> int:
        return self.base + 93

    @property
    def ferretdb(self) -> int:
        return self.base + 17

    @property
    def postgresql(self) -> int:
        return self.base + 432

    @property
    def negotiation(self) -> int:
        return self.base + 3


@dataclass
class Stack:
    """Kafka + FerretDB (+ PostgreSQL when the stack script runs it) for the benchmark only."""

    dir: Path
    ports: Ports
    say: object = print

    @property
    def env(self) -> dict[str, str]:
        """The environment ``deploy/local/stack.py`` reads, pointing at this stack."""
        # only the caller's choices of versions, cache and backend carry over: ports, stack
        # directory and an external PostgreSQL URL must not point this stack anywhere else
        keep = {"PARLEY_CACHE_DIR", "PARLEY_KAFKA_VERSION", "PARLEY_KAFKA_HEAP", "PARLEY_FERRETDB_VERSION",
                "PARLEY_FERRETDB_BACKEND", "PARLEY_POSTGRESQL_STATEMENTS"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_") or k in keep}
        env.update(
            PARLEY_STACK_DIR=str(self.dir),
            PARLEY_KAFKA_PORT=str(self.ports.kafka),
            PARLEY_KAFKA_CONTROLLER_PORT=str(self.ports.controller),
            PARLEY_FERRETDB_PORT=str(self.ports.ferretdb),
            PARLEY_FERRETDB_DEBUG_PORT="0",
            PARLEY_POSTGRESQL_PORT=str(self.ports.postgresql),
        )
        return env

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.ports.ferretdb}/"

    def _script(self, *args: str) -> None:
        proc = subprocess.run(
            [sys.executable, str(STACK_SCRIPT), *args], env=self.env, capture_output=True, text=True
        )
        for line in (proc.stdout + proc.stderr).splitlines():
            self.say(f"  {line}")  # type: ignore[operator]
        if proc.returncode != 0:
            raise RuntimeError(f"stack.py {' '.join(args)} failed ({proc.returncode})")

    def start(self) -> None:
        """Stop anything a previous benchmark left in this directory, wipe it, start fresh."""
        if self.dir.exists():
            stop_leftover_services(self.dir / "services", self.kafka_bootstrap)
            self._script("stop")
            shutil.rmtree(self.dir)
        self._script("start")

    def stop(self) -> None:
        self._script("stop")

    def server_pids(self) -> dict[str, int]:
        """The servers' main process ids, from the stack's pid files."""
        pids = {}
        for pidfile in sorted(self.dir.glob("*/pid")):
            try:
                pids[pidfile.parent.name] = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
        return pids

    def postgres(self) -> Postgres | None:
        """``bench.clone.Postgres`` for FerretDB's PostgreSQL backend, or None on another backend."""
        if self.ferretdb_backend() != "postgresql":
            return None
        from bench.clone import Postgres
        from deploy.local.stack import find_postgresql

        bindir = find_postgresql()
        return None if bindir is None else Postgres(bindir / "psql", "127.0.0.1", self.ports.postgresql)

    def ferretdb_backend(self) -> str:
        """``sqlite`` or ``postgresql``: what the running FerretDB was started with."""
        pid = self.server_pids().get("ferretdb")
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, TypeError):
            return "unknown"
        for arg in args:
            if arg.startswith(b"--handler="):
                return arg.split(b"=", 1)[1].decode()
        return "unknown"


@dataclass
class Service:
    """One service process."""

    service: str
    mode: str  # worker | api
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    started_at: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.service}-{self.mode}"

    def ready(self, min_alive: float) -> bool:
        """An API answers ``/health``; a worker logged faust's ready line or has lived ``min_alive`` s.

        A worker's real readiness is proven afterwards by the warm-up complaints going through.
        """
        if self.port:
            try:
                url = f"http://127.0.0.1:{self.port}/health"
                with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (local)
                    return resp.status == 200
            except OSError:
                return False
        assert self.log is not None
        if time.monotonic() - self.started_at >= min_alive:
            return True
        return WORKER_READY in self.log.read_text(errors="replace")


@dataclass
class Services:
    """The pipeline's processes for one run (own topic prefix and database prefix)."""

    stack: Stack
    names: list[str]
    topic_prefix: str
    db_prefix: str
    jwt_secret: str
    say: object = print
    procs: list[Service] = field(default_factory=list)
    #: more environment for every process (e.g. ``PARLEY_MONGO_COMMAND_COUNTS``)
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key in [k for k in env if k.startswith("PARLEY_") and k != "PARLEY_SHARED_DATA"]:
            del env[key]  # nothing from the caller's shell may point a service elsewhere
        env.update(
            PARLEY_ENVIRONMENT="development",
            PARLEY_KAFKA_BOOTSTRAP=self.stack.kafka_bootstrap,
            PARLEY_KAFKA_TOPIC_PREFIX=self.topic_prefix,
            PARLEY_MONGO_URL=self.stack.mongo_url,
            PARLEY_MONGO_DB_PREFIX=self.db_prefix,
            PARLEY_NEGOTIATION_JWT_SECRET=self.jwt_secret,
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 180, min_alive: float = 10) -> float:
        """Start every process at once and wait until all are ready; return the seconds taken."""
        logs = self.stack.dir / "services"
        logs.mkdir(parents=True, exist_ok=True)
        wanted: list[Service] = []
        for name in self.names:
            wanted.append(Service(name, "worker"))
            if name == "negotiation":
                wanted.append(Service(name, "api", self.stack.ports.negotiation))
        env = self.env()
        t0 = time.monotonic()
        for svc in wanted:
            svc.log = logs / f"{svc.name}.log"
            extra = ["--port", str(svc.port)] if svc.port else []
            with svc.log.open("ab") as log:
                svc.proc = subprocess.Popen(
                    [sys.executable, "-m", f"services.{svc.service}", svc.mode, *extra],
                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            svc.started_at = time.monotonic()
            (logs / f"{svc.name}.pid").write_text(f"{svc.proc.pid}\n")
            self.procs.append(svc)
        waiting = list(self.procs)
        while waiting:
            for svc in list(waiting):
                assert svc.proc is not None
                if svc.proc.poll() is not None:
                    tail = svc.log.read_text(errors="replace")[-3000:] if svc.log else ""
                    raise RuntimeError(f"{svc.name} exited with {svc.proc.returncode}:\n{tail}")
                if svc.ready(min_alive):
                    waiting.remove(svc)
                    self.say(f"  {svc.name} ready (pid {svc.proc.pid}, {time.monotonic() - t0:.0f} s)")  # type: ignore[operator]
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"not ready after {timeout:.0f} s: {[s.name for s in waiting]}")
            time.sleep(0.3)
        return time.monotonic() - t0

    def pids(self) -> dict[str, int]:
        return {s.name: s.proc.pid for s in self.procs if s.proc is not None and s.proc.poll() is None}

    def dead(self) -> list[str]:
        return [s.name for s in self.procs if s.proc is not None and s.proc.poll() is not None]

    def pause(self, keep: set[str]) -> list[str]:
        """SIGSTOP the workers of every service not in ``keep`` (APIs go on); the names paused.

        A stage measured alone on the 2-core machine gets the cores the other stages would
        take; its Kafka consumers miss their heartbeats and rejoin their groups on ``resume``,
        as after any stall.
        """
        paused = []
        for svc in self.procs:
            if svc.mode == "worker" and svc.service not in keep and svc.proc is not None and svc.proc.poll() is None:
                os.killpg(svc.proc.pid, signal.SIGSTOP)
                paused.append(svc.name)
        return paused

    def resume(self, names: list[str] | None = None) -> None:
        """SIGCONT the named processes (default: all)."""
        for svc in self.procs:
            if (names is None or svc.name in names) and svc.proc is not None and svc.proc.poll() is None:
                os.killpg(svc.proc.pid, signal.SIGCONT)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM every process (in parallel), SIGKILL what is still there after ``timeout``."""
        self.resume()  # a paused process would not see the SIGTERM
        for svc in self.procs:
            if svc.proc is not None and svc.proc.poll() is None:
                svc.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for svc in self.procs:
            if svc.proc is None:
                continue
            try:
                svc.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                svc.proc.kill()
                svc.proc.wait()


def stop_leftover_services(run_dir: Path, kafka_bootstrap: str) -> None:
    """SIGKILL service processes an interrupted benchmark left behind (by their pid files).

    Only a process that is ``python -m services.<name>`` pointed at this stack's Kafka.
    """
    for pidfile in run_dir.glob("*.pid"):
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        ours = f"PARLEY_KAFKA_BOOTSTRAP={kafka_bootstrap}".encode() in environ
        if b"-m\0services." in cmdline and ours:
            os.kill(pid, signal.SIGKILL)


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB, from /proc/<pid>/status (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc/*/stat's parent ids)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants, the reaped ones
    included (``cutime``/``cstime``), from /proc/<pid>/stat; None when it is gone."""
    tick = os.sysconf("SC_CLK_TCK")
    total, seen = 0, False
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            seen = True
        except (OSError, ValueError, IndexError):
            continue
    return total / tick if seen else None


def tree_pss_kib(pid: int) -> int | None:
    """Proportional set size of ``pid`` and its descendants in KiB (shared pages split, not repeated)."""
    total, seen = 0, False
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    seen = True
                    break
        except (OSError, ValueError):
            continue
    return total if seen else None
