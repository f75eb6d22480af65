"""Opening a case's workspace: what intake registered, then what investigation found.

``complaint.registered`` records the customer, text, deadline and amount; ``investigation.
completed`` opens the workspace (idempotent per case and revision), assigns it by skill and
load and owes ``negotiation.started``; a later revision updates an open workspace's findings
(an investigator's review is told to the customer), while one that comes after an agreement
or an escalation is recorded and raised for the agent, never written over the agreement; an
older revision than one already seen is ignored.
Both are read through their typed contracts (``shared.contracts``): no key guessing.

The rules are pure (``registration_recorded``, ``findings``, ``opened``, ``started``, ``revised``, ``held_back``: state in,
new state and events out); ``record_registration`` and ``open_workspace`` read, call them
and write, retrying a lost compare-and-set.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, TypeVar

from services.negotiation.handlers.assignment import BatchDirectory, pick_agent
from services.negotiation.handlers.common import Events, event, mark, notify, until_saved
from services.negotiation.handlers.ports import Store
from services.negotiation.models import (
    AgentProfile,
    DeadlineChange,
    FindingRevision,
    InvestigationDetails,
    Workspace,
)
from services.negotiation.settings import Settings
from shared.clock import TIERS, beijing_day, due, end_of_day, next_working_day
from shared.contracts import intake, investigation, negotiation
from shared.contracts.envelope import Envelope
from shared.contracts.supervision import SupervisionAlert
from shared.logging import redact

log = logging.getLogger(__name__)

Registered = Envelope[intake.ComplaintRegistered]
Completed = Envelope[investigation.InvestigationCompleted]


# ------------------------------------------------------------------ rules (pure)


def registration_recorded(ws: Workspace, env: Registered) -> Workspace | None:
    """The workspace with what intake registered; None when this event was already recorded."""
    if ws.registered_event_id == str(env.event_id):
        return None
    c = env.payload
    return ws.model_copy(update={
        "case_number": ws.case_number or c.case_number,
        "correlation_id": ws.correlation_id or env.correlation_id,
        "registered_event_id": str(env.event_id),
        "customer_id": c.customer_id,
        "customer_name_masked": c.customer_name_masked,
        "language": c.language.value,
        "product": c.product.value,
        "complaint_text": c.text,
        "demand": c.demand,
        "amount_disputed": ws.amount_disputed if c.amount_disputed is None else c.amount_disputed,
        # investigation's deadline (tiers, pauses) wins over intake's once it is known
        # (not a fallback the workspace gave itself when investigation's event carried none)
        "deadline_at": ws.deadline_at if ws.deadline_from_investigation and ws.deadline_at else (
            c.deadline_at or ws.deadline_at),
        "deadline_tier": ws.deadline_tier if ws.investigation_event_id and ws.deadline_tier else (
            c.deadline_tier or ws.deadline_tier),
        "received_at": c.received_at,
        "registered_at": c.registered_at or env.occurred_at,
    })


def fallback_deadline(opened_at: datetime, days: int) -> datetime:
    """A deadline for a case that came without one (neither intake's nor investigation's):
    ``days`` counted like the regulatory period (``shared.clock``) from the day the workspace
    opened, the nearest receipt negotiation knows of: the end (24:00 Beijing) of that Beijing
    day + ``days``, moved to the next working day when it is a rest day."""
    if days in TIERS:
        return due(opened_at, days).due_at
    last, _ = next_working_day(beijing_day(opened_at) + timedelta(days=days))
    return end_of_day(last)


def deadline_change(ws: Workspace, env: Completed, now: datetime | None = None) -> DeadlineChange | None:
    """The change of deadline investigation's event makes, with the reason the customer is
    told (complex tier, the manager-approved especially complex tier, excluded pauses); None
    when the Beijing day of the deadline stays the same or no deadline came."""
    p = env.payload
    if p.deadline_at is None or ws.deadline_at is None or beijing_day(p.deadline_at) == beijing_day(ws.deadline_at):
        return None
    zh: list[str] = []
    en: list[str] = []
    kind = "other"
    ext = p.deadline_extension
    if ext is not None or p.deadline_tier == 60:
        kind = "especially_complex"
        zh.append("您的案件情况特别复杂，经管理人员批准，处理时限延长至自受理之日起60日"
                  + (f"。原因：{redact(ext.reason)}" if ext and ext.reason else ""))
        en.append("Your case is especially complex; a manager approved extending the time limit to "
                  "60 days from receipt" + (f". Reason: {redact(ext.reason)}" if ext and ext.reason else ""))
    elif p.deadline_tier == 30 or (p.complex_case and p.deadline_tier is None):
        kind = "complex"
        why_zh = redact(p.complexity_reason_zh) if p.complexity_reason_zh else ""
        why_en = redact(p.complexity_reason_en) if p.complexity_reason_en else ""
        zh.append("您的案件情况较为复杂，处理时限延长至自受理之日起30日" + (f"。原因：{why_zh}" if why_zh else ""))
        en.append("Your case is complex, so the time limit is extended to 30 days from receipt"
                  + (f". Reason: {why_en}" if why_en else ""))
    if p.paused_days:
        if kind == "other":
            kind = "paused"
        zh.append(f"外部鉴定期间共 {p.paused_days} 日不计入处理时限")
        en.append(f"{p.paused_days} days of external appraisal do not count towards the time limit")
    if not zh:
        zh.append("调查结果调整了处理时限")
        en.append("Our investigation changed the time limit")
    return DeadlineChange(
        at=now or env.occurred_at, deadline_at=p.deadline_at, previous_at=ws.deadline_at,
        tier_days=p.deadline_tier, kind=kind,
        reason_zh="；".join(zh) + "。", reason_en="; ".join(en) + ".",
    )


def findings(ws: Workspace, env: Completed, now: datetime | None = None) -> dict[str, Any]:
    """The workspace fields an investigation.completed event sets."""
    p = env.payload
    change = deadline_change(ws, env, now)
    return {
        "deadline_changes": [*ws.deadline_changes, change] if change else ws.deadline_changes,
        "deadline_tier": p.deadline_tier or ws.deadline_tier,
        "investigation_event_id": str(env.event_id),
        "investigation_revision": p.revision,
        "category": p.category.value,
        "finding": p.finding,
        "reasons": p.reasons,
        "complex_case": p.complex_case,
        "evidence": p.evidence,
        "facts": p.facts,
        "remedy_range": p.remedy_range,
        "investigation_details": InvestigationDetails.of(p),
        "hardship": ws.hardship or p.hardship or any("hardship" in c for c in p.claims),
        "review_pending": p.review_pending,
        "amount_disputed": p.amount_disputed or ws.amount_disputed,
        # investigation's deadline counts excluded pauses (external appraisal): it wins
        "deadline_at": p.deadline_at or ws.deadline_at,
        "deadline_from_investigation": ws.deadline_from_investigation or p.deadline_at is not None,
    }


def latest_revision(ws: Workspace) -> int:
    """The newest investigation revision the workspace has seen, applied or held back."""
    return max([ws.investigation_revision, *(r.revision for r in ws.finding_revisions)])


def is_news(ws: Workspace, env: Completed) -> bool:
    """Whether the event says something the workspace does not hold yet (not a redelivery, and
    not older than a revision already seen: a late revision 2 after revision 3 is ignored)."""
    if ws.investigation_event_id is None:
        return True
    return ws.investigation_event_id != str(env.event_id) and env.payload.revision > latest_revision(ws)


def opened(ws: Workspace, env: Completed, *, settings: Settings, now: datetime) -> Workspace:
    """Open the workspace on the findings (not yet assigned)."""
    p = env.payload
    ws = ws.model_copy(update={
        **findings(ws, env, now),
        "case_number": p.case_number,
        "correlation_id": ws.correlation_id or env.correlation_id,
        "status": "open",
        "customer_id": ws.customer_id or p.customer_id,
        "product": ws.product or (p.product.value if p.product else None),
        "language": ws.language if ws.registered_event_id else (
            p.language.value if p.language else "zh-CN"),
        "opened_at": now,
    })
    if ws.deadline_at is None:
        ws.deadline_at = fallback_deadline(now, settings.default_negotiation_days)
    mark(ws, now, "workspace opened", detail=f"finding {p.finding}, category {p.category.value}")
    return ws


def started(ws: Workspace, env: Completed, *, agent: AgentProfile | None, settings: Settings,
            now: datetime) -> tuple[Workspace, Events]:
    """Assign an opened workspace to ``agent`` (or the default team); owe ``negotiation.started``."""
    if agent is not None:
        ws.assigned_agent, ws.team = agent.agent_id, agent.team
        mark(ws, now, "assigned", detail=f"agent {agent.agent_id} (team {agent.team}) by skill and load")
    else:
        ws.team = settings.default_team
        mark(ws, now, "unassigned", detail="no agent with the skills and capacity; waiting for a team lead")
    events = [event(ws, negotiation.NegotiationStarted(
        case_number=ws.case_number, agent_id=ws.assigned_agent, team=ws.team,
        deadline_at=ws.deadline_at,
    ), now, cause=env)]
    return ws, events


def revision_record(ws: Workspace, env: Completed, now: datetime, *, applied: bool) -> FindingRevision:
    """What a revised investigation said, against what the workspace held."""
    p = env.payload
    remedy = p.remedy_range
    return FindingRevision(
        event_id=str(env.event_id), revision=p.revision, at=now, applied=applied, revised_by=p.revised_by,
        reason=redact(p.revision_reason or ""), category=p.category.value, finding=p.finding,
        remedy_min=remedy.min if remedy else None, remedy_max=remedy.max if remedy else None,
        previous_category=ws.category, previous_finding=ws.finding, revised_fields=list(p.revised_fields),
    )


def revised(ws: Workspace, env: Completed, now: datetime) -> Workspace:
    """Take a newer investigation (new facts, or an investigator's review) into an open
    workspace with no agreement (``review_notice`` tells the customer of a review)."""
    p = env.payload
    record = revision_record(ws, env, now, applied=True)
    ws = ws.model_copy(update=findings(ws, env, now))
    ws.finding_revisions = [*ws.finding_revisions, record]
    why = "reviewed by an investigator" if p.revised_by else "new facts"
    mark(ws, now, f"investigation revised (revision {p.revision}, {why})",
         detail=f"finding {record.previous_finding} -> {p.finding}, category {record.previous_category} -> "
         f"{p.category.value}; open offers were made on the earlier findings")
    return ws


FINDING_ZH = {"substantiated": "投诉属实", "partly_substantiated": "投诉部分属实", "unsubstantiated": "投诉不属实"}


def review_notice(ws: Workspace, env: Completed, now: datetime) -> Events:
    """The customer's notice that an investigator reviewed the finding (none for new facts)."""
    p = env.payload
    if not p.revised_by:
        return []
    return notify(ws, "finding_reviewed",
                  ("调查结论已复核", f"您的投诉（案件 {ws.case_number}）的调查结论已由调查人员复核：{FINDING_ZH[p.finding]}。"
                   "承办人员将按复核后的结论与您继续协商。"),
                  ("Your complaint's findings were reviewed",
                   f"An investigator reviewed the findings on your complaint (case {ws.case_number}): "
                   f"{p.finding.replace('_', ' ')}. Your case handler will continue with you on that basis."),
                  now)


def held_back(ws: Workspace, env: Completed, now: datetime) -> tuple[Workspace, Events]:
    """Record a revised investigation that came after an agreement (or an escalation): the
    agreement stands as signed; the revision is kept and raised for the agent (timeline and a
    ``supervision.alert``), who decides whether the customer must be approached again."""
    p = env.payload
    record = revision_record(ws, env, now, applied=False)
    ws = ws.model_copy(update={"finding_revisions": [*ws.finding_revisions, record]})
    after = "the agreement" if ws.agreement is not None else f"the case was {ws.status}"
    mark(ws, now, f"investigation revised after {after} (revision {p.revision}): not applied",
         detail=f"finding {ws.finding} -> {p.finding}, category {ws.category} -> {p.category.value}"
         + (f", reviewed by {p.revised_by}" if p.revised_by else "") + "; for the agent to decide on")
    alert = event(ws, SupervisionAlert(
        kind="finding_revised_after_agreement" if ws.agreement is not None else "finding_revised_after_escalation",
        severity="warning",
        message=f"case {ws.case_number or ws.case_id}: investigation revision {p.revision} (finding {p.finding}, "
        f"category {p.category.value}) came after {after}; not applied — agent {ws.assigned_agent or '(none)'} "
        "to decide",
    ), now, cause=env)
    return ws, [alert]


# ------------------------------------------------------------------ commands


async def record_registration(env: Registered, *, repo: Store, now: datetime) -> bool:
    """Keep what intake registered (customer, text, deadline, amount); return whether it changed."""
    async def attempt() -> bool:
        current = await repo.get(env.case_id) or Workspace(case_id=env.case_id)
        ws = registration_recorded(current, env)
        if ws is None:
            return False
        await repo.save(ws, current.version, [])
        return True

    return await until_saved(attempt, f"case {env.case_id} kept changing while recording its registration")


async def open_workspace(
    env: Completed,
    raw_payload: object = None,
    *,
    repo: Store,
    settings: Settings,
    now: datetime,
) -> bool:
    """Open a case's workspace from ``investigation.completed``; idempotent per case and revision.

    Everything is read from the typed payload (``env.payload``). ``raw_payload`` is ignored:
    it is accepted only so that callers still passing the raw JSON keep working; drop it.
    """
    del raw_payload

    async def attempt() -> bool:
        existing = await repo.get(env.case_id)
        ws = existing or Workspace(case_id=env.case_id)
        if not is_news(ws, env):
            return False  # a redelivery, or nothing newer than what we hold
        if ws.investigation_event_id is not None:
            if ws.status != "open" or ws.agreement is not None:
                log.info("revised investigation for a case already %s; recorded for the agent", ws.status)
                changed, events = held_back(ws, env, now)
            else:
                changed = revised(ws, env, now)
                events = review_notice(changed, env, now)
            await repo.save(changed, ws.version, events)
            return True
        ws = opened(ws, env, settings=settings, now=now)
        ws, events = started(ws, env, agent=await pick_agent(ws, repo=repo), settings=settings, now=now)
        await repo.save(ws, ws.version if existing else 0, events)
        return True

    return await until_saved(attempt, f"case {env.case_id} kept changing while opening its workspace")


# ------------------------------------------------------------------ commands, a batch at a time

E = TypeVar("E", Registered, Completed)


def first_per_case(envs: list[E]) -> tuple[dict[str, E], list[E]]:
    """Each case's first event of a batch, and the later ones (in order)."""
    first: dict[str, E] = {}
    later: list[E] = []
    for env in envs:
        if env.case_id in first:
            later.append(env)
        else:
            first[env.case_id] = env
    return first, later


async def record_registrations(envs: list[Registered], *, repo: Store, now: datetime) -> list[Registered]:
    """Record a batch of registrations; return the events left to ``record_registration``.

    A case is usually registered before negotiation holds anything of it, so each case's first
    event is written as a new workspace without a read, all in one bulk insert. Left, in order:
    cases already stored (investigation's event came first, or a redelivery: the insert is
    refused) and later events of a case in the same batch.
    """
    del now
    first, later = first_per_case(envs)
    items: list[tuple[Workspace | None, Workspace, Events]] = []
    for env in first.values():
        ws = registration_recorded(Workspace(case_id=env.case_id), env)
        if ws is not None:
            items.append((None, ws, []))
    _, stale = await repo.save_many(items)
    return [env for case_id, env in first.items() if case_id in stale] + later


async def open_workspaces(
    envs: list[Completed], *, repo: Store, settings: Settings, now: datetime,
) -> tuple[dict[str, dict[str, Any] | None], list[Completed]]:
    """Open a batch of workspaces (``open_workspace`` for many, in bulk writes).

    Each case's first event: its workspace is read (concurrently), opened and assigned (the
    directory and the agents' loads read once for the batch and counted up as it assigns),
    and written with the others (``Store.save_many``). Returns the outboxes to publish per
    case (``Store.save_many``) and the events left to ``open_workspace``, in order: revisions of a workspace already
    opened (rare; the one-by-one rules), cases someone else wrote meanwhile, and later events
    of a case in the batch. Redeliveries change nothing.
    """
    first, later = first_per_case(envs)
    ids = list(first)
    found = await repo.get_many(ids)
    directory = BatchDirectory(repo)
    items: list[tuple[Workspace | None, Workspace, Events]] = []
    left: list[str] = []
    for case_id in ids:
        env, existing = first[case_id], found.get(case_id)
        ws = existing or Workspace(case_id=case_id)
        if not is_news(ws, env):
            continue  # a redelivery, or nothing newer than what we hold
        if ws.investigation_event_id is not None:
            left.append(case_id)
            continue
        ws = opened(ws, env, settings=settings, now=now)
        agent = await pick_agent(ws, repo=directory)
        ws, events = started(ws, env, agent=agent, settings=settings, now=now)
        if agent is not None:
            directory.took(agent.agent_id)
        items.append((existing, ws, events))
    outboxes, stale = await repo.save_many(items)
    return outboxes, [first[c] for c in ids if c in stale or c in left] + later
