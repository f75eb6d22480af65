"""Investigation settings (env prefix ``PARLEY_INVESTIGATION_``)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.clock import TIERS
from shared.settings import CommonSettings, timezone_field


class Settings(CommonSettings):
    """What investigation needs on top of the common settings."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_INVESTIGATION_", extra="ignore")

    rate_cap_apr: Decimal = Field(
        Decimal("0.24"), gt=0, le=1,
        description="APR above which the cost of credit is a breach (China's usual 24 % line).",
    )
    hard_cap_apr: Decimal = Field(
        Decimal("0.36"), gt=0, le=1,
        description="APR above which charges are void and refunded in full (the 36 % line).",
    )
    contact_hours_start: int = Field(8, ge=0, le=23, description="Earliest local hour for collection contacts.")
    contact_hours_end: int = Field(21, ge=1, le=24, description="Local hour from which contacts are not allowed.")
    max_contacts_per_day: int = Field(3, ge=1, description="Most collection contacts to the debtor per local day.")
    timezone: str = timezone_field("PARLEY_INVESTIGATION_TIMEZONE")
    complex_amount: Decimal = Field(
        Decimal("50000"), gt=0, description="A disputed amount or principal from which a case is complex (CNY)."
    )
    low_confidence: float = Field(
        0.40, ge=0, le=1, description="Categoriser confidence under which a case is complex (needs a person)."
    )
    review_threshold: float = Field(
        0.60, ge=0, le=1, description="Categoriser confidence under which a finding goes out flagged "
        "review_pending and waits in the investigator review queue (docs/investigation.md#investigator-review, "
        "docs/classifier.md: on dev.csv the category is right for 85 % of the cases at or above 0.60 and "
        "52 % of those under it, which are 49 % of all).",
    )
    standard_days: int = Field(
        15, description="Tier of an ordinary case's decision deadline: Beijing days after the day of "
        "receipt (shared.clock.TIERS: 15, 30 or 60; docs/clock.md).",
    )
    complex_days: int = Field(
        30, description="Tier of a complex case's decision deadline (shared.clock.TIERS). The "
        "especially complex tier (60) needs a manager's approval (handlers.approve_especially_complex).",
    )
    sweep_interval_s: float = Field(30, gt=0, description="How often paused cases and outboxes are checked.")
    seed_on_start: bool = Field(True, description="Seed reference records at worker start when empty.")

    @field_validator("standard_days", "complex_days")
    @classmethod
    def _a_tier(cls, value: int) -> int:
        if value not in TIERS:
            raise ValueError(f"must be one of the tiers {', '.join(map(str, TIERS))} (shared.clock)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.hard_cap_apr < self.rate_cap_apr:
            raise ValueError("hard_cap_apr must be at least rate_cap_apr")
        if self.contact_hours_end <= self.contact_hours_start:
            raise ValueError("contact_hours_end must be after contact_hours_start")
        if self.complex_days < self.standard_days:
            raise ValueError("complex_days must be at least standard_days")
        return self


@lru_cache
def get_settings() -> Settings:
    """Return the process's settings, read once from the environment."""
    return Settings()
