"""Assignment and recusal (回避): who handles a case, by skill, language, load and conflicts."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.negotiation.auth import Principal
from services.negotiation.authority import rank
from services.negotiation.errors import Forbidden, Unprocessable
from services.negotiation.handlers.common import (
    actor,
    check_version,
    conflicted,
    load_case,
    mark,
    require_staff_action,
)
from services.negotiation.handlers.ports import Store
from services.negotiation.models import AgentProfile, Recusal, Workspace


class Directory(Protocol):
    """What picking an agent reads: the directory and each agent's load."""

    async def list_agents(self, team: str | None = None) -> list[AgentProfile]: ...
    async def load(self, agent_id: str) -> int: ...


class BatchDirectory:
    """The directory and the agents' loads for one batch of assignments: each read once, and
    the loads counted up as the batch assigns, so a batch spreads its cases over the agents as
    one-by-one assignment would (instead of every case going to the agent least loaded before it)."""

    def __init__(self, store: Directory) -> None:
        self._store = store
        self._agents: dict[str | None, list[AgentProfile]] = {}
        self._loads: dict[str, int] = {}

    async def list_agents(self, team: str | None = None) -> list[AgentProfile]:
        if team not in self._agents:
            self._agents[team] = await self._store.list_agents(team)
        return self._agents[team]

    async def load(self, agent_id: str) -> int:
        if agent_id not in self._loads:
            self._loads[agent_id] = await self._store.load(agent_id)
        return self._loads[agent_id]

    def took(self, agent_id: str) -> None:
        """Count one more case on ``agent_id`` (picked for a case of this batch)."""
        self._loads[agent_id] = self._loads.get(agent_id, 0) + 1


async def pick_agent(ws: Workspace, *, repo: Directory, team: str | None = None,
                     exclude: str | None = None) -> AgentProfile | None:
    """Pick the least-loaded active agent with the case's skills and no conflict (not ``exclude``)."""
    best: tuple[float, int, str] | None = None
    chosen = None
    for agent in await repo.list_agents(team):
        if not agent.active or agent.role != "agent" or agent.agent_id == exclude:
            continue
        if agent.categories and ws.category not in agent.categories:
            continue
        if ws.language not in agent.languages:
            continue
        if ws.recused(agent.agent_id) or (ws.customer_id and ws.customer_id in agent.conflicted_customer_ids):
            continue
        load = await repo.load(agent.agent_id)
        if load >= agent.max_load:
            continue
        key = (load / max(agent.max_load, 1), load, agent.agent_id)
        if best is None or key < best:
            best, chosen = key, agent
    return chosen


async def assign(
    case_id: str, agent_id: str | None, *, p: Principal, expected_version: int | None,
    repo: Store, now: datetime,
) -> Workspace:
    """Assign a case to an agent (or the best one by skill and load). Team leads and up."""
    ws = await load_case(case_id, p, repo=repo)
    await require_staff_action(ws, p, repo=repo)
    if rank(p.role) < rank("team_lead"):
        raise Forbidden("only a team lead, manager or the committee may assign cases")
    check_version(ws, expected_version)
    if agent_id is None:
        agent = await pick_agent(ws, repo=repo, team=p.team if p.role == "team_lead" else None)
        if agent is None:
            raise Unprocessable("no available agent has the skills and capacity for this case", field="agent_id")
    else:
        agent = await repo.get_agent(agent_id)
        if agent is None or (p.role == "team_lead" and agent.team != p.team):
            raise Unprocessable(f"agent {agent_id} is not in the directory of your team", field="agent_id")
        if await conflicted(ws, agent_id, repo):
            raise Forbidden(f"agent {agent_id} is recused from case {case_id} and cannot be assigned")
    ws.assigned_agent, ws.team = agent.agent_id, agent.team
    mark(ws, now, "assigned", by=p.sub, detail=f"agent {agent.agent_id} (team {agent.team})")
    return await repo.save(ws, ws.version, [])


async def recuse(
    case_id: str, agent_id: str, reason: str, *, p: Principal, expected_version: int | None,
    repo: Store, now: datetime,
) -> Workspace:
    """Record that an agent must not handle a case (回避); reassign if they held it."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role in ("auditor", "customer"):
        raise Forbidden(f"a {p.role} may not record recusals")
    if agent_id != p.sub and rank(p.role) < rank("team_lead"):
        raise Forbidden("an agent may recuse only themselves; ask your team lead")
    check_version(ws, expected_version)
    if ws.recused(agent_id):
        return ws
    ws.recusals.append(Recusal(agent_id=agent_id, reason=reason, by=actor(p), at=now))
    mark(ws, now, "recusal", by=p.sub, detail=f"agent {agent_id}: {reason}")
    if ws.assigned_agent == agent_id:
        ws.assigned_agent = None
        agent = await pick_agent(ws, repo=repo, team=ws.team)
        if agent is not None:
            ws.assigned_agent = agent.agent_id
            mark(ws, now, "reassigned", detail=f"agent {agent.agent_id} after recusal")
    return await repo.save(ws, ws.version, [])
