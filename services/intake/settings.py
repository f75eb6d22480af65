"""Intake's settings: one pydantic-settings class, environment prefix ``PARLEY_INTAKE_``.

Kafka and MongoDB come from the shared ``PARLEY_KAFKA_*`` / ``PARLEY_MONGO_*`` variables;
``environment``, ``log_level`` and ``log_json`` accept the shared ``PARLEY_*`` names too.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.clock import TIERS
from shared.crypto import CryptoSettings
from shared.settings import CommonSettings, timezone_field


class Settings(CommonSettings):
    """Everything the intake worker and API can be told."""

    model_config = SettingsConfigDict(
        env_prefix="PARLEY_INTAKE_", extra="ignore", populate_by_name=True
    )

    environment: str = Field(
        "development",
        validation_alias=AliasChoices("PARLEY_INTAKE_ENVIRONMENT", "PARLEY_ENVIRONMENT", "environment"),
        description="development, test or production.",
    )
    log_level: str = Field(
        "INFO",
        validation_alias=AliasChoices("PARLEY_INTAKE_LOG_LEVEL", "PARLEY_LOG_LEVEL", "log_level"),
        description="Root log level.",
    )
    log_json: bool = Field(
        False,
        validation_alias=AliasChoices("PARLEY_INTAKE_LOG_JSON", "PARLEY_LOG_JSON", "log_json"),
        description="Write log lines as JSON objects.",
    )

    timezone: str = timezone_field("PARLEY_INTAKE_TIMEZONE")
    case_number_prefix: str = Field(
        "TS", pattern=r"^[A-Z]{1,6}$", description="Prefix of human case numbers (TS-YYYYMMDD-NNNNNN)."
    )
    decision_deadline_days: int = Field(
        15,
        description="Tier of the decision deadline, in Beijing days after the day of receipt "
        "(银行业保险业消费投诉处理管理办法: 15; one of shared.clock.TIERS: 15, 30, 60; docs/clock.md).",
    )
    duplicate_window_days: int = Field(
        30, ge=0, le=365,
        description="A complaint by the same customer about the same matter within this many days "
        "of the open case's last complaint joins that case as a linked complaint.",
    )
    repeat_window_days: int = Field(
        365, ge=0, le=3650,
        description="A complaint about the same matter as a case closed within this many days is "
        "flagged as a repeat and opens a new case linked to the closed one.",
    )
    new_facts_similarity: float = Field(
        0.5, ge=0, le=1,
        description="Below this text similarity to every earlier complaint of the case, a linked "
        "complaint counts as bringing new facts (which restarts the clock).",
    )
    high_amount: Decimal = Field(
        Decimal("50000"), ge=0, description="Disputed amount (CNY) from which priority rises by two."
    )
    elevated_amount: Decimal = Field(
        Decimal("10000"), ge=0, description="Disputed amount (CNY) from which priority rises by one."
    )
    low_amount: Decimal = Field(
        Decimal("200"), ge=0, description="Below this disputed amount a case with no other signal is low."
    )
    contact_point_zh: str = Field(
        "客户投诉专线 400-000-0000（工作日 9:00–18:00）或 App「我的-投诉与建议」",
        description="Contact point named in Chinese acknowledgements.",
    )
    contact_point_en: str = Field(
        "complaints line 400-000-0000 (weekdays 9:00-18:00) or in the app under Me > Complaints",
        description="Contact point named in English acknowledgements.",
    )
    relay_interval_s: float = Field(
        5.0, gt=0, description="Seconds between sweeps publishing events a crash left in outboxes."
    )
    register_batch_size: int = Field(
        500, ge=1, le=5000, description="Most complaints registered in one batch (bulk writes)."
    )
    relay_grace_s: float = Field(
        15.0, ge=0,
        description="The sweep leaves outboxes younger than this to the registration that wrote "
        "them (which publishes at once), so a sweep does not publish the same event twice.",
    )
    customer_wait_s: float = Field(
        20.0, gt=0, le=300,
        description="How long a batch waits while another worker process is placing complaints of "
        "the same customer (its placement committed, its cases not yet written) before the batch "
        "is retried.",
    )
    customer_claim_stale_s: float = Field(
        30.0, gt=0, le=3600,
        description="A customer's claim or committed placement not applied after this many "
        "seconds was left by a worker that died; other workers go on without it (its "
        "complaint's redelivery places it afresh).",
    )
    api_register_wait_s: float = Field(
        2.0, ge=0, le=30,
        description="How long POST /complaints waits for the worker to register before answering "
        "202 without a case number.",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024,
        description="Largest HTTP request body read (413 above); larger texts than allowed get 422.",
    )
    datadir: str = Field(
        "var/faust/intake", description="faust's data directory for the worker (created if missing)."
    )
    page_size_max: int = Field(100, ge=1, le=1000, description="Largest page of GET /cases.")
    retention_days: int = Field(
        1096, ge=1, le=36500,
        description="Days after a case is closed that the originals of its personal data are kept "
        "(then erased; the case keeps its masks). Default 3 years and a leap day: records are kept "
        "at least 3 years after closure (PBoC consumer-protection rules).",
    )
    retention_sweep_interval_s: float = Field(
        3600.0, gt=0, description="Seconds between sweeps erasing originals whose retention ended."
    )
    rotation_interval_s: float = Field(
        86400.0, gt=0,
        description="Seconds between sweeps re-encrypting originals still under an old key "
        "(PARLEY_CRYPTO_ACTIVE_KEY changed); one read of personal_data's _id and kid per sweep.",
    )
    crypto: CryptoSettings = Field(
        default_factory=CryptoSettings,
        description="The key ring sealing personal data originals (PARLEY_CRYPTO_KEYS, "
        "PARLEY_CRYPTO_ACTIVE_KEY; shared.crypto).",
    )

    @field_validator("decision_deadline_days")
    @classmethod
    def _a_tier(cls, value: int) -> int:
        if value not in TIERS:
            raise ValueError(f"must be one of the tiers {', '.join(map(str, TIERS))} (shared.clock)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The configured zone as a ``ZoneInfo``."""
        return ZoneInfo(self.timezone)


@lru_cache
def get_settings() -> Settings:
    """Return the process's settings, read once from the environment."""
    return Settings()
