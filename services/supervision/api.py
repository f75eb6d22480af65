"""Supervision's HTTP face for operations and compliance: cases, alerts, dead letters, lag
(and the web console on the same app: ``services.supervision.console``).

Every route is for ``ops`` and ``auditor`` only (``shared.auth``, ``docs/security.md``): the
router's one dependency answers 401 without a valid token and 403 for any other role.
Acknowledging and resolving an alert is for ``ops`` alone (auditors read); the token's
subject is recorded as who did it.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request

from services.supervision import handlers
from services.supervision.models import (
    AlertNote,
    AlertView,
    CaseWatch,
    DeadLetterView,
    GroupLagView,
    LagView,
    PartitionLagView,
)
from services.supervision.repository import Repository
from services.supervision.settings import Settings
from shared.auth import Principal, Role, install_auth, require
from shared.contracts.envelope import utcnow
from shared.errors import NotFound

#: who may watch: operations and the auditors (the console reads the same API)
WATCHERS: tuple[Role, ...] = ("ops", "auditor")

#: who may act on an alert (acknowledge, resolve): operations; auditors only read
ACTORS: tuple[Role, ...] = ("ops",)

router = APIRouter(dependencies=[Depends(require(*WATCHERS))])
Actor = Annotated[Principal, Depends(require(*ACTORS))]

#: how long /metrics reuses a lag reading (each reading asks Kafka a handful of questions)
LAG_CACHE_S = 15.0


def routers(settings: Settings) -> list[APIRouter]:
    """The JSON API and the web console (``services.supervision.console``, its own gates)."""
    from services.supervision.console import router as console

    return [router, console]


def install_api(app: FastAPI, settings: Settings) -> None:
    """Check the token settings (production refuses unsafe ones); answer the console's 401 and
    403 with pages; put the lag and deadline gauges on /metrics."""
    from services.supervision.console import install_console

    install_auth(app, settings)
    install_console(app)
    refresh = getattr(app.state, "metrics_refresh", None)
    if refresh is not None:
        refresh.append(_refresh_gauges)


async def _refresh_gauges(app: FastAPI) -> None:
    from services.supervision.app import set_deadline_gauges, set_lag_gauges

    await set_deadline_gauges(app.state.deps.repo, utcnow())
    set_lag_gauges(await _lag(app, max_age_s=LAG_CACHE_S))


async def _lag(app: FastAPI, *, max_age_s: float = 0.0) -> dict[str, list[handlers.PartitionLag]]:
    from services.supervision.lag import read_lag

    cached = getattr(app.state, "lag_reading", None)
    if cached is not None and time.monotonic() - cached[0] < max_age_s:
        return cached[1]  # type: ignore[no-any-return]
    reading = await read_lag(app.state.settings.kafka)
    app.state.lag_reading = (time.monotonic(), reading)
    return reading


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
    status: Literal["open", "acknowledged", "resolved"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertView]:
    """List the newest alerts (every service's), optionally of one kind or status."""
    return [_alert_view(d) for d in await _repo(request).list_alerts(kind, limit, status)]


def _alert_view(doc: dict[str, Any]) -> AlertView:
    doc["status"] = handlers.alert_status(doc)
    return AlertView(alert_id=doc.pop("_id"), **{k: v for k, v in doc.items() if k in AlertView.model_fields})


async def _act(request: Request, alert_id: str, decide: Any, unless: tuple[str, ...], p: Principal,
               body: AlertNote) -> AlertView:
    repo = _repo(request)
    doc = await repo.alert(alert_id)
    if doc is None:
        raise NotFound(f"no alert {alert_id!r}")
    fields = decide(doc, by=p.sub, note=body.note, now=utcnow())
    if fields is not None:
        await repo.set_alert_fields(alert_id, fields, unless=unless)
        doc = await repo.alert(alert_id) or doc
    return _alert_view(doc)


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertView,
             responses={404: {"description": "unknown alert"}})
async def acknowledge_alert(alert_id: str, body: AlertNote, request: Request, p: Actor) -> AlertView:
    """Acknowledge an alert as the caller (once: a second acknowledgement answers the first)."""
    return await _act(request, alert_id, handlers.acknowledge, ("acknowledged", "resolved"), p, body)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertView,
             responses={404: {"description": "unknown alert"}})
async def resolve_alert(alert_id: str, body: AlertNote, request: Request, p: Actor) -> AlertView:
    """Resolve an alert as the caller (once: a second resolution answers the first)."""
    return await _act(request, alert_id, handlers.resolve, ("resolved",), p, body)


@router.get("/lag", response_model=LagView)
async def lag(request: Request) -> LagView:
    """Every service's consumer group: committed and end offset and lag per partition."""
    threshold = request.app.state.settings.lag_alert_threshold
    groups = []
    for group, rows in (await _lag(request.app)).items():
        total = handlers.total_lag(rows)
        groups.append(GroupLagView(
            group=group, lag=total, above_threshold=total > threshold,
            partitions=[PartitionLagView(topic=r.topic, partition=r.partition, committed=r.committed,
                                         end=r.end, lag=r.lag) for r in rows]))
    return LagView(threshold=threshold, groups=groups)


@router.get("/dead-letters", response_model=list[DeadLetterView])
async def dead_letters(
    request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[DeadLetterView]:
    """List the newest dead letters with their reasons."""
    return [DeadLetterView(**d) for d in await _repo(request).list_dead_letters(limit)]
