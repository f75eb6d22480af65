"""Opening a case's workspace: what intake registered, then what investigation found.

``complaint.registered`` records the customer, text, deadline and amount; ``investigation.
completed`` opens the workspace (idempotent per case and revision), assigns it by skill and
load and owes ``negotiation.started``; a later revision updates an open workspace's findings.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.negotiation.errors import Conflict
from services.negotiation.handlers.assignment import pick_agent
from services.negotiation.handlers.common import event, mark
from services.negotiation.handlers.ports import Store
from services.negotiation.models import Workspace
from services.negotiation.plan import money
from services.negotiation.settings import Settings
from shared.contracts import intake, investigation, negotiation
from shared.contracts.envelope import Envelope

log = logging.getLogger(__name__)


async def record_registration(env: Envelope[intake.ComplaintRegistered], *, repo: Store, now: datetime) -> bool:
    """Keep what intake registered (customer, text, deadline, amount); return whether it changed."""
    for _ in range(3):
        ws = await repo.get(env.case_id) or Workspace(case_id=env.case_id)
        if ws.registered_event_id == str(env.event_id):
            return False
        c = env.payload
        ws = ws.model_copy(update={
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
            "deadline_at": c.deadline_at,
        })
        try:
            await repo.save(ws, ws.version, [])
            return True
        except Conflict:
            continue
    raise Conflict(f"case {env.case_id} kept changing while recording its registration")


def _extra(raw: dict[str, Any], *names: str) -> Any:
    for name in names:
        if raw.get(name) not in (None, "", [], {}):
            return raw[name]
    return None


def _money_or_none(value: Any) -> Decimal | None:
    try:
        return money(Decimal(str(value))) if value is not None else None
    except (ArithmeticError, ValueError):
        return None


async def open_workspace(
    env: Envelope[investigation.InvestigationCompleted],
    raw_payload: dict[str, Any],
    *,
    repo: Store,
    settings: Settings,
    now: datetime,
) -> bool:
    """Open a case's workspace from ``investigation.completed``; idempotent per case.

    ``raw_payload`` is the event's payload as received: optional fields investigation may
    add (customer, evidence, facts, remedy range, product, amounts, hardship, deadline) are
    read from it when present and tolerated when absent.
    """
    for _ in range(3):
        existing = await repo.get(env.case_id)
        ws = existing or Workspace(case_id=env.case_id)
        revision = _revision(raw_payload)
        if ws.investigation_event_id is not None:
            if ws.investigation_event_id == str(env.event_id) or revision <= ws.investigation_revision:
                return False  # a redelivery, or nothing newer than what we hold
            if ws.status != "open":
                log.info("revised investigation for a case already %s; kept for the record", ws.status)
                return False
            try:
                return await _revise(ws, env, raw_payload, revision, repo=repo, now=now)
            except Conflict:
                continue
        p = env.payload
        ws = ws.model_copy(update={
            **_findings(env, raw_payload, ws, revision),
            "case_number": p.case_number,
            "correlation_id": ws.correlation_id or env.correlation_id,
            "status": "open",
            "customer_id": ws.customer_id or _as_text(_extra(raw_payload, "customer_id")),
            "product": ws.product or _as_text(_extra(raw_payload, "product")),
            "language": ws.language if ws.registered_event_id else (
                "en" if str(_extra(raw_payload, "language") or "").lower().startswith("en") else "zh-CN"),
            "opened_at": now,
        })
        if ws.deadline_at is None:
            ws.deadline_at = now + timedelta(days=settings.default_negotiation_days)
        mark(ws, now, "workspace opened", detail=f"finding {p.finding}, category {p.category.value}")
        agent = await pick_agent(ws, repo=repo)
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
        try:
            await repo.save(ws, ws.version if existing else 0, events)
            return True
        except Conflict:
            continue
    raise Conflict(f"case {env.case_id} kept changing while opening its workspace")


def _revision(raw: dict[str, Any]) -> int:
    try:
        return max(1, int(raw.get("revision") or 1))
    except (TypeError, ValueError):
        return 1


def _findings(env: Envelope[Any], raw: dict[str, Any], ws: Workspace, revision: int) -> dict[str, Any]:
    """The workspace fields an investigation.completed event sets (core and optional)."""
    p = env.payload
    amount = _money_or_none(_extra(raw, "amount_disputed", "disputed_amount"))
    claims = [str(c) for c in _as_list(raw.get("claims"))]
    return {
        "investigation_event_id": str(env.event_id),
        "investigation_revision": revision,
        "category": p.category.value,
        "finding": p.finding,
        "reasons": p.reasons,
        "complex_case": p.complex_case,
        "evidence": [e if isinstance(e, dict) else {"summary": str(e)}
                     for e in _as_list(_extra(raw, "evidence"))],
        "facts": _as_list(_extra(raw, "facts", "verified_facts")),
        "remedy_range": _as_range(_extra(raw, "remedy_range", "suggested_remedy", "remedy")),
        "investigation_details": {k: v for k, v in raw.items() if k not in _KNOWN_FIELDS},
        "hardship": ws.hardship or bool(_extra(raw, "hardship", "financial_hardship"))
        or any("hardship" in c for c in claims),
        "amount_disputed": amount or ws.amount_disputed,
        # investigation's deadline counts excluded pauses (external appraisal): it wins
        "deadline_at": _parse_dt(_extra(raw, "deadline_at")) or ws.deadline_at,
    }


async def _revise(ws: Workspace, env: Envelope[Any], raw: dict[str, Any], revision: int, *,
                  repo: Store, now: datetime) -> bool:
    """Take a newer investigation (new facts) into an open workspace."""
    ws = ws.model_copy(update=_findings(env, raw, ws, revision))
    mark(ws, now, f"investigation revised (revision {revision})",
          detail=f"finding {env.payload.finding}; open offers were made on the earlier findings")
    await repo.save(ws, ws.version, [])
    return True


_KNOWN_FIELDS = frozenset({
    "case_number", "category", "finding", "reasons", "complex_case", "evidence", "facts",
    "verified_facts", "remedy_range", "suggested_remedy", "remedy", "hardship", "financial_hardship",
    "customer_id", "product", "language", "amount_disputed", "disputed_amount", "deadline_at",
    "revision",
})


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)[:128]


def _as_range(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return value if isinstance(value, dict) else {"text": str(value)}


def range_bounds(remedy: dict[str, Any] | None) -> tuple[Decimal | None, Decimal | None]:
    """Read a suggested remedy range's bounds (min/max, low/high, *_amount), if numeric."""
    if not remedy:
        return None, None

    def first(*names: str) -> Decimal | None:
        for name in names:
            value = remedy.get(name)
            if isinstance(value, dict):  # {"amount": "..."} shapes
                value = value.get("amount")
            if value is not None and not isinstance(value, bool):
                parsed = _money_or_none(value)
                if parsed is not None:
                    return parsed
        return None

    return (first("min", "low", "min_amount", "lower", "minimum"),
            first("max", "high", "max_amount", "upper", "maximum"))


def _parse_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else None
    return None
