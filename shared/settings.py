"""Settings shared by every service: where Kafka and MongoDB are, and how names are prefixed.

Each group reads its own environment variables (``PARLEY_KAFKA_*``, ``PARLEY_MONGO_*``,
``PARLEY_*``); a service's own ``settings.py`` composes them with its own fields. Nothing
is read at import time: call the service's cached ``get_settings()``.

The local zone is one setting for every service, ``PARLEY_TIMEZONE`` (``timezone``, with
``zone`` as a ``ZoneInfo``); a service that had its own variable declares
``timezone = timezone_field("PARLEY_<SERVICE>_TIMEZONE")`` so the old name still overrides it.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.clock import DEFAULT_TIMEZONE
from shared.clock import zone as zone_named

TIMEZONE_DESCRIPTION = (
    "IANA zone of local-time rules and of dates shown to people (storage is UTC); "
    "PARLEY_TIMEZONE for every service."
)


class KafkaSettings(BaseSettings):
    """How to reach Kafka and how to name topics."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_KAFKA_", extra="ignore")

    bootstrap: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    topic_prefix: str = Field(
        "",
        description="Prepended to every topic and consumer-group name (tests use one per test).",
    )
    partitions: int = Field(6, ge=1, description="Partitions for topics this project creates.")
    replication_factor: int = Field(1, ge=1, description="Replication factor for new topics.")
    session_timeout_s: float = Field(10.0, gt=0, description="Consumer-group session timeout.")
    rebalance_timeout_s: float = Field(20.0, gt=0, description="Consumer-group rebalance timeout.")
    heartbeat_interval_s: float = Field(1.0, gt=0, description="Consumer heartbeat interval.")
    message_max_bytes: int = Field(
        1_048_588, ge=4096,
        description="The broker's largest record batch (Kafka's message.max.bytes, compressed "
        "size). A dead letter whose copy would not fit (less 64 KiB headroom) is kept in the "
        "consuming service's database instead, with a reference on the dead-letter topic.",
    )

    def topic(self, name: str) -> str:
        """Return the physical topic name of a catalogue topic."""
        return f"{self.topic_prefix}{name}"


class MongoSettings(BaseSettings):
    """How to reach MongoDB (or a MongoDB wire-protocol server such as FerretDB)."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_MONGO_", extra="ignore")

    url: str = Field("mongodb://127.0.0.1:27017/", description="MongoDB connection string.")
    db_prefix: str = Field(
        "parley_", description="Prepended to each service's database name (tests use their own)."
    )
    server_selection_timeout_ms: int = Field(10_000, gt=0, description="Driver selection timeout.")
    max_pool_size: int = Field(
        16, ge=1, le=500, description="Most connections one process opens to the database."
    )

    def database(self, service: str) -> str:
        """Return the database name a service owns."""
        return f"{self.db_prefix}{service}"


class CommonSettings(BaseSettings):
    """What every service has: its environment, logging, Kafka and MongoDB."""

    # The common fields keep their PARLEY_* names in every service's subclass (whose own
    # fields use its PARLEY_<SERVICE>_ prefix); they can also be passed by field name.
    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore", populate_by_name=True)

    environment: str = Field(
        "development",
        validation_alias="PARLEY_ENVIRONMENT",
        description="development, test or production; production refuses defaults.",
    )
    log_level: str = Field("INFO", validation_alias="PARLEY_LOG_LEVEL", description="Root log level.")
    log_json: bool = Field(
        False, validation_alias="PARLEY_LOG_JSON", description="Write log lines as JSON objects."
    )
    timezone: str = Field(
        DEFAULT_TIMEZONE,
        validation_alias=AliasChoices("PARLEY_TIMEZONE", "timezone"),
        description=TIMEZONE_DESCRIPTION,
    )
    worker_index: int = Field(
        1, ge=1, validation_alias=AliasChoices("PARLEY_WORKER_INDEX", "worker_index"),
        description="Which of a service's N worker processes on one machine this is (1..N); "
        "workers after the first get their own faust data directory.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)

    @field_validator("environment")
    @classmethod
    def _known_environment(cls, value: str) -> str:
        if value not in {"development", "test", "production"}:
            raise ValueError("must be development, test or production")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        zone_named(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The configured zone (``timezone``) as a ``ZoneInfo``."""
        return zone_named(self.timezone)


def timezone_field(service_variable: str) -> Any:
    """Return the ``timezone`` field of a service whose older variable (``PARLEY_<SERVICE>_TIMEZONE``)
    still overrides the common ``PARLEY_TIMEZONE``; both read into the one setting."""
    return Field(
        DEFAULT_TIMEZONE,
        validation_alias=AliasChoices(service_variable, "PARLEY_TIMEZONE", "timezone"),
        description=TIMEZONE_DESCRIPTION + f" {service_variable} overrides it for this service.",
    )
