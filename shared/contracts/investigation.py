"""Contracts of stage 2, investigation (初步调查与核实).

At their v1 core: the stage's own issue adds optional fields (never renames or removes
one) as it builds the stage; ``extra="ignore"`` lets consumers read newer producers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.contracts.common import Category
from shared.contracts.envelope import Payload


class InvestigationCompleted(Payload):
    """Investigation finished with a finding. Emitted by investigation."""

    event_type = "investigation.completed"

    case_number: str
    category: Category
    finding: Literal["substantiated", "partly_substantiated", "unsubstantiated"]
    reasons: list[str] = Field(default_factory=list)
    complex_case: bool = False
