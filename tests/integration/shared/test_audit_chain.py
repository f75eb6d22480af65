"""The audit chain on the real FerretDB: two writers, one chain; verify and export as a person runs them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.audit import AUDIT_CHAIN, AuditChain, MongoChainStore, record_hash, verify
from shared.mongo import make_client
from shared.originals import record_read
from shared.settings import CommonSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def run_cli(settings: CommonSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PARLEY_MONGO_URL": settings.mongo.url}
    return subprocess.run([sys.executable, "-m", "shared.audit", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


async def test_two_clients_append_one_unbroken_chain_that_verify_and_export_check(
    settings: CommonSettings, mongo_client: AsyncMongoClient[Any], tmp_path: Path,
) -> None:
    name = settings.mongo.database("negotiation")
    other = make_client(settings.mongo)  # a second process's client: its own cached head
    try:
        one = AuditChain(MongoChainStore(mongo_client[name]))
        two = AuditChain(MongoChainStore(other[name]))
        start = datetime.now(UTC)

        async def write(chain: AuditChain, who: str) -> None:
            for i in range(25):
                await chain.append(who=who, role="agent", action="POST /cases/{case_id}/messages",
                                   case_id=f"K-{i % 5}", details={"status": 201, "i": i})

        await asyncio.gather(write(one, "w1"), write(two, "w2"))
    finally:
        await other.close()
    coll = mongo_client[name][AUDIT_CHAIN]
    docs = {d["_id"]: d async for d in coll.find({})}
    assert sorted(docs) == list(range(1, 51))  # one record per seq, no gap, nothing twice
    for seq in range(2, 51):
        assert docs[seq]["prev"] == docs[seq - 1]["hash"]
    assert sorted(d["who"] for d in docs.values()).count("w2") == 25
    assert (await verify(MongoChainStore(mongo_client[name]))).intact

    # a read of originals goes on the same chain
    await record_read(mongo_client[name], reader="ops-7", purpose="核对来电身份", collection="personal_data",
                      record_id="web:42", fields=["name", "phone"], found=True, role="ops")
    read = await coll.find_one({"_id": 51})
    assert read is not None and read["action"] == "original_read" and read["who"] == "ops-7"
    assert read["details"]["purpose"] == "核对来电身份" and read["prev"] == docs[50]["hash"]

    done = run_cli(settings, "verify", "--db", name)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"chain intact: 51 records, head {read['hash']}"

    # the period export: every line re-hashes, the last line is the head
    out = tmp_path / "export.jsonl"
    done = run_cli(settings, "export", "--db", name, "--from", (start - timedelta(seconds=1)).isoformat(),
                   "--to", (datetime.now(UTC) + timedelta(minutes=1)).isoformat(), "--out", str(out))
    assert done.returncode == 0, done.stderr + done.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in lines[:-1]] == list(range(1, 52))
    assert all(record_hash(r) == r["hash"] for r in lines[:-1])
    assert lines[-1] == {"head": read["hash"], "seq": 51}
    empty = tmp_path / "empty.jsonl"
    done = run_cli(settings, "export", "--db", name, "--from", "2020-01-01", "--to", "2020-02-01", "--out", str(empty))
    assert done.returncode == 0 and json.loads(empty.read_text()) == {"head": read["hash"], "seq": 51}

    # someone edits one record's details in the database: verify names it
    await coll.update_one({"_id": 17}, {"$set": {"details.status": 200}})
    done = run_cli(settings, "verify", "--db", name)
    assert done.returncode == 1
    assert done.stdout.startswith("chain broken at seq 17: record 17 was edited"), done.stdout
    broken = tmp_path / "broken.jsonl"
    done = run_cli(settings, "export", "--db", name, "--from", "2020-01-01", "--to", "2030-01-01", "--out", str(broken))
    assert done.returncode == 1 and not broken.exists()
