"""Supervision settings (env prefix ``PARLEY_SUPERVISION_``)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from services.supervision.handlers import DEFAULT_STUCK_AFTER_HOURS, STATUS_RANK
from shared.settings import CommonSettings


class Settings(CommonSettings):
    """What supervision needs on top of the common settings."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_SUPERVISION_", extra="ignore")

    warning_lead_days: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [3.0, 1.0],
        validation_alias=AliasChoices(
            "PARLEY_SUPERVISION_WARNING_LEAD_DAYS", "PARLEY_SUPERVISION_WARNING_DAYS", "warning_lead_days"
        ),
        description="Warn this many days before a case's regulatory deadline, once per lead time "
        "(PARLEY_SUPERVISION_WARNING_LEAD_DAYS: '3,1' or '[3, 1]'; an empty value turns warnings "
        "off). The older PARLEY_SUPERVISION_WARNING_DAYS (one number) still works.",
    )
    sweep_interval_s: float = Field(
        30, gt=0, description="How often deadlines are checked and outboxes relayed."
    )

    lag_interval_s: float = Field(
        60, gt=0, description="How often the worker reads every consumer group's lag "
        "(PARLEY_SUPERVISION_LAG_INTERVAL_S)."
    )
    lag_alert_threshold: int = Field(
        10_000, ge=0, description="A consumer group more records behind than this (over all its "
        "partitions) raises one consumer_lag alert until it is back at or below it "
        "(PARLEY_SUPERVISION_LAG_ALERT_THRESHOLD)."
    )

    stuck_after_hours: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_STUCK_AFTER_HOURS),
        description="Hours a case may stay in a status without any event before a case_stuck alert "
        "(PARLEY_SUPERVISION_STUCK_AFTER_HOURS, JSON: '{\"registered\": 24, \"negotiating\": 120}'; the "
        "statuses named replace the defaults, 0 turns a status's check off).",
    )
    heartbeat_down_after_s: float = Field(
        120, gt=0, description="A service's consumer group that had workers and has none for this long "
        "raises worker_down (PARLEY_SUPERVISION_HEARTBEAT_DOWN_AFTER_S).",
    )
    heartbeat_stall_after_s: float = Field(
        300, gt=0, description="A group with workers and lag that commits nothing new for this long raises "
        "worker_stalled (PARLEY_SUPERVISION_HEARTBEAT_STALL_AFTER_S).",
    )
    report_max_cases: int = Field(
        200_000, gt=0, description="The most cases one evaluation report reads (PARLEY_SUPERVISION_REPORT_MAX_CASES).",
    )

    @field_validator("stuck_after_hours", mode="before")
    @classmethod
    def _read_stuck(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if isinstance(value, dict):
            unknown = set(value) - set(STATUS_RANK)
            if unknown:
                raise ValueError(f"unknown statuses: {', '.join(sorted(unknown))}")
            return {**DEFAULT_STUCK_AFTER_HOURS, **value}
        return value

    @field_validator("warning_lead_days", mode="before")
    @classmethod
    def _read_lead_days(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(value, int | float):
            return [value]
        return value

    @field_validator("warning_lead_days")
    @classmethod
    def _positive_lead_days(cls, value: list[float]) -> list[float]:
        if any(days <= 0 for days in value):
            raise ValueError("lead times must be more than 0 days")
        return sorted(set(value), reverse=True)


@lru_cache
def get_settings() -> Settings:
    """Return the process's settings, read once from the environment."""
    return Settings()
