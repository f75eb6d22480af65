"""Personal data sealed at rest (issue 11) on the real broker and database.

A real intake worker registers complaints; the raw documents of intake's database hold no
name, phone, ID or card number in clear (only ``enc:v1:`` tokens where the originals are);
the one read path still gets the plaintext and the read is recorded; retention erases the
originals of a case closed longer ago than the retention period; a key rotation on FerretDB
re-encrypts every document under the new key.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import json_util
from pymongo import AsyncMongoClient

from services.intake import handlers
from services.intake.repository import IntakeRepository
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.crypto import NO_KEY, KeyRing, UnknownKey, is_sealed, key_id
from shared.originals import ORIGINAL_READS
from tests.integration.intake.support import complaint, encode, produce
from tests.support.eventually import eventually
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration

K1, K2 = os.urandom(32), os.urandom(32)
CARD = "6222021234567890123"
OTHER_PHONE = "13800138000"


def _people(n: int) -> dict[str, str]:
    body = complaint(n)
    return {"name": f"欧阳{'一二三四五六七八九'[n]}峰", "phone": body["customer"]["phone"],
            "id_number": body["customer"]["id_number"]}


def _body(n: int, **extra: Any) -> dict[str, Any]:
    person = _people(n)
    body = complaint(n, **extra)
    body["customer"].update(person)
    body["text"] = (f"我是{person['name']}，我的信用卡{CARD}被盗刷了，催收员还打到我同事{OTHER_PHONE}。"
                    f"身份证号{person['id_number']}。")
    body["demand"] = f"退还盗刷款项，联系我{person['phone']}"
    return body


async def _raw_database_text(client: AsyncMongoClient[Any], db_name: str) -> dict[str, str]:
    """Every document of every collection of a database, as extended JSON text, by collection."""
    db = client[db_name]
    out: dict[str, str] = {}
    for name in await db.list_collection_names():
        docs = [d async for d in db[name].find({})]
        out[name] = json_util.dumps(docs, ensure_ascii=False)
    return out


async def test_originals_are_sealed_read_with_a_record_and_erased_after_retention(
    intake_settings, repo: IntakeRepository, mongo_client: AsyncMongoClient[Any],
    processes: Callable[..., ServiceProcess],
) -> None:
    keys_env = f"k1:{base64.b64encode(K1).decode()}"
    processes("worker", PARLEY_CRYPTO_KEYS=keys_env, PARLEY_CRYPTO_ACTIVE_KEY="k1",
              PARLEY_INTAKE_RETENTION_DAYS="30", PARLEY_INTAKE_RETENTION_SWEEP_INTERVAL_S="1")
    bodies = [_body(i) for i in range(1, 4)]
    await produce(intake_settings, "complaint.received",
                  [(b["channel_complaint_id"].encode(), encode(b)) for b in bodies])

    async def registered() -> bool:
        return await repo.complaints.count_documents({}) >= 3

    await eventually(registered, timeout=120, what="3 registrations")

    # 1. at rest: nothing personal in clear anywhere in intake's database
    db_name = intake_settings.mongo.database("intake")
    raw = await _raw_database_text(mongo_client, db_name)
    assert "personal_data" in raw
    for body in bodies:
        person = body["customer"]
        for secret in (person["name"], person["phone"], person["id_number"], CARD, OTHER_PHONE,
                       body["text"][:12], body["demand"][:6]):
            leaks = [c for c, text in raw.items() if secret in text]
            assert not leaks, f"{secret[:3]}… in clear in {leaks}"
    personal = [d async for d in repo.db["personal_data"].find({})]
    assert len(personal) == 3
    for doc in personal:
        assert doc["kid"] == "k1"
        for name in ("name", "phone", "id_number", "text", "demand"):
            assert is_sealed(doc["data"][name]) and key_id(doc["data"][name]) == "k1", name
        assert is_sealed(doc["field_hashes"])
        assert doc["data"]["customer_id"].startswith("CUST")

    # 2. the one read path opens them and records the read; the wrong ring cannot
    ring = KeyRing({"k1": K1}, "k1")
    reader = IntakeRepository(repo.db, keyring=ring)
    key = "app:C0000001"
    got = await handlers.read_originals(key, repo=reader, reader="agent-7",
                                        purpose="escalation dossier for mediation")
    assert got is not None
    assert (got["name"], got["phone"], got["id_number"]) == (
        bodies[0]["customer"]["name"], bodies[0]["customer"]["phone"], bodies[0]["customer"]["id_number"])
    assert got["text"] == bodies[0]["text"] and got["demand"] == bodies[0]["demand"]
    reads = [r async for r in repo.db[ORIGINAL_READS].find({})]
    assert len(reads) == 1
    assert {k: reads[0][k] for k in ("reader", "purpose", "collection", "record_id", "found")} == {
        "reader": "agent-7", "purpose": "escalation dossier for mediation", "collection": "personal_data",
        "record_id": key, "found": True}
    assert reads[0]["at"] > datetime.now(UTC) - timedelta(minutes=5)
    assert "name" in reads[0]["fields"] and "欧阳" not in json_util.dumps(reads[0], ensure_ascii=False)
    with pytest.raises(UnknownKey):  # the development ring does not hold k1
        await repo.read_personal_data(key, reader="agent-7", purpose="check")
    with pytest.raises(ValueError, match="purpose"):
        await handlers.read_originals(key, repo=reader, reader="agent-7", purpose="")

    # 3. retention: a case closed 40 days ago (retention 30) loses its originals, keeps its masks;
    #    a case closed today keeps them
    old_case = (await repo.find_complaint("app:C0000001"))["case_id"]
    new_case = (await repo.find_complaint("app:C0000002"))["case_id"]
    events = []
    for case_id, when in ((old_case, datetime.now(UTC) - timedelta(days=40)), (new_case, datetime.now(UTC))):
        case = await repo.find_case(case_id)
        events.append(Envelope.wrap(CaseClosed(case_number=case["case_number"], outcome="resolved"),
                                    case_id=case_id, producer="followup", occurred_at=when))
    await produce(intake_settings, "case.closed", [(e.key(), e.to_bytes()) for e in events])

    async def erased() -> dict[str, Any] | None:
        case = await repo.find_case(old_case)
        return case if case and case.get("originals_erased_at") else None

    case = await eventually(erased, timeout=90, what="the old closed case's originals erased")
    assert case["status"] == "closed"
    assert case["customer_name_masked"] == "欧***" and case["customer_phone_masked"].startswith("139****")
    gone = await repo.db["personal_data"].find_one({"_id": "app:C0000001"})
    assert gone is not None and "data" not in gone and "field_hashes" not in gone
    assert gone["kid"] == NO_KEY and gone["erased_at"] and gone["content_hash"]
    assert await handlers.read_originals("app:C0000001", repo=reader, reader="agent-7", purpose="again") is None
    assert (await repo.db[ORIGINAL_READS].find_one({"purpose": "again"}))["found"] is False

    async def new_case_scheduled() -> bool:
        return await repo.retention.find_one({"_id": new_case}) is not None

    await eventually(new_case_scheduled, timeout=30, what="the new closed case on the retention list")
    assert await repo.retention.find_one({"_id": old_case}) is None
    kept = await reader.read_personal_data("app:C0000002", reader="agent-7", purpose="still kept")
    assert kept is not None and kept["name"] == bodies[1]["customer"]["name"]
    assert (await repo.find_case(new_case)).get("originals_erased_at") is None


async def test_key_rotation_reencrypts_every_document_on_the_real_database(repo: IntakeRepository) -> None:
    old = IntakeRepository(repo.db, keyring=KeyRing({"k1": K1}, "k1"))
    data = {f"app:R{i:03d}": {"customer_id": f"CUST{i}", "name": f"李{i}", "phone": f"1390000{i:04d}",
                              "id_number": None, "text": f"卡号{CARD}", "demand": "退款"}
            for i in range(25)}
    await old.store_personal_data_batch(data, {k: {"content_hash": "h", "field_hashes": {"name": "x"}}
                                               for k in data})
    await repo.db["personal_data"].insert_one({"_id": "app:legacy", "data": {"name": "旧明文"}})

    both = IntakeRepository(repo.db, keyring=KeyRing({"k1": K1, "k2": K2}, "k2"))
    before = await both.read_personal_data("app:R003", reader="ops", purpose="rotation check")
    assert before is not None and before["name"] == "李3"  # still under k1, opened by the new ring

    report = await both.rotate_personal_data(batch_size=7, pause_s=0)
    assert (report.scanned, report.rotated, report.sealed_legacy, report.failed) == (25, 25, 0, [])
    legacy_pass = await both.rotate_personal_data(pause_s=0, plaintext=True)  # the one-off migration
    assert (legacy_pass.scanned, legacy_pass.rotated, legacy_pass.sealed_legacy) == (1, 1, 1)
    assert await repo.db["personal_data"].count_documents({"kid": "k2"}) == 26
    only_new = IntakeRepository(repo.db, keyring=KeyRing({"k2": K2}, "k2"))
    for key, original in data.items():
        got = await only_new.read_personal_data(key, reader="ops", purpose="rotation check")
        assert got == original
    assert (await only_new.personal_fingerprints(["app:R001"]))["app:R001"]["field_hashes"] == {"name": "x"}
    legacy = await only_new.read_personal_data("app:legacy", reader="ops", purpose="rotation check")
    assert legacy == {"name": "旧明文"}
    raw = json_util.dumps([d async for d in repo.db["personal_data"].find({})], ensure_ascii=False)
    assert "李" not in raw and CARD not in raw and "旧明文" not in raw
    again = await both.rotate_personal_data(pause_s=0, plaintext=True)
    assert (again.scanned, again.rotated) == (0, 0)
