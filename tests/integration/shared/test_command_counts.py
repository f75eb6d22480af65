"""``PARLEY_MONGO_COMMAND_COUNTS``: a process counts the commands it sends, on the real server
(what ``python -m bench.burst`` reads to say how many round trips a stage costs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shared.mongo import insert_new, make_client
from shared.settings import CommonSettings

pytestmark = pytest.mark.integration


async def test_commands_are_counted_by_command_and_collection(settings: CommonSettings, tmp_path: Path) -> None:
    mongo = settings.mongo.model_copy(update={"command_counts": str(tmp_path / "{pid}.json")})
    client = make_client(mongo)
    try:
        db = client[mongo.database("counts")]
        # one bulk command for 300 documents, refused duplicates included
        assert await insert_new(db["things"], [{"_id": i} for i in range(300)], chunk=500) == set()
        assert await insert_new(db["things"], [{"_id": 1}, {"_id": 300}], chunk=500) == {1}
        for i in range(3):
            await db["things"].find_one({"_id": i})
        await client.drop_database(db.name)
        listener = client.options.event_listeners[0]
        listener.write()  # what the next command would write once a second has passed
    finally:
        await client.close()
    counts = json.loads((tmp_path / f"{os.getpid()}.json").read_text())
    assert counts["insert things"] == 2 and counts["find things"] == 3
    assert counts["dropDatabase"] == 1
