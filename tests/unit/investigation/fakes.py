"""In-memory stand-ins for investigation's storage and categoriser (unit tests only)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from services.investigation.records import CoreRecords, account_id_of
from shared.contracts.common import Channel, Language, Priority, Product
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ComplaintRegistered

RECEIVED = datetime(2026, 10, 12, 2, 30, tzinfo=UTC)


class FakeRecords:
    """Keeps each customer's records in a dict, as the Mongo store does."""

    def __init__(self) -> None:
        self.by_customer: dict[str, CoreRecords] = {}
        self.stores = 0

    async def load(self, customer_id: str) -> CoreRecords | None:
        found = next((r for r in self.by_customer.values() if r.accounts[0]["_id"] == account_id_of(customer_id)), None)
        return copy.deepcopy(found)

    async def store(self, records: CoreRecords) -> None:
        self.stores += 1
        self.by_customer[records.accounts[0]["customer_id"]] = copy.deepcopy(records)


class FakeRepo:
    """Investigation documents and their outbox events, in memory."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.events: list[Envelope[Any]] = []

    async def get(self, case_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.docs.get(case_id))

    async def create(self, doc: dict[str, Any], events: list[Envelope[Any]]) -> bool:
        if doc["_id"] in self.docs:
            return False
        self.docs[doc["_id"]] = copy.deepcopy(doc)
        self.events += events
        return True

    async def replace(self, doc: dict[str, Any], expected: dict[str, Any], events: list[Envelope[Any]]) -> bool:
        current = self.docs.get(doc["_id"])
        if current is None or any(current.get(k) != v for k, v in expected.items()):
            return False
        self.docs[doc["_id"]] = copy.deepcopy(doc)
        self.events += events
        return True

    async def add_complaint(self, case_id: str, complaint_id: str) -> None:
        ids = self.docs[case_id]["complaint_ids"]
        if complaint_id not in ids:
            ids.append(complaint_id)

    def of_type(self, event_type: str) -> list[Envelope[Any]]:
        return [e for e in self.events if e.event_type == event_type]


class FakeCategoriser:
    """Returns a fixed category, counting calls."""

    def __init__(self, code: str = "collection_conduct", confidence: float = 0.8) -> None:
        self.code, self.confidence, self.calls = code, confidence, 0

    def __call__(self, text: str) -> tuple[str, float]:
        self.calls += 1
        return self.code, self.confidence


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
