"""``parley import`` on the real test Kafka: rejects with line and field, nothing new on re-run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.cli.main import app
from shared.kafka import ensure_topics
from shared.settings import CommonSettings
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration

runner = CliRunner()

GOOD = {"channel": "app", "received_at": "2026-01-05T10:00:00+08:00", "customer": {"customer_id": "c1"},
        "product": "credit_card", "text": "年费被乱收，客服不处理"}


def _count(settings: CommonSettings) -> list:
    return asyncio.run(read_all(settings, "complaint.received"))


def test_import_jsonl_rejects_and_rerun(cli_env: CommonSettings, tmp_path: Path) -> None:
    asyncio.run(ensure_topics(cli_env.kafka, ["complaint.received"]))
    f = tmp_path / "backlog.jsonl"
    f.write_text("\n".join([
        json.dumps(dict(GOOD, channel_complaint_id="K1")),
        json.dumps(GOOD),  # no id: derived from the file name and line 2
        json.dumps(dict(GOOD, product="yacht")),
        json.dumps(dict(GOOD, customer={})),
        json.dumps(GOOD, ensure_ascii=False),
    ]) + "\n", encoding="utf-8")
    rejects = tmp_path / "rejects.jsonl"
    first = runner.invoke(app, ["import", str(f), "--rejects", str(rejects), "-q"])
    assert first.exit_code == 0, first.output
    assert "3 published" in first.output and "2 rejected" in first.output
    bad = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [(b["line"], [e["field"] for e in b["errors"]]) for b in bad] == [
        (3, ["product"]), (4, ["customer.customer_id"])]
    records = _count(cli_env)
    assert sorted(r.key.decode() for r in records) == sorted(["K1", "IMP-backlog-" + _h(f) + "-L2",
                                                               "IMP-backlog-" + _h(f) + "-L5"])
    value = json.loads(next(r.value for r in records if r.key == b"K1"))
    assert value["channel_complaint_id"] == "K1" and value["text"] == GOOD["text"]

    again = runner.invoke(app, ["import", str(f), "--rejects", str(rejects), "-q"])
    assert again.exit_code == 0, again.output
    assert "0 published, 3 already published before, 2 rejected" in again.output
    assert len(_count(cli_env)) == 3
    assert len(rejects.read_text(encoding="utf-8").splitlines()) == 2  # this run's rejects


def test_import_resumes_from_line(cli_env: CommonSettings, tmp_path: Path) -> None:
    asyncio.run(ensure_topics(cli_env.kafka, ["complaint.received"]))
    f = tmp_path / "train.csv"
    f.write_text("".join(f"信用卡年费第{i}次被乱扣,3\n" for i in range(1, 11)), encoding="utf-8")
    result = runner.invoke(app, ["import", str(f), "--from-line", "6", "-q"])
    assert result.exit_code == 0, result.output
    assert "5 published" in result.output and "5 before --from-line" in result.output
    result = runner.invoke(app, ["import", str(f), "-q", "--batch", "3"])
    assert "5 published, 5 already published before" in result.output
    keys = sorted(int(r.key.decode().rsplit("-L", 1)[1]) for r in _count(cli_env))
    assert keys == list(range(1, 11))


def test_import_needs_the_topic(cli_env: CommonSettings, tmp_path: Path) -> None:
    f = tmp_path / "b.jsonl"
    f.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["import", str(f), "-q"])
    assert result.exit_code == 1
    assert "parley services up" in result.output


def _h(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.name.encode()).hexdigest()[:6]
