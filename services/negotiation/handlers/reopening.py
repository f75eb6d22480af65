"""A dissatisfied callback reopens the case (``case.reopened`` from follow-up).

The workspace opens again for a new round of negotiation: the customer's reasons go on the
communication log and the timeline, the case goes to another agent than the one who
negotiated the agreement (when the directory has one with the skills and capacity; otherwise
it waits for a team lead to assign it), it gets a new negotiation deadline
(``default_negotiation_days`` counted like the regulatory period, ``shared.clock``) so the
near-deadline sweep does not escalate it at once, and the customer is told. Idempotent per
event; an event for a case negotiation does not know, or that is not in the agreed state
(escalated, already reopened), changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from services.negotiation.handlers.assignment import pick_agent
from services.negotiation.handlers.common import Events, mark, notify, until_saved
from services.negotiation.handlers.opening import fallback_deadline
from services.negotiation.handlers.ports import Store
from services.negotiation.models import (
    Actor,
    AgentProfile,
    DeadlineChange,
    Message,
    Reopening,
    Workspace,
)
from services.negotiation.settings import Settings
from services.negotiation.texts import deadline_sentence
from shared.contracts import followup
from shared.contracts.envelope import Envelope

log = logging.getLogger(__name__)

Reopened = Envelope[followup.CaseReopened]
FOLLOWUP = Actor(sub="followup", role="system")


def reopened(ws: Workspace, env: Reopened, *, agent: AgentProfile | None, settings: Settings,
             now: datetime) -> tuple[Workspace, Events] | None:
    """The workspace open again, reassigned, with the customer's notice owed (pure); None
    when this event is already recorded or the case is not in the agreed state."""
    if any(r.event_id == str(env.event_id) for r in ws.reopenings) or ws.status != "agreed" or ws.closure:
        return None
    p = env.payload
    ws = ws.model_copy(deep=True)
    previous = ws.assigned_agent
    ws.status = "open"
    ws.assigned_agent = agent.agent_id if agent else None
    ws.team = agent.team if agent else ws.team
    ws.reopenings.append(Reopening(at=now, event_id=str(env.event_id), score=p.score, reasons=p.reasons,
                                   agreement_id=p.agreement_id, previous_agent=previous,
                                   agent=ws.assigned_agent))
    reasons = p.reasons.strip() or "（未说明 / not stated）"
    ws.messages.append(Message(
        message_id=f"M{len(ws.messages) + 1:04d}", direction="inbound", channel="call",
        body=f"回访不满意（{p.score}/5）/ not satisfied at the callback ({p.score}/5): {reasons}",
        author=FOLLOWUP, at=now,
    ))
    deadline = fallback_deadline(now, settings.default_negotiation_days)
    ws.deadline_changes.append(DeadlineChange(
        at=now, deadline_at=deadline, previous_at=ws.deadline_at, kind="other",
        reason_zh="您对处理结果不满意，案件重新打开协商", reason_en="you were not satisfied, so the case was reopened",
    ))
    ws.deadline_at = deadline
    mark(ws, now, "case reopened after a dissatisfied callback", by="followup",
         detail=f"score {p.score}/5; reasons: {p.reasons}"[:500])
    mark(ws, now, "reassigned" if agent else "waiting for assignment", by="system",
         detail=(f"agent {agent.agent_id} (team {agent.team}), not {previous or 'nobody'}" if agent
                 else f"no other agent available; team {ws.team or '-'} to assign"))
    zh_when = f"我们会在{deadline_sentence(deadline, 'zh-CN')}给您新的方案。"
    en_when = f"We will come back to you with a new offer by {deadline_sentence(deadline, 'en')}."
    events = notify(
        ws, "progress",
        (f"您的案件 {ws.case_number} 已重新打开",
         f"您在回访中表示对处理结果不满意，我们已重新打开您的案件，并安排另一位专员与您重新商定解决方案。{zh_when}"),
        (f"Your case {ws.case_number} is open again",
         "You told us at the callback that you are not satisfied, so we have reopened your case and another "
         f"colleague will work out a new solution with you. {en_when}"),
        now,
    )
    return ws, events


async def record_reopening(env: Reopened, *, repo: Store, settings: Settings, now: datetime) -> Workspace | None:
    """Reopen the workspace for a dissatisfied callback; return it when it changed."""
    async def attempt() -> Workspace | None:
        current = await repo.get(env.case_id)
        if current is None:
            log.info("case.reopened for a case negotiation does not know; ignored")
            return None
        previous = current.assigned_agent
        agent = (await pick_agent(current, repo=repo, team=current.team, exclude=previous)
                 or await pick_agent(current, repo=repo, exclude=previous))
        change = reopened(current, env, agent=agent, settings=settings, now=now)
        if change is None:
            return None
        ws, events = change
        return await repo.save(ws, current.version, events)

    return await until_saved(attempt, f"case {env.case_id} kept changing while it was being reopened")
