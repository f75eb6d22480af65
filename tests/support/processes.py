"""Run a service as a real process against the test servers, as production runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from deploy.local.services import Proc
from shared.settings import CommonSettings
from tests.support.servers import REPO


def service_env(settings: CommonSettings, **extra: str) -> dict[str, str]:
    """Environment that points a service process at this test's servers and names."""
    k, m = settings.kafka, settings.mongo
    env = dict(
        os.environ,
        PARLEY_ENVIRONMENT="test",
        PARLEY_KAFKA_BOOTSTRAP=k.bootstrap,
        PARLEY_KAFKA_TOPIC_PREFIX=k.topic_prefix,
        PARLEY_KAFKA_PARTITIONS=str(k.partitions),
        PARLEY_KAFKA_SESSION_TIMEOUT_S=str(k.session_timeout_s),
        PARLEY_KAFKA_REBALANCE_TIMEOUT_S=str(k.rebalance_timeout_s),
        PARLEY_KAFKA_HEARTBEAT_INTERVAL_S=str(k.heartbeat_interval_s),
        PARLEY_MONGO_URL=m.url,
        PARLEY_MONGO_DB_PREFIX=m.db_prefix,
    )
    env.update(extra)
    return env


class ServiceProcess:
    """A started service process with its log file."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to commit or flush anything."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_service(
    module: str,
    args: list[str],
    env: dict[str, str],
    log: Path,
    *,
    ready_text: str | None = None,
    ready_url: str | None = None,
    timeout: float = 120,
) -> ServiceProcess:
    """Start ``python -m <module> <args>`` and wait until it is ready.

    Ready means ``ready_text`` appeared in its log (a faust worker logs ``Worker]: Ready``)
    or ``ready_url`` answered 200.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    service = ServiceProcess(proc, log)
    start_size = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{module} {args} exited with {proc.returncode}:\n{service.log_text()[-4000:]}")
        if ready_text and ready_text in service.log_text()[start_size:]:
            return service
        if ready_url:
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as resp:
                    if resp.status == 200:
                        return service
            except OSError:
                pass
        time.sleep(0.3)
    service.stop()
    raise AssertionError(f"{module} {args} not ready after {timeout}s:\n{service.log_text()[-4000:]}")


@contextmanager
def running_service(
    module: str, args: list[str], env: dict[str, str], log: Path, **kwargs: object
) -> Iterator[ServiceProcess]:
    """Context manager around ``start_service`` that always stops the process."""
    service = start_service(module, args, env, log, **kwargs)  # type: ignore[arg-type]
    try:
        yield service
    finally:
        service.stop()


WORKER_READY = "Worker]: Ready"


def start_worker(service: str, index: int, env: dict[str, str], logs: Path, *,
                 timeout: float = 300) -> ServiceProcess:
    """Start worker ``index`` of ``service`` as the local runner does (``python -m
    services.<service> worker`` with ``PARLEY_WORKER_INDEX``, its own log in ``logs``) and
    wait until faust says it is ready."""
    return start_service(f"services.{service}", ["worker", "-l", "info"],
                         dict(env, PARLEY_WORKER_INDEX=str(index)),
                         logs / f"{Proc(service, 'worker', index=index).name}.log", ready_text=WORKER_READY,
                         timeout=timeout)


def start_workers(workers: Iterable[tuple[str, int]], env: dict[str, str], logs: Path, *,
                  timeout: float = 300) -> list[ServiceProcess]:
    """Start several ``(service, index)`` workers at once (their start-ups overlap) and
    return them in the given order once all are ready; if one fails, stop the others."""
    wanted = list(workers)
    with ThreadPoolExecutor(max(1, len(wanted))) as pool:
        futures = [pool.submit(start_worker, s, i, env, logs, timeout=timeout) for s, i in wanted]
        started = [f.result() for f in futures if f.exception() is None]
        failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        for worker in started:
            worker.stop()
        raise failed[0]  # type: ignore[misc]
    return started


def stop_all(processes: Iterable[ServiceProcess], timeout: float = 60) -> None:
    """Stop several processes at once (SIGTERM to all, then wait; SIGKILL what outlives
    ``timeout``): a faust worker takes seconds to leave its group, so one by one adds up."""
    alive = [p for p in processes if p.proc.poll() is None]
    for p in alive:
        p.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in alive:
        try:
            p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait()
