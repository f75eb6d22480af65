"""Reads of personal data originals are recorded: who read which record, for what, when.

Every function that hands out decrypted originals (intake's
``IntakeRepository.read_personal_data``, ``shared.kafka.dlq.read_stored_body``) calls
``record_read`` first, in the same service's database, collection ``original_reads``. The
record is appended (one insert, never updated or deleted here); a read whose record cannot
be written fails, so there is no unrecorded read. Chaining these records into the service's
tamper-evident audit trail is the audit module's job.

A record: ``_id`` (random), ``at`` (UTC), ``reader`` (who: a token's subject or a named
job), ``purpose`` (why, in words), ``collection`` and ``record_id`` (which record),
``fields`` (which originals were handed out) and ``found`` (whether the record existed and
still held originals). Never the values.

Each record is also appended to the service's tamper-evident audit chain
(``shared.audit``, collection ``audit_chain``): action ``original_read``, ``who`` = the
reader, details = purpose, collection, record id, fields, found and the ``original_reads``
``_id``. The chain append comes after the insert; when it fails the read fails too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.audit import chain_for

#: The collection, in each service's own database, where reads of originals are recorded.
ORIGINAL_READS = "original_reads"
MAX_TEXT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _checked(name: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a read of originals needs a {name}")
    if len(value) > MAX_TEXT or _CONTROL.search(value):
        raise ValueError(f"{name} must be at most {MAX_TEXT} characters without control characters")
    return value.strip()


async def record_read(
    database: Any,
    *,
    reader: str,
    purpose: str,
    collection: str,
    record_id: str,
    fields: Sequence[str],
    found: bool,
    at: datetime | None = None,
    role: str | None = None,
    case_id: str | None = None,
) -> dict[str, Any]:
    """Append the record of one read of originals to ``original_reads`` and to the audit chain; return it."""
    record: dict[str, Any] = {
        "_id": uuid.uuid4().hex,
        "at": (at or datetime.now(UTC)).astimezone(UTC),
        "reader": _checked("reader", reader),
        "purpose": _checked("purpose", purpose),
        "collection": collection,
        "record_id": record_id,
        "fields": list(fields),
        "found": found,
    }
    await database[ORIGINAL_READS].insert_one(record)
    await chain_for(database).append(
        who=record["reader"], role=role, action="original_read", case_id=case_id, at=record["at"],
        details={"purpose": record["purpose"], "collection": collection, "record_id": record_id,
                 "fields": list(fields), "found": found, "read": record["_id"]},
    )
    return record
