"""shared.crypto: sealed fields, the key ring from settings, production's refusal, rotation."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from shared.crypto import (
    DEV_KEY,
    NO_KEY,
    CryptoConfigError,
    CryptoSettings,
    DecryptionFailed,
    KeyRing,
    UnknownKey,
    development_keyring,
    is_sealed,
    key_id,
    main,
    rotate,
)

K1, K2 = os.urandom(32), os.urandom(32)


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def ring(active: str = "k1", **keys: bytes) -> KeyRing:
    return KeyRing(keys or {"k1": K1, "k2": K2}, active)


def test_round_trip_of_text_bytes_and_json() -> None:
    r = ring()
    token = r.seal("张小明", field="data.name", doc_id="app:C1")
    assert is_sealed(token) and token.startswith("enc:v1:k1:") and "张" not in token
    assert key_id(token) == "k1"
    assert r.open_text(token, field="data.name", doc_id="app:C1") == "张小明"
    raw = os.urandom(300)
    assert r.open(r.seal(raw, field="value", doc_id="t:0:1"), field="value", doc_id="t:0:1") == raw
    hashes = {"phone": "ab12", "name": "cd34"}
    assert r.open_json(r.seal(hashes, field="field_hashes", doc_id=7), field="field_hashes", doc_id=7) == hashes
    # a fresh nonce each time: the same value never gives the same token
    assert r.seal("x", field="f", doc_id="d") != r.seal("x", field="f", doc_id="d")


def test_a_token_moved_to_another_field_or_record_or_edited_does_not_open() -> None:
    r = ring()
    token = r.seal("13912345678", field="data.phone", doc_id="app:C1")
    with pytest.raises(DecryptionFailed, match="another field or record"):
        r.open(token, field="data.id_number", doc_id="app:C1")
    with pytest.raises(DecryptionFailed, match="another field or record"):
        r.open(token, field="data.phone", doc_id="app:C2")
    relabelled = token.replace("enc:v1:k1:", "enc:v1:k2:")  # claims the other key
    with pytest.raises(DecryptionFailed):
        r.open(relabelled, field="data.phone", doc_id="app:C1")
    body = token.rsplit(":", 1)[1]
    flipped = base64.urlsafe_b64decode(body)
    flipped = flipped[:-1] + bytes([flipped[-1] ^ 1])
    with pytest.raises(DecryptionFailed):
        r.open("enc:v1:k1:" + base64.urlsafe_b64encode(flipped).decode(), field="data.phone", doc_id="app:C1")
    with pytest.raises(DecryptionFailed, match="not a sealed value"):
        r.open("13912345678", field="data.phone", doc_id="app:C1")
    with pytest.raises(DecryptionFailed, match="format v9"):
        r.open(token.replace("enc:v1:", "enc:v9:"), field="data.phone", doc_id="app:C1")


def test_an_unknown_key_id_fails_with_a_clear_error() -> None:
    token = KeyRing({"old": K1}, "old").seal("x", field="f", doc_id="d")
    with pytest.raises(UnknownKey, match=r"key id 'old'.*not in the key ring.*\['k1', 'k2'\]"):
        ring().open(token, field="f", doc_id="d")


def test_key_ring_checks_itself_and_never_shows_its_keys() -> None:
    with pytest.raises(CryptoConfigError, match="not in the key ring"):
        KeyRing({"k1": K1}, "k9")
    with pytest.raises(CryptoConfigError, match="16, 24 or 32"):
        KeyRing({"k1": b"short"}, "k1")
    with pytest.raises(CryptoConfigError, match="key id"):
        KeyRing({"bad:kid": K1}, "bad:kid")
    assert _b64(K1) not in repr(ring()) and "k1" in repr(ring())


def test_settings_read_json_or_pairs_and_pick_the_active_key() -> None:
    as_json = CryptoSettings(keys=json.dumps({"k1": _b64(K1), "k2": _b64(K2)}), active_key="k2")
    r = as_json.keyring("production")
    assert r.active == "k2" and dict(r.keys) == {"k1": K1, "k2": K2} and not r.development
    pairs = CryptoSettings(keys=f"k1:{_b64(K1)}, k2:{base64.urlsafe_b64encode(K2).decode().rstrip('=')}",
                           active_key="k1")
    assert dict(pairs.keyring("production").keys) == {"k1": K1, "k2": K2}
    assert CryptoSettings(keys=f"only:{_b64(K1)}").keyring("production").active == "only"
    with pytest.raises(CryptoConfigError, match="PARLEY_CRYPTO_ACTIVE_KEY"):
        CryptoSettings(keys=f"k1:{_b64(K1)},k2:{_b64(K2)}").keyring("production")
    with pytest.raises(CryptoConfigError, match="not base64"):
        CryptoSettings(keys="k1:@@@").keyring("development")
    with pytest.raises(CryptoConfigError, match="kid:<base64 key>"):
        CryptoSettings(keys="k1").keyring("development")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_CRYPTO_KEYS", f"a:{_b64(K1)},b:{_b64(K2)}")
    monkeypatch.setenv("PARLEY_CRYPTO_ACTIVE_KEY", "b")
    assert CryptoSettings().keyring("production").active == "b"


def test_production_refuses_the_development_key_ring() -> None:
    dev = CryptoSettings().keyring("development")
    assert dev.development and dev.active == "dev" and dev == development_keyring()
    assert CryptoSettings().keyring("test").development
    with pytest.raises(CryptoConfigError, match="production refuses the development key ring"):
        CryptoSettings().keyring("production")
    with pytest.raises(CryptoConfigError, match="development key"):
        CryptoSettings(keys=f"k1:{_b64(K1)},dev2:{_b64(DEV_KEY)}", active_key="k1").keyring("production")


def test_intake_refuses_to_start_in_production_on_the_development_ring() -> None:
    from services.intake.settings import Settings

    with pytest.raises(CryptoConfigError):
        Settings(environment="production").crypto.keyring("production")


# ------------------------------------------------------------------ rotation


class FakeResult:
    def __init__(self, n: int) -> None:
        self.modified_count = n


class FakeCursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self._docs = docs

    def __aiter__(self) -> FakeCursor:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if not self._docs:
            raise StopAsyncIteration
        return self._docs.pop(0)


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    for name, want in query.items():
        have = doc.get(name, ...)
        if isinstance(want, dict) and "$nin" in want:
            if have in want["$nin"]:
                return False
        elif isinstance(want, dict) and "$exists" in want:
            if (have is not ...) != want["$exists"]:
                return False
        elif have != want:
            return False
    return True


class FakeCollection:
    """Enough of a collection for ``rotate``: find with a projection, find_one and update by _id."""

    name = "personal_data"

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = {d["_id"]: d for d in docs}
        self.finds: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def create_index(self, keys: list[tuple[str, int]], name: str) -> str:
        return name

    def find(self, query: dict[str, Any], projection: dict[str, Any], batch_size: int = 0) -> FakeCursor:
        self.finds.append((query, projection))
        return FakeCursor([{k: d[k] for k in projection if k in d}
                           for d in self.docs.values() if _matches(d, query)])

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        found = self.docs.get(query["_id"])
        return json.loads(json.dumps(found)) if found else None

    async def update_one(self, query: dict[str, Any], update: dict[str, Any]) -> FakeResult:
        doc = self.docs.get(query["_id"])
        if doc is None or not _matches(doc, query):
            return FakeResult(0)
        for path, value in update["$set"].items():
            target = doc
            *parents, last = path.split(".")
            for p in parents:
                target = target[p]
            target[last] = value
        return FakeResult(1)


async def test_rotation_reencrypts_under_the_new_key_and_old_tokens_open_until_then() -> None:
    old = KeyRing({"k1": K1}, "k1")
    docs = [{"_id": f"app:C{i}", "kid": "k1",
             "data": {"customer_id": f"CUST{i}", "name": old.seal(f"name {i}", field="data.name", doc_id=f"app:C{i}"),
                      "phone": old.seal("139", field="data.phone", doc_id=f"app:C{i}")}}
            for i in range(7)]
    docs.append({"_id": "app:legacy", "data": {"name": "明文", "phone": None}})  # written before sealing
    docs.append({"_id": "app:erased", "kid": NO_KEY})
    coll = FakeCollection(docs)
    new = KeyRing({"k1": K1, "k2": K2}, "k2")
    # before the sweep, the new ring still opens what the old key sealed
    assert new.open_text(coll.docs["app:C3"]["data"]["name"], field="data.name", doc_id="app:C3") == "name 3"

    report = await rotate(coll, keyring=new, fields=["data.name", "data.phone"], batch_size=3, pause_s=0)
    assert (report.scanned, report.rotated, report.sealed_legacy, report.skipped, report.failed) == (7, 7, 0, 0, [])
    assert coll.finds == [({"kid": "k1"}, {"_id": 1, "kid": 1})]  # by the indexed kid: no full read
    assert coll.docs["app:legacy"]["data"]["name"] == "明文"  # plaintext is a separate, one-off pass
    report = await rotate(coll, keyring=new, fields=["data.name", "data.phone"], pause_s=0, plaintext=True)
    assert (report.scanned, report.rotated, report.sealed_legacy) == (1, 1, 1)
    assert coll.finds[-1] == ({"kid": {"$exists": False}}, {"_id": 1, "kid": 1})
    for i in range(7):
        doc = coll.docs[f"app:C{i}"]
        assert doc["kid"] == "k2" and key_id(doc["data"]["name"]) == "k2"
        assert new.open_text(doc["data"]["name"], field="data.name", doc_id=f"app:C{i}") == f"name {i}"
        assert doc["data"]["customer_id"] == f"CUST{i}"  # not a sealed field: untouched
    legacy = coll.docs["app:legacy"]
    assert legacy["kid"] == "k2" and new.open_text(legacy["data"]["name"], field="data.name",
                                                   doc_id="app:legacy") == "明文"
    assert legacy["data"]["phone"] is None
    assert coll.docs["app:erased"] == {"_id": "app:erased", "kid": NO_KEY}
    # the old key can go now: the new-only ring opens everything
    only_new = KeyRing({"k2": K2}, "k2")
    assert only_new.open_text(coll.docs["app:C0"]["data"]["phone"], field="data.phone", doc_id="app:C0") == "139"
    again = await rotate(coll, keyring=new, fields=["data.name", "data.phone"], pause_s=0, plaintext=True)
    assert (again.scanned, again.rotated) == (0, 0)


async def test_rotation_leaves_values_that_do_not_open_and_reports_them() -> None:
    stranger = KeyRing({"zz": K1}, "zz").seal("x", field="data.name", doc_id="app:C1")
    coll = FakeCollection([{"_id": "app:C1", "kid": "zz", "data": {"name": stranger}}])
    report = await rotate(coll, keyring=KeyRing({"zz": K2, "k2": K2}, "k2"), fields=["data.name"], pause_s=0)
    assert report.failed == ["app:C1"] and report.rotated == 0
    assert coll.docs["app:C1"]["data"]["name"] == stranger


def test_genkey_prints_a_usable_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["genkey", "--kid", "2027a"]) == 0
    entry = capsys.readouterr().out.strip()
    assert CryptoSettings(keys=entry).keyring("production").active == "2027a"
