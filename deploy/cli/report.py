"""``parley report --from --to [--csv|--html]``: the evaluation report, from the services' APIs.

The numbers come from the running services, never from what a simulator remembers:

* the cases received in ``[from, to)``: intake's ``GET /cases?received_from&received_to``;
* per case, where negotiation stands (``GET /cases/{id}``: agreed with the acceptance's time,
  escalated with the escalation's time, its deadline), supervision's alerts for it
  (``GET /cases/{id}``: ``deadline_warning``, ``deadline_breached``) and follow-up's
  execution (``GET /executions/{id}``: steps overdue, the satisfaction callback).

When supervision serves ``GET /reports/evaluation`` (``from``, ``to``), its figures are used
for the headline and the per-case table is still read as above.

Headline numbers (``headline``): ``cases``; ``settled`` (agreed); ``escalated``;
``deadlines_met`` = decided (agreed or escalated) by the deadline ÷ (decided + undecided with a
``deadline_breached`` alert); ``avg_days_to_decision`` from receipt to acceptance or
escalation; ``satisfaction`` = satisfied callbacks ÷ callbacks, and the mean score (1–5).
"""

# ruff: noqa: B008 - typer declares options as argument defaults
from __future__ import annotations

import asyncio
import csv
import html
import io
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from deploy.cli.common import CliError, api_url, console, run, var_dir

SERVICES = ("intake", "negotiation", "followup", "supervision")
PAGE = 100


@dataclass
class CaseRow:
    """One case as the APIs show it (no personal data: ids, statuses, times)."""

    case_id: str
    case_number: str
    channel: str
    product: str
    received_at: str
    deadline_at: str = ""
    status: str = ""  # negotiation's: open, agreed, escalated, awaiting_investigation
    category: str = ""
    decided_at: str = ""
    days_to_decision: float | None = None
    on_time: bool | None = None
    escalation_target: str = ""
    settled: bool = False  # an agreement was reached (it stays one if a callback reopens the case)
    escalated: bool = False
    reopened: bool = False
    warned: bool = False
    breached: bool = False
    execution: str = ""
    overdue_steps: int = 0
    satisfied: bool | None = None
    score: int | None = None


@dataclass
class Evaluation:
    frm: datetime
    to: datetime
    rows: list[CaseRow]
    headline: dict[str, Any]
    source: str  # where the headline came from
    made_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def headline(rows: list[CaseRow]) -> dict[str, Any]:
    """The report's headline numbers from the per-case rows."""
    decided = [r for r in rows if r.decided_at]
    judged = [r for r in rows if r.on_time is not None]
    met = sum(1 for r in judged if r.on_time)
    callbacks = [r for r in rows if r.satisfied is not None]
    days = [r.days_to_decision for r in decided if r.days_to_decision is not None]
    scores = [r.score for r in callbacks if r.score is not None]
    return {
        "cases": len(rows),
        "settled": sum(1 for r in rows if r.settled),
        "escalated": sum(1 for r in rows if r.escalated),
        "open": sum(1 for r in rows if r.status not in ("agreed", "escalated")),
        "reopened": sum(1 for r in rows if r.reopened),
        "deadlines_judged": len(judged),
        "deadlines_met": met,
        "deadlines_met_pct": round(100 * met / len(judged), 1) if judged else None,
        "deadline_warnings": sum(1 for r in rows if r.warned),
        "deadlines_breached": sum(1 for r in rows if r.breached),
        "avg_days_to_decision": round(sum(days) / len(days), 2) if days else None,
        "callbacks": len(callbacks),
        "satisfied": sum(1 for r in callbacks if r.satisfied),
        "satisfaction_pct": round(100 * sum(1 for r in callbacks if r.satisfied) / len(callbacks), 1)
        if callbacks else None,
        "avg_score": round(sum(scores) / len(scores), 2) if scores else None,
        "overdue_steps": sum(r.overdue_steps for r in rows),
    }


def regulatory_deadline(ws: dict[str, Any]) -> str | None:
    """The case's decision deadline in negotiation (with investigation's extension, if any),
    as it was before a dissatisfied callback reopened the case and gave it a new round's."""
    reopenings = ws.get("reopenings") or []
    if reopenings:
        first = reopenings[0]["at"]
        for change in ws.get("deadline_changes") or []:
            if change.get("at") == first and change.get("previous_at"):
                return str(change["previous_at"])
    return ws.get("deadline_at")


def judge(row: CaseRow, ws: dict[str, Any] | None, watch: dict[str, Any] | None,
          execution: dict[str, Any] | None) -> CaseRow:
    """Fill a row from negotiation's workspace, supervision's watch and follow-up's execution."""
    received = _at(row.received_at)
    if ws:
        row.status, row.category = ws.get("status") or "", ws.get("category") or ""
        row.deadline_at = regulatory_deadline(ws) or row.deadline_at
        row.settled, row.escalated = bool(ws.get("agreement")), bool(ws.get("escalation"))
        row.reopened = bool(ws.get("reopenings"))
        if ws.get("escalation"):
            row.escalation_target = ws["escalation"].get("target") or ""
        times = [t for t in (_at((ws.get("agreement") or {}).get("acceptance", {}).get("at")),
                             _at((ws.get("escalation") or {}).get("at"))) if t is not None]
        decided = min(times) if times else None
        if decided is not None:
            row.decided_at = decided.isoformat()
            if received is not None:
                row.days_to_decision = round((decided - received) / timedelta(days=1), 2)
    if watch:
        kinds = watch.get("alerts") or []
        row.warned = any(k.startswith("deadline_warning") for k in kinds)
        row.breached = "deadline_breached" in kinds
    deadline = _at(row.deadline_at)
    if row.decided_at and deadline is not None:
        row.on_time = _at(row.decided_at) <= deadline  # type: ignore[operator]
    elif row.breached:
        row.on_time = False
    if execution:
        row.execution = execution.get("status") or ""
        row.overdue_steps = sum(1 for s in execution.get("steps") or [] if s.get("status") == "overdue")
        callback = execution.get("callback")
        if callback:
            row.satisfied, row.score = bool(callback["satisfied"]), callback.get("score")
    return row


async def gather(apis: Any, frm: datetime, to: datetime, on_progress: Any = None) -> Evaluation:
    """Read every case received in [frm, to) and what each service says of it."""
    auditor = apis.token("auditor", "parley-report")
    ops = apis.token("ops", "parley-report")
    manager = apis.token("manager", "parley-report")
    rows: list[CaseRow] = []
    page = 1
    while True:
        status, body = await apis.call("GET", "intake", "/cases", auditor, params={
            "received_from": frm.isoformat(), "received_to": to.isoformat(), "page": page, "page_size": PAGE})
        if status != 200:
            raise CliError(f"intake's GET /cases answered {status}: {body} — is `parley services up` done?")
        for c in body["items"]:
            rows.append(CaseRow(case_id=c["case_id"], case_number=c["case_number"],
                                channel=c.get("channel") or "", product=c.get("product") or "",
                                received_at=c.get("received_at") or "", deadline_at=c.get("deadline_at") or ""))
        if page * body["page_size"] >= body["total"] or not body["items"]:
            break
        page += 1
    limit = asyncio.Semaphore(8)
    done = 0

    async def one(row: CaseRow) -> None:
        nonlocal done
        async with limit:
            s1, ws = await apis.call("GET", "negotiation", f"/cases/{row.case_id}", manager)
            s2, watch = await apis.call("GET", "supervision", f"/cases/{row.case_id}", ops)
            ex = None
            if s1 == 200 and ws.get("agreement"):  # agreed once (an unhappy callback may reopen it)
                s3, ex = await apis.call("GET", "followup", f"/executions/{row.case_id}", ops)
                ex = ex if s3 == 200 else None
            judge(row, ws if s1 == 200 else None, watch if s2 == 200 else None, ex)
        done += 1
        if on_progress:
            on_progress(done, len(rows))

    await asyncio.gather(*(one(r) for r in rows))
    head, source = headline(rows), "computed from intake, negotiation, supervision and follow-up APIs"
    days = whole_days(frm, to)
    if days is not None:  # supervision's report is by Beijing days, the last one included
        status, served = await apis.call("GET", "supervision", "/reports/evaluation", ops,
                                         params={"from": days[0].isoformat(), "to": days[1].isoformat()})
        if status == 200 and isinstance(served, dict):
            try:
                head = {**head, **served_headline(served)}
                source = ("supervision's GET /reports/evaluation for cases, settled, escalated, deadlines and "
                          "satisfaction; per-case rows and days to decision from the other APIs")
            except (KeyError, TypeError, ValueError):
                pass  # another shape: keep the computed numbers
    return Evaluation(frm=frm, to=to, rows=sorted(rows, key=lambda r: r.received_at), headline=head, source=source)


def whole_days(frm: datetime, to: datetime) -> tuple[date, date] | None:
    """(first day, last day included) when [frm, to) is whole Beijing days, else None."""
    from shared.clock import REGULATORY_TIMEZONE, to_local

    a, b = to_local(frm, REGULATORY_TIMEZONE), to_local(to, REGULATORY_TIMEZONE)
    if a.time() != time(0) or b.time() != time(0):
        return None
    return a.date(), b.date() - timedelta(days=1)


def served_headline(served: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers in supervision's ``GET /reports/evaluation`` answer."""
    deadlines, rates = served["deadlines"], served["rates"]
    by_channel = served["satisfaction"]["by_channel"]
    callbacks = sum(int(r["callbacks"]) for r in by_channel)
    satisfied = sum(int(r["satisfied"]) for r in by_channel)
    scored = [(r["mean_score"], r["callbacks"]) for r in by_channel if r.get("mean_score") is not None]
    met = int(deadlines["met"]) + int(deadlines.get("extended") or 0)
    return {
        "cases": int(served["cases"]),
        "settled": int(rates["settlement"]["cases"]),
        "escalated": int(rates["escalation"]["cases"]),
        "deadlines_judged": int(deadlines["decided"]),
        "deadlines_met": met,
        "deadlines_met_pct": round(100 * met / int(deadlines["decided"]), 1) if deadlines["decided"] else None,
        "deadlines_breached": int(deadlines["breached"]),
        "callbacks": callbacks,
        "satisfied": satisfied,
        "satisfaction_pct": round(100 * satisfied / callbacks, 1) if callbacks else None,
        "avg_score": round(sum(float(m) * n for m, n in scored) / sum(n for _, n in scored), 2) if scored else None,
    }


LABELS = {
    "cases": "cases 案件", "settled": "settled 和解", "escalated": "escalated 升级",
    "deadlines_met_pct": "deadlines met % 按时", "avg_days_to_decision": "avg days to decision 平均处理天数",
    "satisfaction_pct": "satisfaction % 满意度", "avg_score": "avg callback score 回访评分",
}


def headline_lines(head: dict[str, Any]) -> list[str]:
    """The headline numbers as lines a person reads."""
    met = head.get("deadlines_met_pct")
    sat = head.get("satisfaction_pct")
    return [
        f"cases 案件: {head['cases']}   settled 和解: {head['settled']}   escalated 升级: {head['escalated']}"
        f"   still open 未结: {head['open']}   reopened 重开: {head['reopened']}",
        f"deadlines met 按时: {head['deadlines_met']}/{head['deadlines_judged']}"
        + (f" ({met}%)" if met is not None else "")
        + f"   warnings 预警: {head['deadline_warnings']}   breached 超时: {head['deadlines_breached']}",
        "average days to decision 平均处理天数: "
        + (f"{head['avg_days_to_decision']}" if head["avg_days_to_decision"] is not None else "-"),
        f"satisfaction 满意度: {head['satisfied']}/{head['callbacks']}"
        + (f" ({sat}%)" if sat is not None else "")
        + (f", mean score {head['avg_score']}/5" if head.get("avg_score") is not None else "")
        + f"   overdue steps 逾期步骤: {head['overdue_steps']}",
    ]


def to_csv(ev: Evaluation) -> str:
    out = io.StringIO()
    names = list(CaseRow.__dataclass_fields__)
    writer = csv.DictWriter(out, fieldnames=names)
    writer.writeheader()
    for r in ev.rows:
        writer.writerow(asdict(r))
    return out.getvalue()


def to_html(ev: Evaluation, console_url: str | None = None) -> str:
    e = html.escape
    head = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in ev.headline.items())
    names = list(CaseRow.__dataclass_fields__)
    rows = "".join("<tr>" + "".join(f"<td>{e('' if v is None else str(v))}</td>" for v in asdict(r).values())
                   + "</tr>" for r in ev.rows)
    link = f'<p>Operations console: <a href="{e(console_url)}">{e(console_url)}</a></p>' if console_url else ""
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Parley 评估报告 evaluation report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}}</style></head><body>
<h1>Parley 评估报告 / evaluation report</h1>
<p>Cases received {e(ev.frm.isoformat())} – {e(ev.to.isoformat())}; numbers {e(ev.source)};
made {e(ev.made_at.isoformat(timespec='seconds'))}.</p>{link}
<h2>Headline 概要</h2><table>{head}</table>
<p>{''.join(e(line) + '<br>' for line in headline_lines(ev.headline))}</p>
<h2>Cases 案件 ({len(ev.rows)})</h2>
<table><tr>{''.join(f'<th>{e(n)}</th>' for n in names)}</tr>{rows}</table>
</body></html>
"""


def write(ev: Evaluation, *, stem: str, csv_out: bool = True, html_out: bool = True,
          directory: Path | None = None, console_url: str | None = None) -> list[Path]:
    """Write the report's CSV and/or HTML under ``var/reports/``; return the paths."""
    directory = directory or var_dir() / "reports"
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    if csv_out:
        (p := directory / f"{stem}.csv").write_text(to_csv(ev), encoding="utf-8")
        paths.append(p)
    if html_out:
        (p := directory / f"{stem}.html").write_text(to_html(ev, console_url), encoding="utf-8")
        paths.append(p)
    return paths


def show(ev: Evaluation) -> None:
    from shared.clock import REGULATORY_TIMEZONE, to_local

    frm, to = to_local(ev.frm, REGULATORY_TIMEZONE), to_local(ev.to, REGULATORY_TIMEZONE)
    table = Table(title=f"evaluation 评估 {frm:%Y-%m-%d %H:%M} – {to:%Y-%m-%d %H:%M} (Beijing)", show_header=False)
    for line in headline_lines(ev.headline):
        table.add_row(line)
    console.print(table)
    console.print(f"[dim]numbers {ev.source}[/]")


async def evaluate(frm: datetime, to: datetime, quiet: bool = False) -> Evaluation:
    import httpx
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from deploy.cli.simulation import Apis

    urls = {s: api_url(s) for s in SERVICES}
    async with httpx.AsyncClient(timeout=60) as client:
        apis = Apis(urls, client)
        progress = Progress(TextColumn("[bold]report[/] reading cases"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=console, disable=quiet, transient=True)
        with progress:
            task = progress.add_task("report", total=None)
            return await gather(apis, frm, to, lambda done, total: progress.update(task, completed=done, total=total))


def _when(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO date (2026-03-02) or date-time with offset",
                                 param_hint=name) from None
    if moment.tzinfo is None:  # a date: the start of that Beijing day
        from shared.clock import REGULATORY_TIMEZONE, zone

        moment = moment.replace(tzinfo=zone(REGULATORY_TIMEZONE))
    return moment.astimezone(UTC)


def report(
    frm: str = typer.Option(..., "--from", help="first day (Beijing) or ISO date-time with offset, inclusive"),
    to: str = typer.Option(..., "--to", help="end day (Beijing) or ISO date-time with offset, exclusive"),
    csv_out: bool = typer.Option(False, "--csv", help="write the CSV (per case) to var/reports/"),
    html_out: bool = typer.Option(False, "--html", help="write the HTML report to var/reports/"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """The evaluation report of the cases received from --from to --to: headline numbers
    (cases, settled, escalated, deadlines met, average days to decision, satisfaction) read
    from the services' APIs; --csv / --html also write files to var/reports/."""
    start, end = _when(frm, "--from"), _when(to, "--to")
    if end <= start:
        raise typer.BadParameter("must be after --from", param_hint="--to")
    ev = run(evaluate(start, end, quiet))
    show(ev)
    if csv_out or html_out:
        stem = f"report-{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}"
        for path in write(ev, stem=stem, csv_out=csv_out, html_out=html_out,
                          console_url=api_url("supervision") + "/console"):
            console.print(f"wrote {path}")
