"""After the agreement: what follow-up reports back (``execution.progressed``,
``settlement.executed``, ``case.closed``).

Negotiation keeps them on the workspace so the customer's view can say, to the end, where
the case stands: each agreed term carried out, each instalment paid or missed, everything
executed, then closed. Each is idempotent per event (a step's progress also per agreement,
step and outcome); an event for a case negotiation never heard of is ignored (nothing to
show anyone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.negotiation.handlers.common import mark, until_saved
from services.negotiation.handlers.ports import Store
from services.negotiation.models import Closure, ExecutionRecord, StepProgress, Workspace
from shared.contracts import followup
from shared.contracts.envelope import Envelope

log = logging.getLogger(__name__)

Executed = Envelope[followup.SettlementExecuted]
Closed = Envelope[followup.CaseClosed]
Progressed = Envelope[followup.ExecutionProgressed]


def progressed(ws: Workspace, env: Progressed) -> Workspace | None:
    """The workspace with a step's progress recorded; None when it is already recorded (this
    event, or the same outcome of the same step of the same agreement)."""
    p = env.payload
    agreement_id = p.agreement_id or ""
    if any(r.event_id == str(env.event_id) or (r.agreement_id, r.step_id, r.outcome) == (agreement_id, p.step_id, p.outcome)
           for r in ws.progress):
        return None
    ws = ws.model_copy(deep=True)
    ws.progress.append(StepProgress(
        at=env.occurred_at, event_id=str(env.event_id), agreement_id=agreement_id, step_id=p.step_id, kind=p.kind,
        owner=p.owner, outcome=p.outcome, title_zh=p.title_zh, title_en=p.title_en,
        instalment_number=p.instalment_number, amount=p.amount, due_date=p.due_date,
        instalments_total=p.instalments_total, instalments_paid=p.instalments_paid,
        instalments_missed=p.instalments_missed,
    ))
    mark(ws, env.occurred_at, f"step {p.step_id} {p.outcome}", by="followup", detail=f"agreement {agreement_id}")
    return ws


def executed(ws: Workspace, env: Executed) -> Workspace | None:
    """The workspace with the execution recorded; None when this event is already recorded."""
    if any(e.event_id == str(env.event_id) for e in ws.executions):
        return None
    ws = ws.model_copy(deep=True)
    ws.executions.append(ExecutionRecord(at=env.occurred_at, agreement_id=env.payload.agreement_id,
                                         event_id=str(env.event_id)))
    mark(ws, env.occurred_at, "settlement executed", by="followup", detail=f"agreement {env.payload.agreement_id}")
    return ws


def closed(ws: Workspace, env: Closed) -> Workspace | None:
    """The workspace with the closure recorded; None when it is already recorded."""
    if ws.closure is not None and ws.closure.event_id == str(env.event_id):
        return None
    ws = ws.model_copy(deep=True)
    ws.closure = Closure(at=env.occurred_at, outcome=env.payload.outcome, event_id=str(env.event_id))
    mark(ws, env.occurred_at, "case closed", by=env.producer, detail=f"outcome {env.payload.outcome}")
    return ws


async def _apply(case_id: str, rule: Callable[[Workspace, Any], Workspace | None], env: Envelope[Any], *,
                 repo: Store) -> bool:
    async def attempt() -> bool:
        current = await repo.get(case_id)
        if current is None:
            log.info("%s for a case negotiation does not know; ignored", env.event_type)
            return False
        ws = rule(current, env)
        if ws is None:
            return False
        await repo.save(ws, current.version, [])
        return True

    return await until_saved(attempt, f"case {case_id} kept changing while recording {env.event_type}")


async def record_progress(env: Progressed, *, repo: Store, now: datetime | None = None) -> bool:
    """Keep follow-up's report of one step or instalment; return whether it changed."""
    del now
    return await _apply(env.case_id, progressed, env, repo=repo)


async def record_execution(env: Executed, *, repo: Store, now: datetime | None = None) -> bool:
    """Keep follow-up's report that the agreed settlement was carried out; return whether it changed."""
    del now
    return await _apply(env.case_id, executed, env, repo=repo)


async def record_closure(env: Closed, *, repo: Store, now: datetime | None = None) -> bool:
    """Keep the case's closure; return whether it changed."""
    del now
    return await _apply(env.case_id, closed, env, repo=repo)
