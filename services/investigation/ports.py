"""Investigation's ports: what its handlers need from the outside world, as Protocols.

The handlers take these as keyword-only dependencies; adapters implement them:

- ``Categoriser`` — the trained classifier (``classifier.load_or_train().predict``); unit
  tests use a fake. It takes a list of texts, so a batch is classified in one call.
- ``RecordsStore`` — the institution's core systems as investigation reads them, many
  customers at a time. Adapters: ``repository.RecordsRepository`` (the records kept in
  MongoDB, one document per customer read by ``_id``) and ``records.SimulatedCoreSystems``
  (Parley's stand-in for a real ledger: creates a customer's records on first sight, over any
  ``RecordsBacking``). Unit tests use an in-memory backing under the same simulator.
- ``InvestigationRepository`` — investigation's own case documents, one per case, each with
  its outbox; every per-message read and write is by ``_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.investigation.records import CoreRecords
from shared.contracts.common import Product


class Categoriser(Protocol):
    """Texts → (category code, confidence 0..1) for each, in order; the trained classifier in production."""

    def __call__(self, texts: Sequence[str]) -> list[tuple[str, float]]: ...


@dataclass(frozen=True)
class RecordsRequest:
    """Whose records are needed, and for which complaint (a simulator shapes new records by it;
    an adapter to real systems needs only ``customer_id``)."""

    customer_id: str
    case_id: str
    text: str
    product: Product
    received_at: datetime


class RecordsStore(Protocol):
    """The core systems' records of many customers at once."""

    async def load_many(self, requests: Sequence[RecordsRequest]) -> dict[str, CoreRecords]:
        """Return the records of each requested customer the store holds, by customer id
        (customers it holds nothing for are absent)."""
        ...


class RecordsBacking(RecordsStore, Protocol):
    """A store the simulated core systems can also write (MongoDB, or memory in unit tests)."""

    async def store_many(self, records: Sequence[CoreRecords]) -> set[str]:
        """Store each customer's records unless already stored; return the customer ids whose
        records were already there (kept as they were)."""
        ...


class InvestigationRepository(Protocol):
    """Investigation's own case documents (``_id`` = case id), each with an outbox."""

    #: the collection whose documents carry the outboxes (for ``shared.outbox.Written``)
    investigations: Any

    async def get_many(self, case_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return the stored documents of those cases that exist, by case id (reads by ``_id``)."""
        ...

    async def insert_many(self, docs: Sequence[dict[str, Any]]) -> set[str]:
        """Insert new case documents (each with its outbox); return the ids inserted (a duplicate
        ``_id`` means the case is already there and is skipped)."""
        ...

    async def replace(self, doc: dict[str, Any], expected: dict[str, Any], events: Sequence[Any]) -> bool:
        """Replace a case's fields and add ``events`` to its outbox if it still matches ``expected``."""
        ...

    async def add_complaints(self, case_id: str, complaint_ids: Sequence[str]) -> None:
        """Record linked complaints on a case without re-investigating it."""
        ...

    async def paused(self, limit: int = 200) -> list[dict[str, Any]]:
        """Cases waiting for an external appraisal (for the periodic sweep)."""
        ...
