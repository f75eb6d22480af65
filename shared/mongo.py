"""MongoDB access for every service: one async client, one database per service.

Uses PyMongo's ``AsyncMongoClient`` (motor's successor). Queries stay within what both
MongoDB and FerretDB v1 serve: single-document atomic writes, unique indexes, upserts,
``find_one_and_update``, and the aggregation stages listed in docs/stack.md — no
multi-document transactions, no change streams, no ``$lookup``/``$facet``.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.settings import MongoSettings


def make_client(settings: MongoSettings) -> AsyncMongoClient[dict[str, Any]]:
    """Return an async client; it connects lazily on first use."""
    return AsyncMongoClient(
        settings.url,
        serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
        tz_aware=True,
        uuidRepresentation="standard",
        appname="parley",
    )


def service_database(
    client: AsyncMongoClient[dict[str, Any]], settings: MongoSettings, service: str
) -> AsyncDatabase[dict[str, Any]]:
    """Return the database a service owns (``<db_prefix><service>``)."""
    return client[settings.database(service)]
