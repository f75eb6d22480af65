"""``parley dlq list|show|replay`` on the real test Kafka (and a stored body in the test database)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from deploy.cli.main import app
from shared.kafka import ensure_topics
from shared.kafka.dlq import DeadLetter, MongoDeadLetterStore, dead_letter_headers
from shared.mongo import make_client
from shared.settings import CommonSettings
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration

runner = CliRunner()
SECRET_TEXT = "张三 13800138000 身份证 110101199003071234"


async def _dead_letter(settings: CommonSettings) -> None:
    await ensure_topics(settings.kafka, ["complaint.received", "complaint.received.dlq"])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
    await producer.start()
    try:
        headers = dead_letter_headers(reason="product: Input should be 'credit_card', ...",
                                      errors=[{"field": "product", "problem": "not a product"}],
                                      error_type="InvalidMessage", consumer="intake-worker",
                                      source_topic="complaint.received", partition=2, offset=41, attempts=1)
        value = json.dumps({"text": SECRET_TEXT, "product": "yacht"}, ensure_ascii=False).encode()
        await producer.send_and_wait(settings.kafka.topic("complaint.received.dlq"), key=b"K-DLQ-1",
                                     value=value, headers=headers, partition=0)
    finally:
        await producer.stop()


def _replayed(settings: CommonSettings) -> list:
    records = asyncio.run(read_all(settings, "complaint.received"))
    return [r for r in records if dict(r.headers).get("replayed_from")]


def test_list_show_replay_once(cli_env: CommonSettings, tmp_path: Path) -> None:
    asyncio.run(_dead_letter(cli_env))

    listed = runner.invoke(app, ["dlq", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    items = [json.loads(line) for line in listed.output.splitlines()]
    assert len(items) == 1
    item = items[0]
    assert (item["topic"], item["partition"], item["offset"]) == ("complaint.received.dlq", 0, 0)
    assert item["key"] == "K-DLQ-1" and item["consumer"] == "intake-worker"
    assert item["source"] == "complaint.received@2/41" and item["value_bytes"] > 30
    table = runner.invoke(app, ["dlq", "list", "--topic", "complaint.received"])
    assert table.exit_code == 0 and "K-DLQ-1" in table.output
    for out in (listed.output, table.output):
        assert "13800138000" not in out and "张三" not in out

    shown = runner.invoke(app, ["dlq", "show", "complaint.received.dlq", "0", "0"])
    assert shown.exit_code == 0, shown.output
    assert "product: not a product" in shown.output and "13800138000" not in shown.output
    revealed = runner.invoke(app, ["dlq", "show", "complaint.received.dlq", "0", "0", "--show-value", "--json"])
    assert SECRET_TEXT in json.loads(revealed.output)["value"]
    missing = runner.invoke(app, ["dlq", "show", "complaint.received.dlq", "0", "7"])
    assert missing.exit_code == 1 and "parley dlq list" in missing.output

    first = runner.invoke(app, ["dlq", "replay", "complaint.received.dlq", "0", "0"])
    assert first.exit_code == 0, first.output
    assert "replayed complaint.received.dlq:0:0" in first.output
    second = runner.invoke(app, ["dlq", "replay", "complaint.received.dlq", "0", "0"])
    assert second.exit_code == 0 and "already replayed (record file)" in second.output
    # without the record file, the source topic itself says it was replayed
    (tmp_path / "var" / "dlq-replays.json").unlink()
    third = runner.invoke(app, ["dlq", "replay", "complaint.received", "0", "0"])
    assert third.exit_code == 0 and "already replayed (source topic)" in third.output, third.output

    replayed = _replayed(cli_env)
    assert len(replayed) == 1
    r = replayed[0]
    assert r.key == b"K-DLQ-1"
    assert json.loads(r.value)["text"] == SECRET_TEXT
    assert dict(r.headers)["replayed_from"] == b"complaint.received.dlq:0:0"
    again = runner.invoke(app, ["dlq", "list", "--json"])
    assert json.loads(again.output.splitlines()[0])["replayed"] is True


async def _stored_dead_letter(settings: CommonSettings) -> bytes:
    await ensure_topics(settings.kafka, ["complaint.received", "complaint.received.dlq"])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
    await producer.start()
    client = make_client(settings.mongo)
    coll = client[settings.mongo.database("intake")]["dead_letter_bodies"]
    big = json.dumps({"text": SECRET_TEXT * 40}, ensure_ascii=False).encode()

    async def send(topic: str, key: bytes | None, value: bytes | None, headers: list) -> object:
        return await producer.send_and_wait(topic, key=key, value=value, headers=headers, partition=0)

    try:
        dead = DeadLetter(send=send, consumer="intake-worker", topic_prefix=settings.kafka.topic_prefix,
                          store=MongoDeadLetterStore(lambda: coll), limit=1024)
        await dead(topic="complaint.received", key=b"K-BIG", value=big, partition=1, offset=9,
                   reason="too big", source_headers=[("origin", b"test")])
    finally:
        await producer.stop()
        await client.close()
    return big


def test_replay_of_a_body_kept_in_the_database(cli_env: CommonSettings, mongo_client) -> None:
    big = asyncio.run(_stored_dead_letter(cli_env))
    listed = runner.invoke(app, ["dlq", "list", "--json"])
    item = json.loads(listed.output.splitlines()[0])
    assert item["stored_id"] == "complaint.received:1:9" and item["value_bytes"] == len(big)
    assert item["stored_in"].endswith("/dead_letter_bodies")
    result = runner.invoke(app, ["dlq", "replay", "complaint.received.dlq", "0", "0"])
    assert result.exit_code == 0, result.output
    replayed = _replayed(cli_env)
    assert len(replayed) == 1
    assert replayed[0].value == big and replayed[0].key == b"K-BIG"
    assert dict(replayed[0].headers)["origin"] == b"test"
