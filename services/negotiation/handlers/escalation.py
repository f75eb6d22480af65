"""Escalation: negotiation ends and the case goes to mediation or litigation with a dossier.

By the customer or staff on request, by the customer rejecting the final offer, or by the
worker's sweep when the deadline is near, or already past (a case registered late), without
agreement.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from services.negotiation.auth import Principal
from services.negotiation.documents import build_dossier, dossier_html, dossier_json
from services.negotiation.errors import Conflict
from services.negotiation.handlers.common import (
    SYSTEM,
    Events,
    Target,
    actor,
    check_version,
    event,
    load_case,
    mark,
    notify,
    require_staff_action,
)
from services.negotiation.handlers.ports import Store
from services.negotiation.models import Actor, Dossier, Escalation, OfferEvent, Workspace
from services.negotiation.settings import Settings
from services.negotiation.texts import TARGET_ZH
from shared.clock import REGULATORY_TIMEZONE, as_utc, to_local
from shared.contracts import negotiation

log = logging.getLogger(__name__)


async def escalate(
    case_id: str, *, target: Target, reason: str, p: Principal, expected_version: int | None,
    repo: Store, settings: Settings, now: datetime,
) -> Workspace:
    """End negotiation and send the case to mediation or litigation with its dossier."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role == "customer":
        if ws.status != "open":
            raise Conflict(f"case {case_id} is {ws.status}; it can no longer be escalated")
        requested_by = "customer"
    else:
        await require_staff_action(ws, p, repo=repo)
        requested_by = "staff"
    check_version(ws, expected_version)
    return await end_negotiation(ws, target=target, by=actor(p), requested_by=requested_by, reason=reason,
                           events=[], repo=repo, settings=settings, now=now)


def escalated(
    ws: Workspace, *, target: Target, by: Actor, requested_by: str, reason: str,
    public_base_url: str, now: datetime,
) -> tuple[Workspace, Events, Dossier]:
    """End negotiation (pure): open offers withdrawn, the escalation recorded, the dossier made.

    Returns the new workspace, the events it owes (``negotiation.failed``, ``case.escalated``
    and the customer's notice) and the dossier to store.
    """
    ws = ws.model_copy(deep=True)
    for offer in ws.offers:
        if offer.status in ("open", "pending_approval"):
            offer.status = "withdrawn"
            offer.history.append(OfferEvent(status="withdrawn", by=by, at=now, note="negotiation ended"))
    dossier_id = f"DS-{ws.case_id}-{ws.version + 1}"
    ws.status = "escalated"
    ws.escalation = Escalation(target=target, reason=reason, by=by, at=now, dossier_id=dossier_id)
    mark(ws, now, f"escalated to {target}", by=by.sub, detail=reason)
    dossier = build_dossier(ws, dossier_id=dossier_id, target=target, reason=reason, created_at=now)
    url = f"{public_base_url}/cases/{ws.case_id}/dossier"
    events = [
        event(ws, negotiation.NegotiationFailed(case_number=ws.case_number, reason=reason[:1000]), now),
        event(ws, negotiation.CaseEscalated(
            case_number=ws.case_number, target=target, reason=reason[:1000], dossier_ref=dossier_id,
            dossier_url=url, requested_by=requested_by,
        ), now),
    ]
    events += notify(
        ws, "escalation",
        (f"您的投诉 {ws.case_number} 已转交{TARGET_ZH[target]}",
         f"协商未能达成一致，您的案件已转交{TARGET_ZH[target]}，卷宗编号 {dossier_id}。原因：{reason}"),
        (f"Your complaint {ws.case_number} has gone to {target}",
         f"We could not agree, so your case has gone to {target} (dossier {dossier_id}). Reason: {reason}"),
        now,
    )
    return ws, events, dossier


async def end_negotiation(
    ws: Workspace, *, target: Target, by: Actor, requested_by: str, reason: str,
    events: Events, repo: Store, settings: Settings, now: datetime,
) -> Workspace:
    """Escalate ``ws`` (see ``escalated``), store its dossier, save it with ``events`` before its own."""
    new, owed, dossier = escalated(ws, target=target, by=by, requested_by=requested_by, reason=reason,
                                   public_base_url=settings.public_base_url, now=now)
    await repo.put_dossier(dossier.dossier_id, ws.case_id, dossier_json(dossier), dossier_html(dossier))
    return await repo.save(new, ws.version, [*events, *owed])


def deadline_reason(deadline_at: datetime, now: datetime) -> str:
    """Why the sweep escalates: the deadline has passed (e.g. a case registered already past it),
    or it is near; the deadline in Beijing time, the regulatory zone (``shared.clock``)."""
    local = to_local(deadline_at, REGULATORY_TIMEZONE)
    when = f"{local:%Y-%m-%d %H:%M} Beijing time"
    if as_utc(deadline_at) < as_utc(now):
        return f"no agreement and the deadline ({when}) has passed"
    return f"no agreement and the deadline ({when}) is near"


async def escalate_near_deadline(*, repo: Store, settings: Settings, now: datetime) -> list[str]:
    """Escalate open cases whose deadline is near, or already past, without agreement; return
    their ids. The reason says which (``deadline_reason``)."""
    done = []
    before = now + timedelta(hours=settings.escalate_before_hours)
    for case_id in await repo.open_near_deadline(before):
        ws = await repo.get(case_id)
        if ws is None or ws.status != "open" or ws.deadline_at is None:
            continue
        try:
            await end_negotiation(
                ws, target="mediation", by=SYSTEM, requested_by="deadline",
                reason=deadline_reason(ws.deadline_at, now),
                events=[], repo=repo, settings=settings, now=now,
            )
            done.append(case_id)
        except Conflict:
            log.info("case changed while escalating near its deadline; next sweep retries")
    return done
