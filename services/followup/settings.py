"""Follow-up settings (env prefix ``PARLEY_FOLLOWUP_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings, timezone_field


class Settings(CommonSettings):
    """What follow-up needs on top of the common settings."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_FOLLOWUP_", extra="ignore")

    sweep_interval_s: float = Field(60, gt=0, description="How often overdue steps are checked.")
    timezone: str = timezone_field("PARLEY_FOLLOWUP_TIMEZONE")


@lru_cache
def get_settings() -> Settings:
    """Return the process's settings, read once from the environment."""
    return Settings()
