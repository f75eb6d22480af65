"""An in-memory stand-in for ``Repository`` (unit tests of business rules only)."""

from __future__ import annotations

import copy
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.negotiation.errors import Conflict
from services.negotiation.models import AgentProfile, Workspace
from shared.contracts.envelope import Envelope


class FakeRepo:
    """Keeps workspaces, agents, references, dossiers and owed events in dicts."""

    def __init__(self, peers: list[Decimal] | None = None) -> None:
        self.cases: dict[str, Workspace] = {}
        self.agents: dict[str, AgentProfile] = {}
        self.outbox: list[Envelope[Any]] = []
        self.refs: list[dict[str, Any]] = []
        self.dossiers: dict[str, dict[str, Any]] = {}
        self.peers = peers if peers is not None else [Decimal(x) for x in range(0, 60)]

    async def get(self, case_id: str) -> Workspace | None:
        ws = self.cases.get(case_id)
        return copy.deepcopy(ws) if ws else None

    async def save(self, ws: Workspace, expected_version: int, events: list[Envelope[Any]]) -> Workspace:
        current = self.cases.get(ws.case_id)
        if (current.version if current else 0) != expected_version:
            raise Conflict(f"case {ws.case_id} is at another version")
        saved = ws.model_copy(deep=True, update={"version": expected_version + 1})
        self.cases[ws.case_id] = saved
        self.outbox += events
        return copy.deepcopy(saved)

    async def get_many(self, case_ids: list[str]) -> dict[str, Workspace]:
        return {c: ws for c in case_ids if (ws := await self.get(c)) is not None}

    async def save_many(self, items: list[tuple[Workspace | None, Workspace, list[Envelope[Any]]]]
                        ) -> tuple[dict[str, dict[str, Any] | None], set[str]]:
        written: dict[str, dict[str, Any] | None] = {}
        stale: set[str] = set()
        for before, after, events in items:
            try:
                await self.save(after, before.version if before else 0, events)
                written[after.case_id] = {str(e.event_id): e for e in events}
            except Conflict:
                stale.add(after.case_id)
        return written, stale

    async def list_agents(self, team: str | None = None) -> list[AgentProfile]:
        return [a for a in self.agents.values() if team is None or a.team == team]

    async def get_agent(self, agent_id: str) -> AgentProfile | None:
        return self.agents.get(agent_id)

    async def load(self, agent_id: str) -> int:
        return sum(1 for w in self.cases.values() if w.assigned_agent == agent_id and w.status == "open")

    async def peer_pcts(self, query: dict[str, Any]) -> list[Decimal]:
        return list(self.peers)

    async def add_ref(self, doc: dict[str, Any]) -> None:
        self.refs.append(doc)

    async def put_dossier(self, dossier_id: str, case_id: str, data: dict[str, Any], html: str) -> None:
        self.dossiers[dossier_id] = {"json": data, "html": html}

    async def open_near_deadline(self, before: datetime, *, limit: int = 100) -> list[str]:
        return [w.case_id for w in self.cases.values()
                if w.status == "open" and w.deadline_at is not None and w.deadline_at < before]

    def types(self) -> list[str]:
        return [e.event_type for e in self.outbox]
