"""Supervision settings (env prefix ``PARLEY_SUPERVISION_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class Settings(CommonSettings):
    """What supervision needs on top of the common settings."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_SUPERVISION_", extra="ignore")

    warning_days: float = Field(
        3, gt=0, description="Warn this many days before a case's regulatory deadline."
    )
    sweep_interval_s: float = Field(
        30, gt=0, description="How often deadlines are checked and outboxes relayed."
    )


@lru_cache
def get_settings() -> Settings:
    """Return the process's settings, read once from the environment."""
    return Settings()
