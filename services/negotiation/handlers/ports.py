"""The storage port negotiation's rules use: a Protocol the MongoDB repository and the unit
tests' in-memory fake both implement, so the type checker keeps the fake honest.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from services.negotiation.models import AgentProfile, Workspace
from shared.contracts.envelope import Envelope


class Store(Protocol):
    """What the business rules read and write: workspaces by id, the directory, references."""

    async def get(self, case_id: str) -> Workspace | None:
        """Return a case's workspace, or None."""

    async def save(self, ws: Workspace, expected_version: int, events: list[Envelope[Any]]) -> Workspace:
        """Write the workspace and the events it owes in one write; ``Conflict`` if stale."""

    async def get_many(self, case_ids: list[str]) -> dict[str, Workspace]:
        """Return the workspaces of ``case_ids`` that exist, by case id."""

    async def save_many(self, items: list[tuple[Workspace | None, Workspace, list[Envelope[Any]]]]
                        ) -> tuple[dict[str, dict[str, Any] | None], set[str]]:
        """Write many workspaces (each: as read or None, to write, events owed); return per case
        written with events its outbox items (None: read the outbox back, it may hold older
        ones) and the ids not written because they changed meanwhile."""

    async def get_agent(self, agent_id: str) -> AgentProfile | None:
        """Return an agent's profile, or None."""

    async def list_agents(self, team: str | None = None) -> list[AgentProfile]:
        """Return the directory (of one team if given)."""

    async def load(self, agent_id: str) -> int:
        """Return how many open cases an agent holds."""

    async def peer_pcts(self, query: dict[str, Any]) -> list[Decimal]:
        """Return the relief ratios (%) of past settlements in a fairness cell."""

    async def add_ref(self, doc: dict[str, Any]) -> None:
        """Add an agreed settlement to the fairness reference set (idempotent)."""

    async def put_dossier(self, dossier_id: str, case_id: str, data: dict[str, Any], html: str) -> None:
        """Store an escalation dossier (idempotent on its id)."""

    async def open_near_deadline(self, before: datetime, *, limit: int = 100) -> list[str]:
        """Return ids of open cases whose deadline is before ``before``."""
