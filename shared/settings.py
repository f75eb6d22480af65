"""Settings shared by every service: where Kafka and MongoDB are, how names are prefixed,
and how bearer tokens are checked.

Each group reads its own environment variables (``PARLEY_KAFKA_*``, ``PARLEY_MONGO_*``,
``PARLEY_AUTH_*``, ``PARLEY_*``); a service's own ``settings.py`` composes them with its own fields. Nothing
is read at import time: call the service's cached ``get_settings()``.

The local zone is one setting for every service, ``PARLEY_TIMEZONE`` (``timezone``, with
``zone`` as a ``ZoneInfo``); a service that had its own variable declares
``timezone = timezone_field("PARLEY_<SERVICE>_TIMEZONE")`` so the old name still overrides it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
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
    command_counts: str = Field(
        "", description="A diagnostic: a file this process keeps its count of database commands "
        "in (by command and collection, JSON, rewritten at most once a second); empty: off.",
    )

    def database(self, service: str) -> str:
        """Return the database name a service owns."""
        return f"{self.db_prefix}{service}"


#: The development secret of bearer tokens: fine on a laptop, refused in production.
DEV_AUTH_SECRET = "parley-development-secret-not-for-production"
#: The shortest HS256 secret production accepts (RFC 7518 3.2: at least the hash size).
MIN_SECRET_BYTES = 32


class AuthSettings(BaseSettings):
    """How every API checks bearer tokens (``shared.auth``): one issuer, one audience.

    HS256 with ``secret`` by default (development tokens from ``python -m shared.auth
    token``); RS256 with ``jwks_url`` or ``public_key`` for a real identity provider.
    """

    model_config = SettingsConfigDict(env_prefix="PARLEY_AUTH_", extra="ignore")

    algorithm: Literal["HS256", "RS256"] = Field(
        "HS256", description="HS256 (shared secret) or RS256 (an identity provider's key pair)."
    )
    secret: SecretStr = Field(
        SecretStr(DEV_AUTH_SECRET),
        description=f"HS256 secret; production refuses the default and any secret under "
        f"{MIN_SECRET_BYTES} bytes.",
    )
    public_key: str | None = Field(
        None, description="RS256: the identity provider's public key, PEM text or a PEM file's path."
    )
    jwks_url: str | None = Field(
        None, description="RS256: the identity provider's JWKS URL (keys picked by the token's kid)."
    )
    issuer: str = Field("parley", min_length=1, description="Required iss of every token.")
    audience: str = Field("parley", min_length=1, description="Required aud of every token.")
    leeway_s: float = Field(
        0.0, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat, seconds."
    )

    @model_validator(mode="after")
    def _rs256_has_a_key(self) -> AuthSettings:
        if self.algorithm == "RS256" and not (self.public_key or self.jwks_url):
            raise ValueError("RS256 needs PARLEY_AUTH_JWKS_URL or PARLEY_AUTH_PUBLIC_KEY")
        return self

    def public_key_pem(self) -> str | None:
        """The RS256 public key as PEM text (read from the file when a path was given)."""
        if not self.public_key:
            return None
        if self.public_key.lstrip().startswith("-----BEGIN"):
            return self.public_key
        return Path(self.public_key).read_text(encoding="ascii")

    def unsafe_for(self, environment: str) -> list[str]:
        """Why these settings may not serve ``environment`` (empty when they may)."""
        if environment != "production" or self.algorithm != "HS256":
            return []
        secret = self.secret.get_secret_value()
        if secret == DEV_AUTH_SECRET:
            return ["PARLEY_AUTH_SECRET is the development default"]
        if len(secret.encode()) < MIN_SECRET_BYTES:
            return [f"PARLEY_AUTH_SECRET is shorter than {MIN_SECRET_BYTES} bytes"]
        return []


class CommonSettings(BaseSettings):
    """What every service has: its environment, logging, Kafka, MongoDB and token checks."""

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
    metrics_port: int = Field(
        0, ge=0, le=65535, validation_alias=AliasChoices("PARLEY_METRICS_PORT", "metrics_port"),
        description="Port a worker serves its Prometheus metrics on (127.0.0.1, /metrics); worker k "
        "of a service uses this + k - 1. 0: off. APIs serve theirs at GET /metrics.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)

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
