"""Intake's audit chain on the real database (issue 11): one record per registration batch
naming its complaint keys and cases, none for a redelivery, one per case closed and one per
retention sweep that erased originals; the chain verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.intake import app
from services.intake.handlers import ConflictingDuplicate
from services.intake.models import ComplaintSubmission
from services.intake.repository import CaseNumbers, IntakeRepository
from services.intake.settings import Settings
from shared.audit import AuditChain, MongoChainStore, verify
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.outbox import batch_token
from tests.integration.intake.support import complaint

pytestmark = pytest.mark.integration


async def test_a_registration_batch_a_closing_and_an_erasure_are_each_one_chain_record(
    intake_settings: Settings, repo: IntakeRepository
) -> None:
    deps = app.Deps(repo, intake_settings.model_copy(update={"retention_days": 1}), CaseNumbers(repo))
    batch = [ComplaintSubmission.model_validate(complaint(i)) for i in range(5)]
    store = MongoChainStore(repo.db)

    with batch_token():  # as the runtime runs a batch
        await app.on_received(deps, batch)
    with batch_token():  # the same batch redelivered registers nothing, so records nothing
        await app.on_received(deps, batch)

    [record], _ = await AuditChain(store).read(limit=10)
    cases = {c["_id"]: c async for c in repo.cases.find({}, {"complaint_keys": 1})}
    assert (record["action"], record["who"], record["role"]) == ("registered", "intake-worker", "system")
    details = record["details"]
    assert details["count"] == 5 and sorted(details["keys"]) == sorted(s.key() for s in batch)
    assert sorted(details["case_ids"]) == sorted(cases)
    for key, case_id in zip(details["keys"], details["case_ids"], strict=True):
        assert key in cases[case_id]["complaint_keys"]
    assert "张小明" not in str(record) and "13900000001" not in str(record)

    closed_id = details["case_ids"][0]
    closing = Envelope.wrap(CaseClosed(case_number="TS-x", outcome="resolved"), case_id=closed_id,
                            producer="followup", occurred_at=datetime.now(UTC) - timedelta(days=2))
    await app.on_closed(deps, [closing, closing])  # redelivered: closed once, recorded once
    await app.erase_expired(deps)
    await app.erase_expired(deps)  # nothing left to erase: nothing recorded

    records, _ = await AuditChain(store).read(limit=10)
    assert [(r["action"], r["case_id"]) for r in records] == [
        ("registered", None), ("case_closed", closed_id), ("originals_erased", None)]
    assert records[1]["details"]["outcome"] == "resolved"
    assert records[2]["details"] == {"count": 1, "case_ids": [closed_id]}
    report = await verify(store)
    assert report.intact and report.count == 3

    # a batch refused in part (a complaint id again with other content) records what it registered
    changed = ComplaintSubmission.model_validate(complaint(1, text="同一投诉编号，内容却不同：这是另一件事，应当被拒绝。"))
    fresh = ComplaintSubmission.model_validate(complaint(9))
    with batch_token(), pytest.raises(ConflictingDuplicate):
        await app.on_received(deps, [changed, fresh])
    records, _ = await AuditChain(store).read(limit=10)
    assert [r["details"]["keys"] for r in records[3:]] == [[fresh.key()]]
    assert (await verify(store)).intact


def test_a_large_batch_is_split_to_fit_the_record_size() -> None:
    pairs = [(f"app:C{n:07d}", f"{n:08d}-0000-5000-8000-000000000000") for n in range(500)]
    parts = app.audit_parts(pairs)
    assert len(parts) > 1 and [p for part in parts for p in part] == pairs
    from shared.audit import make_record

    for part in parts:  # each part fits one record (make_record refuses larger details)
        make_record(seq=1, prev="0" * 64, who="w", role="system", action="registered",
                    details={"count": len(part), "keys": [k for k, _ in part], "case_ids": [c for _, c in part],
                             "part": 1, "parts": len(parts), "batch_count": 500})
