"""Supervision's HTTP face for operations and compliance: cases, alerts, dead letters.

Every route is for ``ops`` and ``auditor`` only (``shared.auth``, ``docs/security.md``): the
router's one dependency answers 401 without a valid token and 403 for any other role.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request

from services.supervision.models import AlertView, CaseWatch, DeadLetterView
from services.supervision.repository import Repository
from services.supervision.settings import Settings
from shared.auth import Role, install_auth, require
from shared.errors import NotFound

#: who may watch: operations and the auditors (the console reads the same API)
WATCHERS: tuple[Role, ...] = ("ops", "auditor")

router = APIRouter(dependencies=[Depends(require(*WATCHERS))])


def install_api(app: FastAPI, settings: Settings) -> None:
    """Check the token settings (production refuses unsafe ones)."""
    install_auth(app, settings)


def _repo(request: Request) -> Repository:
    repo: Repository = request.app.state.deps.repo
    return repo


@router.get("/overview")
async def overview(request: Request) -> dict[str, Any]:
    """Count cases by status, and alerts and dead letters recorded."""
    repo = _repo(request)
    return {
        "cases_by_status": await repo.status_counts(),
        "alerts": await repo.alerts.count_documents({}),
        "dead_letters": await repo.dead_letters.count_documents({}),
    }


@router.get("/cases/{case_id}", response_model=CaseWatch, responses={404: {"description": "unknown case"}})
async def case(case_id: str, request: Request) -> CaseWatch:
    """Return a case's status, deadline, alerts and timeline."""
    doc = await _repo(request).case(case_id)
    if doc is None:
        raise NotFound(f"no case {case_id!r} has been seen by supervision")
    doc["timeline"].sort(key=lambda e: e["occurred_at"])
    return CaseWatch(case_id=doc.pop("_id"), **doc)


@router.get("/alerts", response_model=list[AlertView])
async def alerts(
    request: Request,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertView]:
    """List the newest alerts, optionally of one kind."""
    return [AlertView(alert_id=d.pop("_id"), **d) for d in await _repo(request).list_alerts(kind, limit)]


@router.get("/dead-letters", response_model=list[DeadLetterView])
async def dead_letters(
    request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[DeadLetterView]:
    """List the newest dead letters with their reasons."""
    return [DeadLetterView(**d) for d in await _repo(request).list_dead_letters(limit)]
