"""Seed the simulated core systems: ``python -m services.investigation seed [--complaints N]``.

Always writes the reference data (products, rate caps). With ``--complaints N`` it also
creates the records of the customers of the first N complaints of
``complaints-zh/<split>.csv`` (customer ids ``zh-<split>-<row>``), exactly as the worker
would on first sight, so demos and load tests start with a populated store. Idempotent.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.investigation.app import SERVICE, prepare
from services.investigation.ports import RecordsRequest
from services.investigation.records import SimulatedCoreSystems, product_of
from services.investigation.repository import RecordsRepository
from services.investigation.settings import Settings, get_settings
from shared.mongo import make_client, service_database

log = logging.getLogger(__name__)


def shared_data() -> Path:
    """``$PARLEY_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    env = os.environ.get("PARLEY_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


async def seed(settings: Settings, *, complaints: int = 0, split: str = "dev", chunk: int = 500) -> int:
    """Seed reference data and the records of ``complaints`` customers; return customers seeded.

    Customers whose records exist are left as they are; the rest are written in bulk,
    ``chunk`` customers per insert.
    """
    await prepare(settings)
    if not complaints:
        return 0
    client = make_client(settings.mongo)
    try:
        store = SimulatedCoreSystems(RecordsRepository(service_database(client, settings.mongo, SERVICE)))
        path = shared_data() / "complaints-zh" / f"{split}.csv"
        base = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
        requests: list[RecordsRequest] = []
        with path.open(encoding="utf-8", newline="") as fh:
            for i, row in enumerate(csv.reader(fh)):
                if len(requests) >= complaints:
                    break
                if len(row) != 2:
                    continue
                requests.append(RecordsRequest(customer_id=f"zh-{split}-{i:05d}", case_id=f"seed-{split}-{i:05d}",
                                               text=row[0], product=product_of(row[0], None),
                                               received_at=base + timedelta(hours=i)))
        for start in range(0, len(requests), chunk):
            await store.load_many(requests[start:start + chunk])  # creates those not seen yet
        return len(requests)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and seed; exit 0."""
    parser = argparse.ArgumentParser(prog="python -m services.investigation seed")
    parser.add_argument("--complaints", type=int, default=0, help="seed records for the first N complaints")
    parser.add_argument("--split", default="dev", choices=["train", "dev"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    seeded = asyncio.run(seed(get_settings(), complaints=args.complaints, split=args.split))
    log.info("reference data seeded; records for %d customers", seeded)
    return 0
