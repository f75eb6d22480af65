"""Contracts of the supervision service, which watches every stream and deadline.

At their v1 core: the stage's own issue adds optional fields (never renames or removes
one) as it builds the stage; ``extra="ignore"`` lets consumers read newer producers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shared.contracts.envelope import Payload


class SupervisionAlert(Payload):
    """Something needs a person's attention: a deadline, a dead letter, a breach."""

    event_type = "supervision.alert"

    kind: str = Field(description="deadline_warning, deadline_breached, dead_letter, ...")
    severity: Literal["info", "warning", "critical"]
    message: str
    due_at: AwareDatetime | None = None
