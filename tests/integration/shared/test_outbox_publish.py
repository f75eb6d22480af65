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
