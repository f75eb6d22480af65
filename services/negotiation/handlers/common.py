"""What every flow shares: who may see and act on a case, version checks, events and notices.

Scope (who sees a case at all) and permission (who may act on it) are checked here, before
any flow changes a workspace; ``NotFound`` never reveals that a case outside the caller's
scope exists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

from services.negotiation.auth import ALL_CASES, TEAM_SCOPED, Principal
from services.negotiation.errors import Conflict, Forbidden, NotFound, StaleVersion
from services.negotiation.handlers.ports import Store
from services.negotiation.models import Actor, Offer, TimelineEntry, Workspace
from services.negotiation.texts import waived
from shared.contracts import intake
from shared.contracts.common import Channel, Language
from shared.contracts.envelope import Envelope, Payload
from shared.contracts.terms import FeeWaiver
from shared.logging import redact

PRODUCER = "negotiation"
SYSTEM = Actor(sub="system", role="system")
Target = Literal["mediation", "litigation"]
Events = list[Envelope[Any]]
T = TypeVar("T")

#: How long a consumer of an event keeps retrying a lost compare-and-set (``until_saved``):
#: longer than the claim of a writer that died between its claim and its write stays in the
#: way (``shared.mongo.claim_next_version``: 30 s, then it is stale and removed). With three
#: immediate tries, the worker that took over a SIGKILLed worker's partitions lost every
#: event of a case so blocked: the batch's retries (~15 s) ran out and it was dead-lettered.
CAS_PATIENCE_S = 45.0


async def until_saved(attempt: Callable[[], Awaitable[T]], failure: str, *,
                      patience_s: float = CAS_PATIENCE_S,
                      sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> T:
    """Run ``attempt`` (read the case, apply a rule, save) again after each lost
    compare-and-set (``Conflict``), pausing a little longer each time, until it returns or
    ``patience_s`` has passed; then raise ``Conflict(failure)``.

    For the consumers of events (a rule applied to whatever the case now is): another worker
    may be writing the same case (a rebalance hands a partition over while its old owner
    still finishes a batch; the timers of every worker sweep the same cases), or a dead one
    may have left a claim that goes stale only after a while.
    """
    deadline = time.monotonic() + patience_s
    pause = 0.02
    while True:
        try:
            return await attempt()
        except Conflict:
            if time.monotonic() + pause > deadline:
                raise Conflict(failure) from None
        await sleep(pause)
        pause = min(pause * 2, 2.0)


def event(ws: Workspace, payload: Payload, now: datetime, cause: Envelope[Any] | None = None) -> Envelope[Any]:
    """Wrap a payload about ``ws`` in an envelope keyed by its case."""
    return Envelope.wrap(
        payload, case_id=ws.case_id, producer=PRODUCER,
        correlation_id=ws.correlation_id or None, cause=cause, occurred_at=now,
    )


def actor(p: Principal) -> Actor:
    """The caller as the actor of a change."""
    return Actor(sub=p.sub, role=p.role)


def notify(ws: Workspace, kind: str, zh: tuple[str, str], en: tuple[str, str], now: datetime) -> Events:
    """A ``customer.notified`` event in the customer's language, when the customer is known."""
    if not ws.customer_id:
        return []
    subject, body = en if ws.language == "en" else zh
    subject, body = redact(subject), redact(body)
    return [event(ws, intake.CustomerNotified(
        kind=kind, language=Language(ws.language), channel=Channel.APP,
        customer_id=ws.customer_id, subject=subject, body=body,
        case_number=ws.case_number, deadline_at=ws.deadline_at,
    ), now)]


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def public_terms(offer: Offer) -> list[dict[str, Any]]:
    """The offer's terms for an outbound event, with personal numbers in free text masked.

    A waiver given as a percentage also carries the computed ``waiver_amount``, so readers
    (follow-up books the waiver) need not redo the arithmetic.
    """
    out = []
    for t in offer.terms:
        data = _redacted(t.model_dump(mode="json"))
        if isinstance(t, FeeWaiver) and t.waiver_amount is None:
            data["waiver_amount"] = format(waived(t), "f")
        out.append(data)
    return out


def mark(ws: Workspace, now: datetime, what: str, by: str = "system", detail: str = "") -> None:
    """Add a line to the case's timeline."""
    ws.timeline.append(TimelineEntry(at=now, what=what, by=by, detail=detail[:500]))


# ------------------------------------------------------------------ scope and permission


def in_scope(ws: Workspace, p: Principal) -> bool:
    """Whether the caller may see the case at all."""
    if p.role == "customer":
        # the customer sees their case from registration on (registered, being investigated)
        return ws.customer_id is not None and ws.customer_id == p.customer_id
    if ws.status == "awaiting_investigation":
        return False
    if p.role in TEAM_SCOPED:
        return ws.team == p.team
    return p.role in ALL_CASES


async def load_case(case_id: str, p: Principal, *, repo: Store) -> Workspace:
    """Return a case the caller may see, or raise ``NotFound`` (existence is not revealed)."""
    ws = await repo.get(case_id)
    if ws is None or not in_scope(ws, p):
        raise NotFound(f"case {case_id} not found")
    return ws


async def conflicted(ws: Workspace, agent_id: str, repo: Store) -> bool:
    """Whether an agent is recused from the case or conflicted with its customer (回避)."""
    if ws.recused(agent_id):
        return True
    profile = await repo.get_agent(agent_id)
    return bool(profile and ws.customer_id and ws.customer_id in profile.conflicted_customer_ids)


async def require_staff_action(ws: Workspace, p: Principal, *, repo: Store, needs_open: bool = True) -> None:
    """Refuse a staff action beyond the caller's role or recusal, or on a closed case."""
    if p.role == "auditor":
        raise Forbidden("auditors may read cases but not act on them")
    if p.role == "customer":
        raise Forbidden("this action is for staff; customers use /customer/...")
    if await conflicted(ws, p.sub, repo):
        raise Forbidden(f"you are recused from case {ws.case_id} (回避) and may not act on it")
    if p.role == "agent" and ws.assigned_agent != p.sub:
        raise Forbidden(f"case {ws.case_id} is assigned to another agent")
    if needs_open and ws.status != "open":
        raise Conflict(f"case {ws.case_id} is {ws.status}; it can no longer be changed")


def check_version(ws: Workspace, expected: int | None) -> None:
    """Refuse a change made against a stale read (If-Match / expected_version)."""
    if expected is not None and expected != ws.version:
        raise StaleVersion(
            f"case {ws.case_id} is at version {ws.version}, not {expected}: "
            "it changed since you read it; reload and try again"
        )
