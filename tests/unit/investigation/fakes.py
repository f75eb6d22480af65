"""In-memory stand-ins for investigation's storage and categoriser (unit tests only)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.investigation.ports import RecordsRequest
from services.investigation.records import CoreRecords, SimulatedCoreSystems
from shared.contracts.common import Channel, Language, Priority, Product
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ComplaintRegistered
from shared.outbox import outbox_document
from shared.topics import decode

RECEIVED = datetime(2026, 10, 12, 2, 30, tzinfo=UTC)


class FakeRecords:
    """Keeps each customer's records in a dict, as the Mongo store does (a ``RecordsBacking``).

    Wrap it in ``SimulatedCoreSystems`` (see ``simulated``) for records created on first sight.
    """

    def __init__(self) -> None:
        self.by_customer: dict[str, CoreRecords] = {}
        self.stores = 0
        self.loads = 0

    async def load_many(self, requests: Sequence[RecordsRequest]) -> dict[str, CoreRecords]:
        self.loads += 1
        return {r.customer_id: copy.deepcopy(self.by_customer[r.customer_id])
                for r in requests if r.customer_id in self.by_customer}

    async def store_many(self, records: Sequence[CoreRecords]) -> set[str]:
        already = set()
        for r in records:
            if r.customer_id in self.by_customer:
                already.add(r.customer_id)
            else:
                self.stores += 1
                self.by_customer[r.customer_id] = copy.deepcopy(r)
        return already


def simulated(backing: FakeRecords | None = None) -> SimulatedCoreSystems:
    """The simulated core systems over an in-memory backing (the same adapter the worker uses)."""
    return SimulatedCoreSystems(backing if backing is not None else FakeRecords())


class FakeRepo:
    """Investigation documents and their outbox events, in memory (an ``InvestigationRepository``)."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.events: list[Envelope[Any]] = []
        self.investigations = "investigations"  # stands for the collection in ``Written``
        self.reads = 0

    async def get(self, case_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.docs.get(case_id))

    async def get_many(self, case_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.reads += 1
        return {i: copy.deepcopy(self.docs[i]) for i in case_ids if i in self.docs}

    async def insert_many(self, docs: Sequence[dict[str, Any]]) -> set[str]:
        inserted = set()
        for doc in docs:
            if doc["_id"] in self.docs:
                continue
            self.docs[doc["_id"]] = copy.deepcopy(doc)
            inserted.add(doc["_id"])
            items = sorted(doc["outbox"].values(), key=lambda it: it["order"])
            self.events += [decode(it["topic"], it["value"].encode()) for it in items]
        return inserted

    async def replace(self, doc: dict[str, Any], expected: dict[str, Any], events: Sequence[Envelope[Any]]) -> bool:
        current = self.docs.get(doc["_id"])
        if current is None or any(current.get(k) != v for k, v in expected.items()):
            return False
        self.docs[doc["_id"]] = {**copy.deepcopy(doc), "outbox": {**current.get("outbox", {}),
                                                                  **outbox_document(list(events))["outbox"]}}
        self.events += events
        return True

    async def add_complaints(self, case_id: str, complaint_ids: Sequence[str]) -> None:
        ids = self.docs[case_id]["complaint_ids"]
        ids += [c for c in complaint_ids if c not in ids]

    async def paused(self, limit: int = 200) -> list[dict[str, Any]]:
        return [copy.deepcopy(d) for d in self.docs.values() if d["status"] == "paused"][:limit]

    def of_type(self, event_type: str) -> list[Envelope[Any]]:
        return [e for e in self.events if e.event_type == event_type]


class FakeCategoriser:
    """Returns a fixed category for every text, counting calls and texts."""

    def __init__(self, code: str = "collection_conduct", confidence: float = 0.8) -> None:
        self.code, self.confidence, self.calls, self.texts = code, confidence, 0, 0

    def __call__(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        self.calls += 1
        self.texts += len(texts)
        return [(self.code, self.confidence) for _ in texts]


def registered(case_id: str, text: str, *, customer_id: str | None = None, complaint_id: str | None = None,
               received_at: datetime = RECEIVED, product: Product = Product.CONSUMER_LOAN,
               **extra: Any) -> Envelope[ComplaintRegistered]:
    """A ``complaint.registered`` event as intake publishes it."""
    return Envelope.wrap(ComplaintRegistered(
        case_number=f"TS-20261012-{abs(hash(case_id)) % 10**6:06d}", complaint_id=complaint_id or f"cmp-{case_id}",
        channel=Channel.APP, channel_complaint_id=f"app-{case_id}", received_at=received_at,
        deadline_at=received_at + timedelta(days=15), priority=Priority.NORMAL, product=product,
        language=Language.ZH_CN, customer_id=customer_id or f"cust-{case_id}", customer_phone_masked="138****5678",
        text=text, **extra), case_id=case_id, producer="intake", occurred_at=received_at)
