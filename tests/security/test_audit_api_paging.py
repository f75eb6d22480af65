"""Negotiation's ``GET /audit`` pages through the whole chain: no cap (the old one was 500).

1,200 records are put on negotiation's chain in its database; an auditor reads
``?after=&limit=`` page by page until ``next`` is null and gets every record once, in seq
order, each re-hashing and chaining to the one before, ending at the head ``verify`` reports.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.audit import (
    AUDIT_CHAIN,
    AUDIT_HEAD,
    GENESIS,
    HEAD_ID,
    MongoChainStore,
    make_record,
    record_hash,
    verify,
)
from shared.settings import CommonSettings
from tests.integration.test_access_matrix import built

pytestmark = pytest.mark.integration

RECORDS = 1200


async def test_an_auditor_reads_every_record_of_a_long_chain_page_by_page(settings: CommonSettings) -> None:
    async with built("negotiation", settings) as api:
        prev, records = GENESIS, []
        for seq in range(1, RECORDS + 1):
            record = make_record(seq=seq, prev=prev, who=f"agent-{seq % 7}", role="agent",
                                 action="POST /cases/{case_id}/messages", case_id=f"P-{seq % 50}",
                                 details={"status": 201, "outcome": "allowed"})
            records.append(record)
            prev = record["hash"]
        for start in range(0, RECORDS, 400):
            await api.db[AUDIT_CHAIN].insert_many(records[start:start + 400])
        await api.db[AUDIT_HEAD].replace_one({"_id": HEAD_ID}, {"_id": HEAD_ID, "seq": RECORDS, "hash": prev},
                                              upsert=True)

        seen: list[dict[str, Any]] = []
        after: int | None = 0
        pages = 0
        async with api.client(api.token("auditor")) as auditor:
            while after is not None:
                resp = await auditor.get("/audit", params={"after": after, "limit": 500})
                assert resp.status_code == 200, resp.text
                page = resp.json()
                seen += page["entries"]
                after, pages = page["next"], pages + 1
                assert pages < 20, "the pages do not end"
        # the reads themselves went on the chain too (one record per audited request)
        report = await verify(MongoChainStore(api.db))
        assert report.intact, str(report)
        assert [e["seq"] for e in seen[:RECORDS]] == list(range(1, RECORDS + 1))
        assert len(seen) > RECORDS and pages >= 3
        for i, entry in enumerate(seen):
            assert entry["hash"] == record_hash(entry), entry["seq"]
            if i:
                assert entry["prev"] == seen[i - 1]["hash"], entry["seq"]
        assert seen[RECORDS - 1]["hash"] == prev
