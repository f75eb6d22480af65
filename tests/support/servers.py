"""Where the tests' Kafka and MongoDB come from, in this order:

1. environment variables naming existing servers (``PARLEY_TEST_KAFKA_BOOTSTRAP`` and
   ``PARLEY_TEST_MONGO_URL``);
2. testcontainers with the official ``apache/kafka`` and ``mongo`` images, when a Docker
   engine answers;
3. otherwise the project's local stack (``deploy/local/stack.py``: Kafka, PostgreSQL and
   FerretDB on PostgreSQL) on test ports, started once per test session from a fresh data
   directory and stopped at its end (see ``_stack_env`` for the variables).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.local import stack

REPO = Path(__file__).resolve().parents[2]
STACK_SCRIPT = REPO / "deploy" / "local" / "stack.py"




@dataclass
class Servers:
    """Addresses of the servers under test, and how to restart the broker if we can."""

    kafka_bootstrap: str
    mongo_url: str
    source: str
    restart_kafka: Callable[[], None] | None = None
    #: the local stack's PostgreSQL (FerretDB's backend), when it runs on one
    postgresql_port: int | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docker_answers() -> bool:
    """Whether a Docker engine answers (the client alone is not enough)."""
    if os.environ.get("PARLEY_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine here"
        return False


def _wait(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer within {timeout}s")


@contextmanager
def _containers() -> Iterator[Servers]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.mongodb import MongoDbContainer

    port = _free_port()
    kafka = (
        DockerContainer(os.environ.get("PARLEY_TEST_KAFKA_IMAGE", "apache/kafka:4.1.1"))
        .with_bind_ports(9092, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    mongo = MongoDbContainer(os.environ.get("PARLEY_TEST_MONGO_IMAGE", "mongo:7.0"))
    with kafka, mongo:
        _wait(lambda: stack.kafka_answers("127.0.0.1", port), "Kafka container")

        def restart() -> None:
            kafka.get_wrapped_container().restart()
            _wait(lambda: stack.kafka_answers("127.0.0.1", port), "Kafka container")

        yield Servers(f"127.0.0.1:{port}", mongo.get_connection_url(), "testcontainers", restart)


def _stack_env() -> dict[str, str]:
    """The environment ``stack.py`` gets for the test stack.

    Everything is set explicitly from the ``PARLEY_TEST_*`` variables, never inherited from
    the demo stack's ``PARLEY_*`` ones: the test stack's directory is wiped at the start of
    a session, so it must never be the demo's. Two sessions on one machine run side by side
    when each has its own ``PARLEY_TEST_STACK_DIR`` and ports.
    """
    # Test ports stay below Linux's ephemeral range (32768-60999): a client polling a port
    # in that range while nothing listens can connect to itself and keep the port busy.
    env = dict(os.environ)
    get = os.environ.get
    env["PARLEY_STACK_DIR"] = get("PARLEY_TEST_STACK_DIR") or str(REPO / ".parley" / "test-stack")
    env["PARLEY_KAFKA_PORT"] = get("PARLEY_TEST_KAFKA_PORT") or "29092"
    env["PARLEY_KAFKA_CONTROLLER_PORT"] = get("PARLEY_TEST_KAFKA_CONTROLLER_PORT") or "29093"
    env["PARLEY_FERRETDB_PORT"] = get("PARLEY_TEST_FERRETDB_PORT") or "29017"
    env["PARLEY_FERRETDB_DEBUG_PORT"] = "0"
    # FerretDB stores its data in the test stack's own PostgreSQL (the default backend);
    # PARLEY_TEST_FERRETDB_BACKEND=sqlite runs the tests on FerretDB's SQLite backend.
    env["PARLEY_FERRETDB_BACKEND"] = get("PARLEY_TEST_FERRETDB_BACKEND") or "postgresql"
    env["PARLEY_POSTGRESQL_PORT"] = get("PARLEY_TEST_POSTGRESQL_PORT") or "29432"
    env.pop("PARLEY_FERRETDB_POSTGRESQL_URL", None)
    env.setdefault("PARLEY_KAFKA_HEAP", "768m")
    return env


def _stack(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(STACK_SCRIPT), *args],
        env=_stack_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    return proc


@contextmanager
def _local_stack() -> Iterator[Servers]:
    env = _stack_env()
    started_here = _stack("status").returncode != 0
    if started_here:
        _stack("stop")
        shutil.rmtree(env["PARLEY_STACK_DIR"], ignore_errors=True)
        proc = _stack("start")
        if proc.returncode != 0:
            raise RuntimeError(f"local stack did not start:\n{proc.stdout}\n{proc.stderr}")

    def restart() -> None:
        proc = _stack("restart", "kafka")
        if proc.returncode != 0:
            raise RuntimeError(f"Kafka did not restart:\n{proc.stdout}\n{proc.stderr}")

    try:
        yield Servers(
            f"127.0.0.1:{env['PARLEY_KAFKA_PORT']}",
            f"mongodb://127.0.0.1:{env['PARLEY_FERRETDB_PORT']}/",
            "local",
            restart,
            int(env["PARLEY_POSTGRESQL_PORT"]) if env["PARLEY_FERRETDB_BACKEND"] == "postgresql" else None,
        )
    finally:
        if started_here and not os.environ.get("PARLEY_TEST_KEEP_STACK"):
            _stack("stop")


@contextmanager
def provide_servers() -> Iterator[Servers]:
    """Yield servers for a whole test session (see the module docstring for the order)."""
    kafka = os.environ.get("PARLEY_TEST_KAFKA_BOOTSTRAP")
    mongo = os.environ.get("PARLEY_TEST_MONGO_URL")
    if kafka and mongo:
        yield Servers(kafka, mongo, "env")
    elif docker_answers():
        with _containers() as servers:
            yield servers
    else:
        with _local_stack() as servers:
            yield servers


def psql_command(servers: Servers) -> list[str]:
    """``psql`` as the local stack's PostgreSQL superuser, on FerretDB's database (unaligned,
    tuples only); only when the stack runs a PostgreSQL of its own (``servers.postgresql_port``)."""
    bindir = stack.find_postgresql()
    assert bindir is not None and servers.postgresql_port is not None
    return [str(bindir / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
            "-p", str(servers.postgresql_port), "-U", stack.PG_SUPERUSER, "-d", stack.PG_DATABASE]


def psql(servers: Servers, sql: str) -> str:
    """Run ``sql`` with ``psql_command`` and return what it printed."""
    proc = subprocess.run([*psql_command(servers), "-c", sql], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def skip_unless_own_postgresql(servers: Servers) -> None:
    """Skip the test unless the local stack runs FerretDB on a PostgreSQL of its own."""
    if servers.source != "local" or servers.postgresql_port is None:
        pytest.skip("only the local stack runs FerretDB on a PostgreSQL of its own")
