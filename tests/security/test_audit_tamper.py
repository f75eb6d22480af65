"""``python -m shared.audit verify`` on the real FerretDB names every edited or removed record.

A chain of 30 records is written with ``AuditChain`` and exported; then the database is
tampered with the way someone with write access would, and ``verify`` (the command a person
runs) must exit 1 naming the record: an edited record, a removed one in the middle, the last
one removed, the last one removed together with the head hint (caught against the head an
export kept), and a tail rewritten with every hash recomputed (caught against the kept head).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.audit import AUDIT_CHAIN, AUDIT_HEAD, AuditChain, MongoChainStore, make_record
from shared.settings import CommonSettings
from tests.integration.shared.test_audit_chain import run_cli

pytestmark = pytest.mark.integration


async def test_verify_names_every_edited_or_removed_record(
    settings: CommonSettings, mongo_client: AsyncMongoClient[Any], tmp_path: Path,
) -> None:
    name = settings.mongo.database("negotiation")
    chain = AuditChain(MongoChainStore(mongo_client[name]))
    for i in range(30):
        await chain.append(who="m1", role="manager", action="POST /cases/{case_id}/assign", case_id=f"A-{i}",
                           details={"status": 200, "i": i})
    coll, heads = mongo_client[name][AUDIT_CHAIN], mongo_client[name][AUDIT_HEAD]
    export = tmp_path / "kept.jsonl"
    done = run_cli(settings, "export", "--db", name, "--from", "2000-01-01", "--to", "2100-01-01", "--out", str(export))
    assert done.returncode == 0, done.stdout + done.stderr
    kept = json.loads(export.read_text().splitlines()[-1])
    assert kept["seq"] == 30

    def verify(*extra: str) -> str:
        done = run_cli(settings, "verify", "--db", name, *extra)
        assert done.returncode == (0 if done.stdout.startswith("chain intact") else 1), done
        return done.stdout.strip()

    assert verify("--head-from", str(export)) == f"chain intact: 30 records, head {kept['head']}"
    original = {d["_id"]: d async for d in coll.find({})}
    hint = await heads.find_one({})
    assert hint is not None

    async def restore() -> None:
        await coll.delete_many({})
        await coll.insert_many([original[k] for k in sorted(original)])
        await heads.delete_many({})
        await heads.insert_one(hint)
        assert verify().startswith("chain intact: 30 records")

    # an edited record (who did it)
    await coll.update_one({"_id": 12}, {"$set": {"who": "someone-else"}})
    assert verify().startswith("chain broken at seq 12: record 12 was edited"), verify()
    await restore()

    # a record removed in the middle
    await coll.delete_one({"_id": 7})
    assert verify().startswith("chain broken at seq 7: record 7 was removed")
    await restore()

    # the last record removed (the head hint still names it)
    await coll.delete_one({"_id": 30})
    assert verify().startswith("chain broken at seq 30: record 30 was removed")
    # ... and the head hint moved back too: only the kept head shows it
    await heads.update_one({}, {"$set": {"seq": 29, "hash": original[29]["hash"]}})
    assert verify().startswith("chain intact: 29 records")  # what the database alone can prove
    assert verify("--head-from", str(export)).startswith("chain broken at seq 30: record 30 was removed")
    await restore()

    # records 20..30 rewritten with recomputed hashes (and a consistent head hint)
    prev = original[19]["hash"]
    for seq in range(20, 31):
        doc = original[seq]
        forged = make_record(seq=seq, prev=prev, who="forger" if seq == 20 else doc["who"], role=doc["role"],
                             action=doc["action"], case_id=doc["case_id"], details=doc["details"], at=doc["at"])
        await coll.replace_one({"_id": seq}, forged)
        prev = forged["hash"]
    await heads.update_one({}, {"$set": {"seq": 30, "hash": prev}})
    assert verify().startswith("chain intact: 30 records")  # a consistent forgery passes on its own
    assert verify("--head-from", str(export)).startswith("chain broken at seq 30: record 30 is not the one the kept head names")
