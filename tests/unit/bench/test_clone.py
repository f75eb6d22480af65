"""bench/clone.py: a copy renames every identifier it knows, at any depth, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

from bson import ObjectId

from bench.clone import ID_FIELDS, PER_CASE, _ids_of, renamed


def test_a_copy_renames_identifiers_at_any_depth_and_keeps_the_rest() -> None:
    at = datetime(2026, 11, 29, tzinfo=UTC)
    case = {"_id": "K1", "case_number": "TS-1", "customer_id": "cu1", "status": "open", "received_at": at,
            "complaint_keys": ["app:1"], "related": [{"case_id": "K0", "note": "K1 is linked"}]}
    complaint = {"_id": "app:1", "case_id": "K1", "text": "TS-1 again", "amount": 12}
    ids: set[str] = set()
    for doc in (case, complaint):
        _ids_of(doc, set(ID_FIELDS), ids)
    assert ids == {"K1", "TS-1", "cu1", "K0", "app:1"}

    copy = renamed(case, ids, "~3")
    assert copy["_id"] == "K1~3" and copy["case_number"] == "TS-1~3" and copy["customer_id"] == "cu1~3"
    assert copy["complaint_keys"] == ["app:1~3"], "a reference in a list is renamed too"
    assert copy["related"] == [{"case_id": "K0~3", "note": "K1 is linked"}], "text is not an identifier"
    assert copy["status"] == "open" and copy["received_at"] == at
    assert case["_id"] == "K1", "the original is untouched"
    assert renamed(complaint, ids, "~3") == {"_id": "app:1~3", "case_id": "K1~3", "text": "TS-1 again", "amount": 12}


def test_an_object_id_gets_a_new_one_and_bookkeeping_is_never_copied() -> None:
    oid = ObjectId()
    assert renamed({"_id": oid, "x": 1}, set(), "~1")["_id"] != oid
    copied = {name for names in PER_CASE.values() for name in names}
    assert not copied & {"audit_chain", "audit_head", "outbox_ledger", "counters", "version_claims", "agents"}
