"""publish_written on the real MongoDB-wire server: what it publishes and what it clears."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.contracts.envelope import Envelope
from shared.contracts.supervision import SupervisionAlert
from shared.outbox import Written, outbox_document, outbox_fields, publish_written
from shared.settings import CommonSettings

pytestmark = pytest.mark.integration


def _alert(case_id: str, message: str) -> Envelope[Any]:
    return Envelope.wrap(SupervisionAlert(kind="test", severity="warning", message=message),
                         case_id=case_id, producer="test")


async def test_outboxes_are_published_in_order_and_cleared_but_a_later_write_keeps_its_flag(
    settings: CommonSettings, mongo_client: AsyncMongoClient[Any]
) -> None:
    col = mongo_client[settings.mongo.database("outbox")]["docs"]
    first = [_alert("c1", "one"), _alert("c1", "two")]
    written_a = outbox_document(first)
    await col.insert_one({"_id": "a", **written_a})
    other = [_alert("c2", "three")]
    written_b = outbox_document(other)
    await col.insert_one({"_id": "b", **written_b})
    # a concurrent writer adds an event to "b" after its first write was handed to the publisher
    late = [_alert("c2", "late")]
    await col.update_one({"_id": "b"}, {"$set": outbox_fields(late)})

    sent: list[tuple[str, str]] = []

    async def send(topic: str, key: bytes, value: bytes) -> None:
        sent.append((key.decode(), Envelope[SupervisionAlert].model_validate_json(value).payload.message))

    count = await publish_written(
        [Written(col, "a", written_a["outbox"]), Written(col, "b", written_b["outbox"])], send
    )

    assert count == 3
    assert [m for k, m in sent if k == "c1"] == ["one", "two"]  # one document's events in order
    assert ("c2", "three") in sent and ("c2", "late") not in sent
    a = await col.find_one({"_id": "a"})
    assert a is not None and a["outbox"] == {} and a["outbox_pending"] is False
    b = await col.find_one({"_id": "b"})
    assert b is not None
    assert list(b["outbox"]) == [str(late[0].event_id)]  # only the sent event was removed
    assert b["outbox_pending"] is True  # the late event is left, flagged, for the sweep


async def test_a_batch_of_new_documents_is_cleared_in_one_command_but_only_what_was_sent(
    settings: CommonSettings, mongo_client: AsyncMongoClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.outbox import batch_token

    col = mongo_client[settings.mongo.database("outbox")]["batch"]
    await col.create_index([("outbox_batch", 1)], name="outbox_batch")
    with batch_token():
        docs = {f"d{i}": outbox_document([_alert(f"c{i}", f"m{i}")]) for i in range(60)}
    await col.insert_many([{"_id": k, **v} for k, v in docs.items()])
    # d1 gets another event from a later write before the publisher clears: it must keep it
    late = [_alert("c1", "late")]
    await col.update_one({"_id": "d1"}, {"$set": outbox_fields(late)})

    commands: list[str] = []
    real_many, real_bulk = type(col).update_many, type(col).bulk_write

    async def update_many(self: Any, *args: Any, **kwargs: Any) -> Any:
        commands.append("update_many")
        return await real_many(self, *args, **kwargs)

    async def bulk_write(self: Any, ops: Any, *args: Any, **kwargs: Any) -> Any:
        commands.append(f"bulk_write({len(ops)})")
        return await real_bulk(self, ops, *args, **kwargs)

    monkeypatch.setattr(type(col), "update_many", update_many)
    monkeypatch.setattr(type(col), "bulk_write", bulk_write)

    async def send(topic: str, key: bytes, value: bytes) -> None:
        return None

    # d59 was inserted in the same batch but is not handed to this publisher (another worker
    # owns it now): it must stay pending
    handed = [Written(col, k, v["outbox"]) for k, v in docs.items() if k != "d59"]
    assert await publish_written(handed, send) == 59
    cleared = [d async for d in col.find({"outbox_pending": False})]
    assert sorted(d["_id"] for d in cleared) == sorted(k for k in docs if k not in ("d1", "d59"))
    assert all(d["outbox"] == {} and "outbox_batch" not in d for d in cleared)
    d1 = await col.find_one({"_id": "d1"})
    assert d1 is not None and d1["outbox_pending"] is True and list(d1["outbox"]) == [str(late[0].event_id)]
    d59 = await col.find_one({"_id": "d59"})
    assert d59 is not None and d59["outbox_pending"] is True and len(d59["outbox"]) == 1
    # one update_many for the batch's 58; only d1 (changed meanwhile) goes the per-document
    # way: its quick update misses (outbox_at moved), then the careful two steps
    assert commands == ["update_many", "bulk_write(1)", "bulk_write(1)", "bulk_write(1)"], commands


async def test_a_retried_batch_does_not_send_again_what_the_broker_already_took(
    settings: CommonSettings, mongo_client: AsyncMongoClient[Any]
) -> None:
    col = mongo_client[settings.mongo.database("outbox")]["retry"]
    docs = {f"r{i}": outbox_document([_alert(f"k{i}", f"m{i}")]) for i in range(6)}
    await col.insert_many([{"_id": k, **v} for k, v in docs.items()])
    sent: list[str] = []

    async def flaky(topic: str, key: bytes, value: bytes) -> None:
        if len(sent) == 3:  # the broker goes away after three events
            raise ConnectionError("broker down")
        sent.append(key.decode())

    with pytest.raises(ConnectionError):
        await publish_written([Written(col, k, v["outbox"]) for k, v in docs.items()], flaky)
    first = list(sent)
    sent.append("-")  # the broker is back: the runtime retries the whole batch
    assert await publish_written([Written(col, k, v["outbox"]) for k, v in docs.items()], flaky) == 6
    again = sent[len(first) + 1:]
    assert len(first) == 3 and sorted(first + again) == sorted(f"k{i}" for i in range(6))  # each once
    assert await col.count_documents({"outbox_pending": True}) == 0
