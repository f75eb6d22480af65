"""Fixtures for every tier: real servers for integration and e2e tests, unique names per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.settings import CommonSettings, KafkaSettings, MongoSettings
from tests.support.servers import Servers, provide_servers


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """Real Kafka and MongoDB-wire servers, once per test session."""
    with provide_servers() as found:
        yield found


@pytest.fixture
def unique() -> str:
    """A short id unique to this test, used in topic prefixes and database names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(servers: Servers, unique: str) -> CommonSettings:
    """Settings pointing at the test servers, with this test's own topic and database names."""
    return CommonSettings(
        environment="test",
        kafka=KafkaSettings(
            bootstrap=servers.kafka_bootstrap,
            topic_prefix=f"t{unique}.",
            partitions=3,
            session_timeout_s=6,
            rebalance_timeout_s=10,
            heartbeat_interval_s=0.5,
        ),
        mongo=MongoSettings(url=servers.mongo_url, db_prefix=f"t{unique}_"),
    )


@pytest.fixture
async def mongo_client(settings: CommonSettings) -> AsyncIterator[AsyncMongoClient[Any]]:
    """An async client on the test server; drops this test's databases afterwards."""
    from shared.mongo import make_client

    client = make_client(settings.mongo)
    try:
        yield client
    finally:
        for name in await client.list_database_names():
            if name.startswith(settings.mongo.db_prefix):
                await client.drop_database(name)
        await client.close()
