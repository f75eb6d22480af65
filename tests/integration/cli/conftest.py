"""Point the ``parley`` command line at this test's servers, topic prefix and var directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import CommonSettings


@pytest.fixture
def cli_env(settings: CommonSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CommonSettings:
    monkeypatch.setenv("PARLEY_KAFKA_BOOTSTRAP", settings.kafka.bootstrap)
    monkeypatch.setenv("PARLEY_KAFKA_TOPIC_PREFIX", settings.kafka.topic_prefix)
    monkeypatch.setenv("PARLEY_KAFKA_PARTITIONS", str(settings.kafka.partitions))
    monkeypatch.setenv("PARLEY_MONGO_URL", settings.mongo.url)
    monkeypatch.setenv("PARLEY_MONGO_DB_PREFIX", settings.mongo.db_prefix)
    monkeypatch.setenv("PARLEY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("PARLEY_DLQ_REPLAYS", raising=False)
    from deploy.cli import common

    monkeypatch.setattr(common.console, "width", 240)  # tables on one line each, for the asserts
    return settings
