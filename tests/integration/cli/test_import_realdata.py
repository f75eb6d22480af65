"""The issue's "done when": ``parley import`` of the shared data's Chinese train split registers
every row exactly once, twice in a row, through a real intake worker."""

from __future__ import annotations

import asyncio
import csv
import time
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

from deploy.cli.main import app
from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from tests.support.kafka import group_caught_up
from tests.support.processes import WORKER_READY, service_env, start_service

pytestmark = pytest.mark.integration

runner = CliRunner()
GROUP_SUFFIX = "parley-intake"  # intake worker's consumer group, after the topic prefix
TRAIN = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "complaints-zh" / "train.csv"


async def _counts(settings: CommonSettings) -> tuple[int, int]:
    client: AsyncMongoClient = AsyncMongoClient(settings.mongo.url)
    try:
        db = client[settings.mongo.database("intake")]
        return await db["complaints"].count_documents({}), await db["cases"].count_documents({})
    finally:
        await client.close()


def _wait_for(settings: CommonSettings, n: int, timeout: float) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    counts = (0, 0)
    while time.monotonic() < deadline:
        counts = asyncio.run(_counts(settings))
        if counts[0] >= n:
            return counts
        time.sleep(2)
    return counts


@pytest.mark.timeout(600)
@pytest.mark.skipif(not TRAIN.exists(), reason="the shared data is not here")
def test_train_split_registered_exactly_once_twice(cli_env: CommonSettings, tmp_path: Path, mongo_client) -> None:
    with TRAIN.open(encoding="utf-8", newline="") as fh:
        rows = sum(1 for r in csv.reader(fh) if r and r[0].strip() and len(r[0]) <= 20_000)
    asyncio.run(ensure_topics(cli_env.kafka))
    worker = start_service("services.intake", ["worker", "-l", "info"],
                           service_env(cli_env, PARLEY_INTAKE_DATADIR=str(tmp_path / "faust")),
                           tmp_path / "worker.log", ready_text=WORKER_READY)
    try:
        first = runner.invoke(app, ["import", str(TRAIN), "-q", "--rejects", str(tmp_path / "rejects.jsonl")])
        assert first.exit_code == 0, first.output
        assert f"{rows} published" in first.output
        assert _wait_for(cli_env, rows, 420) == (rows, rows)
        # twice in a row: a plain re-run sends nothing (the ledger), and a forced one is deduplicated by intake
        second = runner.invoke(app, ["import", str(TRAIN), "-q", "--rejects", str(tmp_path / "rejects.jsonl")])
        assert f"0 published, {rows} already published before" in second.output, second.output
        forced = runner.invoke(app, ["import", str(TRAIN), "-q", "--republish", "--from-line", "1",
                                     "--rejects", str(tmp_path / "rejects2.jsonl")])
        assert forced.exit_code == 0 and f"{rows} published" in forced.output, forced.output
        deadline = time.monotonic() + 300
        while not asyncio.run(group_caught_up(cli_env, f"{cli_env.kafka.topic_prefix}{GROUP_SUFFIX}",
                                              "complaint.received")):
            assert time.monotonic() < deadline, "the intake worker did not get through the repeats"
            time.sleep(2)
        assert asyncio.run(_counts(cli_env)) == (rows, rows)
    finally:
        worker.stop()
