"""Supervision's HTTP face for operations and compliance: cases, alerts, dead letters, lag
(and the web console on the same app: ``services.supervision.console``).

Every route is for ``ops`` and ``auditor`` only (``shared.auth``, ``docs/security.md``): the
router's one dependency answers 401 without a valid token and 403 for any other role.
Acknowledging and resolving an alert is for ``ops`` alone (auditors read); the token's
subject is recorded as who did it. Each acknowledgement, resolution and change of the
remediation register goes on supervision's audit chain (``shared.audit``) here, once, so the
console's buttons and forms (which call these functions) are recorded the same way.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response

from services.supervision import handlers
from services.supervision.models import (
    AlertNote,
    AlertView,
    BoardCase,
    CaseWatch,
    DeadLetterView,
    DeadlineBoard,
    GroupLagView,
    HeartbeatView,
    LagView,
    PartitionLagView,
    RemediationIn,
    RemediationPatch,
    RemediationView,
)
from services.supervision.repository import Repository
from services.supervision.settings import Settings
from shared.audit import canonical_time, chain_for
from shared.auth import Principal, Role, install_auth, require
from shared.contracts.envelope import utcnow
from shared.errors import NotFound, Unprocessable

#: who may watch: operations and the auditors (the console reads the same API)
WATCHERS: tuple[Role, ...] = ("ops", "auditor")

#: who may act on an alert (acknowledge, resolve): operations; auditors only read
ACTORS: tuple[Role, ...] = ("ops",)

router = APIRouter(dependencies=[Depends(require(*WATCHERS))])
Actor = Annotated[Principal, Depends(require(*ACTORS))]

log = logging.getLogger(__name__)

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
        if _ours(doc, fields):  # not when someone else's acknowledgement or resolution came first
            await audit(request, p, f"alert_{fields['status']}", doc.get("case_id"),
                        alert_id=alert_id, kind=doc.get("kind"), noted=bool(body.note and body.note.strip()))
    return _alert_view(doc)


def _ours(doc: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Whether the stored alert holds the action record this request set (the first one stays)."""
    mine, stored = fields[fields["status"]], doc.get(fields["status"]) or {}
    at = stored.get("at")
    return stored.get("by") == mine["by"] and isinstance(at, datetime) and canonical_time(at) == canonical_time(mine["at"])


async def audit(request: Request, p: Principal, action: str, case_id: str | None, **details: Any) -> None:
    """Put an operator's change on supervision's audit chain: who (the token's subject), role,
    what, when, which case, and the alert or item (no personal data, no free text).

    The change is already saved: a failure to append is logged, not turned into an error.
    """
    try:
        await chain_for(_repo(request).db).append(who=p.sub, role=p.role, action=action, case_id=case_id,
                                                  details=details)
    except Exception:  # noqa: BLE001 - the change stands; the log says what is missing
        log.exception("could not append %s to the audit chain", action)


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


# ------------------------------------------------------------------ evaluation report (issue 13)

#: the days a period may name (stored times are UTC: the calendar's first and last days have none)
DAYS = {"ge": date(1970, 1, 1), "le": date(9998, 12, 31)}
From = Annotated[date | None, Query(alias="from", description="First Beijing day (YYYY-MM-DD); default: the 1st of this month.", **DAYS)]
To = Annotated[date | None, Query(alias="to", description="Last Beijing day, included (YYYY-MM-DD); default: today.", **DAYS)]


async def evaluation_report(request: Request, first: date | None, last: date | None) -> dict[str, Any]:
    """The evaluation report of the cases received from ``first`` to ``last`` (Beijing days)."""
    from services.supervision import evaluation

    now = utcnow()
    try:
        start, end = evaluation.period_bounds(first, last, now)
    except ValueError as exc:
        raise Unprocessable(str(exc), field="from" if str(exc).startswith("from") else "to") from None
    repo = _repo(request)
    limit = request.app.state.settings.report_max_cases
    cases = await repo.cases_received(start, end, limit)
    report = evaluation.build_report(cases, start=start, end=end, now=now,
                                     remediations=await repo.list_remediations())
    report["period"] |= {"first_day": start.date().isoformat(), "last_day": (end - timedelta(days=1)).date().isoformat(),
                         "timezone": "Asia/Shanghai", "truncated": len(cases) >= limit}
    return report


@router.get("/reports/evaluation")
async def evaluation(request: Request, first: From = None, last: To = None) -> dict[str, Any]:
    """The evaluation report (总结评估) of a period: volumes, stage times, deadline compliance,
    rates, concessions, satisfaction, root causes with remediation items (CSV: ``.csv``)."""
    return await evaluation_report(request, first, last)


class CSVResponse(Response):
    """A CSV download."""

    media_type = "text/csv"


@router.get("/reports/evaluation.csv", response_class=CSVResponse)
async def evaluation_csv(request: Request, first: From = None, last: To = None) -> Response:
    """The evaluation report as CSV (UTF-8 with BOM, so spreadsheet programs read the Chinese)."""
    return csv_response(await evaluation_report(request, first, last))


def csv_response(report: dict[str, Any]) -> Response:
    """The report as a CSV download named after its period."""
    from services.supervision.evaluation import report_csv

    name = f"parley-evaluation-{report['period']['first_day']}-{report['period']['last_day']}.csv"
    return CSVResponse("\ufeff" + report_csv(report), headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _remediation_view(doc: dict[str, Any]) -> RemediationView:
    from services.supervision.evaluation import remediation_view

    return RemediationView(**remediation_view(doc))


@router.get("/remediations", response_model=list[RemediationView])
async def remediations(request: Request,
                       root_cause: Annotated[str | None, Query(max_length=64)] = None) -> list[RemediationView]:
    """The remediation register (溯源整改), by due date, optionally of one root cause."""
    return [_remediation_view(d) for d in await _repo(request).list_remediations(root_cause)]


async def create_remediation(request: Request, body: RemediationIn, p: Principal) -> RemediationView:
    """Add an item to the register as the caller."""
    from services.supervision.evaluation import new_remediation

    item = new_remediation(remediation_id=f"rem-{uuid.uuid4().hex[:12]}", root_cause=body.root_cause,
                           owner=body.owner.strip(), action=body.action.strip(), due_date=body.due_date,
                           status=body.status, by=p.sub, now=utcnow())
    if await _repo(request).add_remediation(item):
        await audit(request, p, "remediation_added", None, remediation_id=item["_id"],
                    root_cause=item["root_cause"], status=item["status"], due_date=item["due_date"])
    return _remediation_view(item)


@router.post("/remediations", response_model=RemediationView, status_code=201)
async def add_remediation(body: RemediationIn, request: Request, p: Actor) -> RemediationView:
    """Add a remediation item (ops): root cause, owner, action, due date, status."""
    return await create_remediation(request, body, p)


async def change_remediation(request: Request, remediation_id: str, body: RemediationPatch,
                             p: Principal) -> RemediationView:
    """Change an item as the caller; only fields that differ are written, with a history entry."""
    from services.supervision.evaluation import edit_remediation

    repo = _repo(request)
    doc = await repo.remediation(remediation_id)
    if doc is None:
        raise NotFound(f"no remediation item {remediation_id!r}")
    change = edit_remediation(doc, body.model_dump(exclude_none=True), by=p.sub, now=utcnow())
    if change is not None:
        await repo.edit_remediation(remediation_id, change["set"], change["history"])
        doc = await repo.remediation(remediation_id) or doc
        await audit(request, p, "remediation_changed", None, remediation_id=remediation_id,
                    changed=sorted(change["history"]["changes"]), status=doc.get("status"),
                    root_cause=doc.get("root_cause"), due_date=doc.get("due_date"))
    return _remediation_view(doc)


@router.patch("/remediations/{remediation_id}", response_model=RemediationView,
              responses={404: {"description": "unknown item"}})
async def patch_remediation(remediation_id: str, body: RemediationPatch, request: Request, p: Actor) -> RemediationView:
    """Change a remediation item (ops): owner, action, due date, status or root cause."""
    return await change_remediation(request, remediation_id, body, p)


# ------------------------------------------------------------------ deadline board, heartbeats


async def board(request: Request, now: datetime) -> DeadlineBoard:
    """Cases on the clock due today, due this week (Beijing days), and cases breached."""
    from datetime import time as clock_time

    from shared.clock import REGULATORY_TIMEZONE, beijing_day, zone

    repo = _repo(request)
    today = beijing_day(now)
    start = datetime.combine(today, clock_time(0), tzinfo=zone(REGULATORY_TIMEZONE))
    tomorrow, week_end = start + timedelta(days=1), start + timedelta(days=7 - today.weekday())
    finished = handlers.FINISHED_FROM_RANK

    def rows(docs: list[dict[str, Any]]) -> list[BoardCase]:
        return [BoardCase(case_id=d["_id"], **{k: d.get(k) for k in BoardCase.model_fields if k != "case_id"})
                for d in docs]

    return DeadlineBoard(
        today=today.isoformat(),
        due_today=rows(await repo.cases_due_between(max(start, now), tomorrow, finished)),
        due_this_week=rows(await repo.cases_due_between(max(start, now), week_end, finished)),
        breached=rows(await repo.breached_cases()),
    )


@router.get("/deadlines", response_model=DeadlineBoard)
async def deadlines(request: Request) -> DeadlineBoard:
    """The deadline board: due today, due this week (Monday to Sunday, Beijing), breached."""
    return await board(request, utcnow())


@router.get("/heartbeats", response_model=list[HeartbeatView])
async def heartbeats(request: Request) -> list[HeartbeatView]:
    """Every service's workers as the last lag check saw their consumer group: members, lag,
    last commit, and the open worker_down / worker_stalled alert if any."""
    states = await _repo(request).heartbeat_states()
    return [HeartbeatView(group=g, **{k: v for k, v in s.items() if k in HeartbeatView.model_fields})
            for g, s in sorted(states.items())]
