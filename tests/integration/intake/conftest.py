"""Fixtures for intake's integration tests: settings, the repository, worker and API processes."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.intake.repository import IntakeRepository
from services.intake.settings import Settings
from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from tests.support.processes import WORKER_READY, ServiceProcess, service_env, start_service


@pytest.fixture
def intake_settings(settings: CommonSettings) -> Settings:
    """Intake settings on this test's servers, topics and database."""
    return Settings(environment="test", kafka=settings.kafka, mongo=settings.mongo, relay_interval_s=1.0)


@pytest.fixture
async def repo(
    intake_settings: Settings, mongo_client: AsyncMongoClient[Any]
) -> AsyncIterator[IntakeRepository]:
    """Intake's repository on this test's database, with its indexes."""
    await ensure_topics(intake_settings.kafka)
    repository = IntakeRepository(mongo_client[intake_settings.mongo.database("intake")])
    await repository.ensure_indexes()
    yield repository


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def processes(
    settings: CommonSettings, tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start intake processes (``worker`` or ``api``); all are stopped at the end of the test."""
    started: list[ServiceProcess] = []

    def start(mode: str, *, log_name: str | None = None, **env: str) -> ServiceProcess:
        environment = service_env(
            settings, PARLEY_INTAKE_RELAY_INTERVAL_S="3", PARLEY_INTAKE_DATADIR=str(tmp_path / "faust"), **env
        )
        log = tmp_path / f"{log_name or mode}.log"
        if mode == "worker":
            proc = start_service("services.intake", ["worker", "-l", "info"], environment, log,
                                 ready_text=WORKER_READY)
        else:
            port = _free_port()
            proc = start_service("services.intake", ["api", "--port", str(port)], environment, log,
                                 ready_url=f"http://127.0.0.1:{port}/health")
            proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()
