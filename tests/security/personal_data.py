"""The personal-data scan of a finished run (issue 11, docs/security.md "What the tests prove").

After a run, every record of every topic of the run (key, value and headers), every document
of every collection of every database of the run, and every log file of its services are
searched for the raw personal data the run used (names, phone numbers, ID numbers, card
numbers). Only ciphertext may hold them (``enc:v1:…`` values, which a search for the raw
text cannot match) and masks (``139****5678``), except in the documented places: the topic
``complaint.received`` and its DLQ, which carry the channel's original bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from bson import json_util
from pymongo import AsyncMongoClient

from shared.settings import CommonSettings
from tests.support.kafka import read_all

#: topics that carry a channel's original bytes (docs/security.md, "Personal data at rest")
RAW_TOPICS = frozenset({"complaint.received", "complaint.received.dlq"})


def _hits(where: str, text: str, needles: dict[str, str]) -> list[str]:
    return [f"{where}: the {what} in clear" for what, value in needles.items() if value in text]


async def scan_topics(settings: CommonSettings, needles: dict[str, str]) -> tuple[list[str], int]:
    """Leaks on every topic of the run's prefix (the documented raw topics excepted); records read."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(settings.kafka.topic_prefix))
    finally:
        await admin.close()
    assert names, f"no topic with the prefix {settings.kafka.topic_prefix!r}: nothing was scanned"
    leaks: list[str] = []
    count = 0
    for physical in names:
        logical = physical[len(settings.kafka.topic_prefix):]
        if logical in RAW_TOPICS:
            continue
        for record in await read_all(settings, logical, timeout=30):
            count += 1
            parts = [record.key or b"", record.value or b""] + [v or b"" for _, v in record.headers or ()]
            text = "\n".join(p.decode("utf-8", errors="replace") for p in parts)
            leaks += _hits(f"topic {logical} offset {record.partition}/{record.offset}", text, needles)
    return leaks, count


async def scan_databases(client: AsyncMongoClient[Any], prefix: str, needles: dict[str, str]) -> tuple[list[str], int]:
    """Leaks in every document of every collection of the run's databases; documents read."""
    leaks: list[str] = []
    count = 0
    databases = [name for name in await client.list_database_names() if name.startswith(prefix)]
    assert databases, f"no database with the prefix {prefix!r}: nothing was scanned"
    for name in databases:
        db = client[name]
        for collection in await db.list_collection_names():
            async for doc in db[collection].find({}):
                count += 1
                text = json_util.dumps(doc, ensure_ascii=False)
                leaks += _hits(f"{name}.{collection} {doc.get('_id')!r}", text, needles)
    return leaks, count


def scan_logs(logs: Path, needles: dict[str, str]) -> tuple[list[str], int]:
    """Leaks in every log file under ``logs``; files read."""
    files = sorted(p for p in logs.rglob("*.log") if p.is_file())
    assert files, f"no log file under {logs}: nothing was scanned"
    leaks: list[str] = []
    for path in files:
        leaks += _hits(f"log {path.name}", path.read_text(encoding="utf-8", errors="replace"), needles)
    return leaks, len(files)


async def assert_no_personal_data(settings: CommonSettings, logs: Path, needles: dict[str, str]) -> dict[str, int]:
    """Scan topics, databases and logs of a run; fail naming every place a raw value appears.

    Returns what was read (records, documents, log files), so the caller can check the scan saw the run.
    """
    from shared.mongo import make_client

    topic_leaks, records = await scan_topics(settings, needles)
    client = make_client(settings.mongo)
    try:
        db_leaks, documents = await scan_databases(client, settings.mongo.db_prefix, needles)
    finally:
        await client.close()
    log_leaks, files = scan_logs(logs, needles)
    # the control: the same search finds every value where the run did put it in clear
    raw = "\n".join(r.value.decode("utf-8", errors="replace")
                    for r in await read_all(settings, "complaint.received", timeout=30))
    missing = [what for what, value in needles.items() if value not in raw]
    assert not missing, f"the scan's control failed: complaint.received does not hold the raw {missing}"
    leaks = topic_leaks + db_leaks + log_leaks
    assert not leaks, f"raw personal data outside the documented places ({len(leaks)}):\n" + "\n".join(leaks[:100])
    return {"records": records, "documents": documents, "log_files": files}
