"""The simulated core systems on the real MongoDB-wire server: seeding, round trips, idempotence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.investigation.claims import read_claims
from services.investigation.facts import Rules, compute
from services.investigation.records import normalise, product_of, synthesize
from services.investigation.repository import RecordsRepository, Repository
from services.investigation.seed import seed
from services.investigation.settings import Settings
from shared.mongo import service_database
from shared.settings import CommonSettings

pytestmark = pytest.mark.integration

TEXT = "借款本金20000元，分期12期，到手只有17000元。逾期后催收一天打了二十多个电话，晚上十一点还打，还打给我同事，还收会员费"
RECEIVED = datetime(2026, 10, 12, 2, 30, 15, 123456, tzinfo=UTC)


async def test_records_round_trip_and_store_twice(settings: CommonSettings, mongo_client: Any) -> None:
    db = service_database(mongo_client, settings.mongo, "investigation")
    store = RecordsRepository(db)
    await store.ensure_indexes()
    made = synthesize(customer_id="cust-r1", case_id="case-r1", claims=read_claims(TEXT),
                      product=product_of(TEXT, None), received_at=RECEIVED)
    assert made.collection_contacts and made.charges and made.repayment_schedules
    await store.store(made)
    await store.store(made)  # a redelivery stores again: duplicates are ignored, nothing doubles
    loaded = await store.load("cust-r1")
    assert loaded is not None
    assert await db["core_records"].count_documents({}) == 1  # one document per customer, by _id
    assert await db["appraisals"].count_documents({}) == len(made.appraisals)
    for name, docs in made.items():
        assert getattr(loaded, name) == sorted(docs, key=lambda d: d["_id"]), name  # exact, incl. times and fen
    assert loaded == normalise(made)  # what the simulator investigates fresh records as
    as_of = RECEIVED.replace(microsecond=0)
    assert compute(loaded, rules=Rules(), as_of=as_of).items() == compute(made, rules=Rules(), as_of=as_of).items()
    assert await store.load("cust-unknown") is None


async def test_seed_writes_reference_data_and_customers_once(settings: CommonSettings, mongo_client: Any) -> None:
    s = Settings(environment="test", kafka=settings.kafka, mongo=settings.mongo, rate_cap_apr="0.20")
    assert await seed(s, complaints=12) == 12
    assert await seed(s, complaints=12) == 12
    db = service_database(mongo_client, settings.mongo, "investigation")
    assert await db["products"].count_documents({}) == 7
    cap = await db["rate_caps"].find_one({"_id": "consumer_loan"})
    assert cap is not None and cap["apr_cap"] == "0.20" and cap["hard_cap"] == "0.36"
    assert await db["core_records"].count_documents({}) == 12
    await Repository(db).ensure_indexes()
