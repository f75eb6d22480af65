"""The evaluation report (后续跟踪与评估: 总结评估, 溯源整改) — plain functions, no I/O.

Supervision keeps, on each case's watch, the facts the report needs (``facts_of``: what the
events it already reads carry — channel, product, category, root cause, agent, concession,
satisfaction, escalation, outcome) under ``r.*``, next to the timeline. ``build_report`` turns
the watches of the cases received in a period into the report: volumes, time in each stage
(p50/p90), deadline compliance, rates, concessions, satisfaction, the repeat-complaint rate
and the top root causes with their remediation items. No number is kept by hand.

The remediation register (``new_remediation``, ``edit_remediation``) is a small list ops keep:
per root cause an owner, an action, a due date and a status, with who changed what, when.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.clock import as_utc

#: how many root causes the report ranks
TOP_ROOT_CAUSES = 10
#: the first deadline tier (days): a case whose deadline moved beyond it was "extended"
BASE_TIER_DAYS = 15

LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "channel": {
        "app": ("App", "App"), "hotline": ("热线", "Hotline"), "web": ("网页", "Web form"),
        "letter": ("信函", "Letter"), "regulator_transfer": ("监管转办", "Regulator transfer"),
        "social_media": ("社交媒体", "Social media"), "in_person": ("临柜", "In person"),
    },
    "product": {
        "credit_card": ("信用卡", "Credit card"), "consumer_loan": ("消费贷款", "Consumer loan"),
        "instalment": ("分期", "Instalment"), "payments": ("支付", "Payments"), "insurance": ("保险", "Insurance"),
        "wealth": ("理财", "Wealth"), "other": ("其他", "Other"),
    },
    "category": {
        "collection_conduct": ("催收行为类", "Collection conduct"), "other": ("其他类", "Other"),
        "contract_terms": ("合同条款类", "Contract terms"), "pricing_fees": ("定价收费类", "Pricing and fees"),
        "customer_service": ("客户服务类", "Customer service"), "marketing": ("营销宣传类", "Marketing"),
    },
    "stage": {
        "investigation": ("调查核实", "Investigation"), "awaiting_negotiation": ("待协商", "Awaiting negotiation"),
        "negotiation": ("协商", "Negotiation"), "execution": ("方案执行", "Execution"),
        "followup": ("回访", "Follow-up"), "closing": ("结案", "Closing"), "total": ("受理至结案", "Received to closed"),
    },
}

#: each stage: from the first event of one type to the first of any of the others (``r.received_at``
#: stands in for ``complaint.registered``)
STAGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("investigation", "complaint.registered", ("investigation.completed",)),
    ("awaiting_negotiation", "investigation.completed", ("negotiation.started",)),
    ("negotiation", "negotiation.started", ("settlement.agreed", "case.escalated", "negotiation.failed")),
    ("execution", "settlement.agreed", ("settlement.executed",)),
    ("followup", "settlement.executed", ("followup.completed",)),
    ("closing", "followup.completed", ("case.closed",)),
    ("total", "complaint.registered", ("case.closed",)),
)

#: ``case.closed`` outcomes that mean the customer withdrew the complaint
WITHDRAWN = {"withdrawn", "withdrawal", "customer_withdrew"}

REMEDIATION_STATUSES = ("open", "in_progress", "done", "dropped")

#: the days a report period may name
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def label(dimension: str, key: str | None, lang: str = "zh") -> str:
    """The zh (or en) name of a channel, product, category or stage (the key when unknown)."""
    if key is None:
        return "（未知）" if lang == "zh" else "(unknown)"
    pair = LABELS.get(dimension, {}).get(key)
    return key if pair is None else pair[0 if lang == "zh" else 1]


# ------------------------------------------------------------------ facts kept per case


def facts_of(event_type: str, payload: Any) -> dict[str, Any]:
    """The report's facts one event gives its case (``r.<name>`` on the watch)."""
    p = payload
    if event_type == "complaint.registered":
        role = getattr(p, "role", "new_case")
        out: dict[str, Any] = {}
        if role != "linked":  # a complaint that joined an open case keeps the case's own channel
            out |= {"channel": _value(p.channel), "product": _value(p.product),
                    "received_at": p.received_at, "first_deadline_at": p.deadline_at}
            if getattr(p, "deadline_tier", None):
                out["first_tier"] = p.deadline_tier
        if getattr(p, "is_repeat", False) or role in ("linked", "repeat"):
            out["repeat"] = True
        return out
    if event_type == "investigation.completed":
        out = {"category": _value(p.category), "finding": p.finding, "complex": bool(p.complex_case)}
        if p.root_cause:
            out |= {"root_cause": p.root_cause, "root_cause_zh": p.root_cause_zh or p.root_cause,
                    "root_cause_en": p.root_cause_en or p.root_cause}
        if (p.deadline_tier or 0) > BASE_TIER_DAYS or p.complex_case or p.deadline_extension is not None:
            out["extended"] = True
        if p.paused_days:
            out["extended"] = True
        return out
    if event_type == "investigation.paused":
        return {"extended": True} if getattr(p, "resumed_at", None) is not None else {}
    if event_type == "negotiation.started":
        return {k: v for k, v in (("agent", p.agent_id), ("team", p.team)) if v}
    if event_type == "settlement.agreed":
        return {"concession": str(p.amount) if p.amount is not None else "0", "settled": True}
    if event_type == "negotiation.failed":
        return {"negotiation_failed": True}
    if event_type == "case.escalated":
        return {"escalated": True, "escalation_target": p.target}
    if event_type == "followup.completed":
        out = {"satisfied": bool(p.satisfied)}
        score = getattr(p, "score", None)
        if score is not None:
            out["score"] = int(score)
        return out
    if event_type == "case.closed":
        return {"outcome": p.outcome}
    return {}


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


# ------------------------------------------------------------------ the report


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0–1) of ``values`` by linear interpolation; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _first_times(case: Mapping[str, Any]) -> dict[str, datetime]:
    first: dict[str, datetime] = {}
    for entry in case.get("timeline", []):
        at = as_utc(entry["occurred_at"])
        kind = entry["event_type"]
        if kind not in first or at < first[kind]:
            first[kind] = at
    received = (case.get("r") or {}).get("received_at")
    if received is not None:
        first["complaint.registered"] = min(first.get("complaint.registered", as_utc(received)), as_utc(received))
    return first


def stage_hours(case: Mapping[str, Any]) -> dict[str, float]:
    """Hours the case spent in each stage it finished."""
    first = _first_times(case)
    out = {}
    for stage, start, ends in STAGES:
        if start not in first:
            continue
        done = [first[e] for e in ends if e in first]
        if done:
            out[stage] = max((min(done) - first[start]).total_seconds() / 3600, 0.0)
    return out


def deadline_outcome(case: Mapping[str, Any], now: datetime) -> str:
    """met, extended, breached, or pending (still on the clock, not yet due)."""
    r = case.get("r") or {}
    deadline = case.get("deadline_at")
    finished = case.get("finished_at")
    if "deadline_breached" in case.get("alerts", []):
        return "breached"
    if deadline is not None:
        if finished is not None and as_utc(finished) > as_utc(deadline):
            return "breached"
        if finished is None and as_utc(deadline) < as_utc(now) and not case.get("paused"):
            return "breached"
    if finished is None:
        return "pending"
    return "extended" if r.get("extended") else "met"


def _money(text: Any) -> Decimal | None:
    try:
        return Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None


def _rate(n: int, total: int) -> float | None:
    return round(n / total, 4) if total else None


def _counts(dimension: str, values: Iterable[str | None]) -> list[dict[str, Any]]:
    counter = Counter(values)
    return [{"key": k, "label_zh": label(dimension, k, "zh"), "label_en": label(dimension, k, "en"), "count": n}
            for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))]


def _satisfaction(dimension: str, cases: list[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    groups: dict[str | None, list[Mapping[str, Any]]] = defaultdict(list)
    for c in cases:
        r = c.get("r") or {}
        if "satisfied" in r:
            groups[r.get(key)].append(r)
    rows = []
    for k, rs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), str(kv[0]))):
        scores = [r["score"] for r in rs if r.get("score") is not None]
        satisfied = sum(1 for r in rs if r.get("satisfied"))
        rows.append({"key": k, "label_zh": label(dimension, k, "zh"), "label_en": label(dimension, k, "en"),
                     "callbacks": len(rs), "satisfied": satisfied, "satisfied_rate": _rate(satisfied, len(rs)),
                     "scored": len(scores),
                     "mean_score": round(sum(scores) / len(scores), 2) if scores else None})
    return rows


def build_report(cases: list[Mapping[str, Any]], *, start: datetime, end: datetime, now: datetime,
                 remediations: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The evaluation report of the cases received in [start, end) (their watches, with ``r``
    and ``timeline``), with the remediation items of the top root causes."""
    facts = [c.get("r") or {} for c in cases]
    total = len(cases)

    per_stage: dict[str, list[float]] = defaultdict(list)
    for c in cases:
        for stage, hours in stage_hours(c).items():
            per_stage[stage].append(hours)
    stage_times = []
    for stage, _, _ in STAGES:
        values = per_stage.get(stage, [])
        p50, p90 = percentile(values, 0.5), percentile(values, 0.9)
        stage_times.append({"stage": stage, "label_zh": label("stage", stage, "zh"),
                            "label_en": label("stage", stage, "en"), "cases": len(values),
                            "p50_hours": None if p50 is None else round(p50, 2),
                            "p90_hours": None if p90 is None else round(p90, 2)})

    outcomes = Counter(deadline_outcome(c, now) for c in cases)
    decided = outcomes["met"] + outcomes["extended"] + outcomes["breached"]
    deadlines = {k: outcomes[k] for k in ("met", "extended", "breached", "pending")}
    deadlines |= {"decided": decided, "met_rate": _rate(outcomes["met"] + outcomes["extended"], decided),
                  "breached_rate": _rate(outcomes["breached"], decided)}

    settled = sum(1 for r in facts if r.get("settled"))
    escalated = sum(1 for r in facts if r.get("escalated"))
    withdrawn = sum(1 for r in facts if r.get("outcome") in WITHDRAWN)
    repeat = sum(1 for r in facts if r.get("repeat"))
    rates = {name: {"cases": n, "rate": _rate(n, total)}
             for name, n in (("settlement", settled), ("escalation", escalated), ("withdrawal", withdrawn),
                             ("repeat_complaint", repeat))}

    by_category: dict[str | None, list[Decimal]] = defaultdict(list)
    for r in facts:
        if r.get("settled"):
            amount = _money(r.get("concession", "0"))
            if amount is not None:
                by_category[r.get("category")].append(amount)
    concessions = []
    for k, amounts in sorted(by_category.items(), key=lambda kv: -sum(kv[1])):
        money = sum(amounts, Decimal(0))
        concessions.append({"key": k, "label_zh": label("category", k, "zh"), "label_en": label("category", k, "en"),
                            "settlements": len(amounts), "total": f"{money:.2f}",
                            "average": f"{money / len(amounts):.2f}"})
    all_money = [a for amounts in by_category.values() for a in amounts]
    concession_total = sum(all_money, Decimal(0))

    causes: dict[str, dict[str, Any]] = {}
    for r in facts:
        code = r.get("root_cause")
        if code:
            row = causes.setdefault(code, {"root_cause": code, "label_zh": r.get("root_cause_zh") or code,
                                           "label_en": r.get("root_cause_en") or code, "count": 0})
            row["count"] += 1
    top = sorted(causes.values(), key=lambda row: (-row["count"], row["root_cause"]))[:TOP_ROOT_CAUSES]
    register: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in remediations:
        register[item["root_cause"]].append(remediation_view(item))
    for row in top:
        row["share"] = _rate(row["count"], total)
        row["remediations"] = register.get(row["root_cause"], [])

    return {
        "period": {"from": as_utc(start).isoformat(), "to": as_utc(end).isoformat()},
        "generated_at": as_utc(now).isoformat(),
        "cases": total,
        "volumes": {
            "channel": _counts("channel", (r.get("channel") for r in facts)),
            "product": _counts("product", (r.get("product") for r in facts)),
            "category": _counts("category", (r.get("category") for r in facts)),
            "root_cause": [{"key": row["root_cause"], "label_zh": row["label_zh"], "label_en": row["label_en"],
                            "count": row["count"]} for row in sorted(causes.values(),
                                                                     key=lambda x: (-x["count"], x["root_cause"]))],
        },
        "stage_times": stage_times,
        "deadlines": deadlines,
        "rates": rates,
        "concessions": {"by_category": concessions, "settlements": len(all_money),
                        "total": f"{concession_total:.2f}",
                        "average": f"{concession_total / len(all_money):.2f}" if all_money else None},
        "satisfaction": {"by_category": _satisfaction("category", cases, "category"),
                         "by_agent": _satisfaction("agent", cases, "agent"),
                         "by_channel": _satisfaction("channel", cases, "channel")},
        "top_root_causes": top,
    }


def report_csv(report: Mapping[str, Any]) -> str:
    """The report as one CSV table: section, dimension, key, label (zh), label (en), metric, value."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["section", "dimension", "key", "label_zh", "label_en", "metric", "value"])
    period = report["period"]
    w.writerow(["period", "", "", "", "", "from", period["from"]])
    w.writerow(["period", "", "", "", "", "to", period["to"]])
    w.writerow(["cases", "", "", "", "", "count", report["cases"]])
    for dimension, rows in report["volumes"].items():
        for row in rows:
            w.writerow(["volume", dimension, row["key"] or "", row["label_zh"], row["label_en"], "count", row["count"]])
    for row in report["stage_times"]:
        for metric in ("cases", "p50_hours", "p90_hours"):
            w.writerow(["stage_time", "stage", row["stage"], row["label_zh"], row["label_en"], metric,
                        "" if row[metric] is None else row[metric]])
    for metric, value in report["deadlines"].items():
        w.writerow(["deadline", "", "", "", "", metric, "" if value is None else value])
    for name, row in report["rates"].items():
        w.writerow(["rate", name, "", "", "", "cases", row["cases"]])
        w.writerow(["rate", name, "", "", "", "rate", "" if row["rate"] is None else row["rate"]])
    for row in report["concessions"]["by_category"]:
        for metric in ("settlements", "total", "average"):
            w.writerow(["concession", "category", row["key"] or "", row["label_zh"], row["label_en"], metric, row[metric]])
    for dimension, rows in report["satisfaction"].items():
        for row in rows:
            for metric in ("callbacks", "satisfied", "satisfied_rate", "mean_score"):
                w.writerow(["satisfaction", dimension.removeprefix("by_"), row["key"] or "", row["label_zh"],
                            row["label_en"], metric, "" if row[metric] is None else row[metric]])
    for row in report["top_root_causes"]:
        w.writerow(["root_cause", "root_cause", row["root_cause"], row["label_zh"], row["label_en"], "count", row["count"]])
        for item in row["remediations"]:
            w.writerow(["remediation", row["root_cause"], item["remediation_id"], item["action"], item["owner"],
                        f"due {item['due_date']}", item["status"]])
    return out.getvalue()


# ------------------------------------------------------------------ charts (inline SVG, no assets)


def bar_chart(rows: Sequence[tuple[str, float]], *, width: int = 560, bar: int = 18, unit: str = "") -> str:
    """A horizontal bar chart as inline SVG markup (labels escaped)."""
    from markupsafe import escape

    if not rows:
        return ""
    widest = max((v for _, v in rows), default=0) or 1
    left, gap = 170, 6
    height = len(rows) * (bar + gap) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    for i, (name, value) in enumerate(rows):
        y = gap + i * (bar + gap)
        length = max((width - left - 70) * value / widest, 1 if value else 0)
        shown = f"{value:g}{unit}"
        parts.append(f'<text x="{left - 6}" y="{y + bar - 5}" text-anchor="end" font-size="12">{escape(name)}</text>'
                     f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" fill="#1f5fbf"></rect>'
                     f'<text x="{left + length + 4:.1f}" y="{y + bar - 5}" font-size="12">{escape(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------ the remediation register (溯源整改)


def new_remediation(*, remediation_id: str, root_cause: str, owner: str, action: str, due_date: date,
                    status: str, by: str, now: datetime) -> dict[str, Any]:
    """A remediation item as stored (``_id`` = its id), with who created it."""
    _check_status(status)
    return {"_id": remediation_id, "root_cause": root_cause, "owner": owner, "action": action,
            "due_date": due_date.isoformat(), "status": status, "created": {"by": by, "at": now},
            "history": [{"by": by, "at": now, "changes": {"created": True}}]}


def edit_remediation(item: Mapping[str, Any], changes: Mapping[str, Any], *, by: str,
                     now: datetime) -> dict[str, Any] | None:
    """The fields to set for ``changes`` (only those that differ), with a history entry; None
    when nothing changes."""
    diff = {}
    for name in ("owner", "action", "due_date", "status", "root_cause"):
        if name in changes and changes[name] is not None:
            value = changes[name].isoformat() if isinstance(changes[name], date) else changes[name]
            if name == "status":
                _check_status(value)
            if item.get(name) != value:
                diff[name] = value
    if not diff:
        return None
    return {"set": {**diff, "updated": {"by": by, "at": now}},
            "history": {"by": by, "at": now, "changes": diff}}


def _check_status(status: str) -> None:
    if status not in REMEDIATION_STATUSES:
        raise ValueError(f"status must be one of {', '.join(REMEDIATION_STATUSES)}")


def remediation_view(item: Mapping[str, Any]) -> dict[str, Any]:
    """A stored remediation item as the API shows it."""
    return {"remediation_id": item["_id"], "root_cause": item["root_cause"], "owner": item["owner"],
            "action": item["action"], "due_date": item["due_date"], "status": item["status"],
            "created": item.get("created"), "updated": item.get("updated")}


def period_bounds(first: date | None, last: date | None, now: datetime) -> tuple[datetime, datetime]:
    """The report's period as times: from 00:00 Beijing of ``first`` to 24:00 Beijing of
    ``last`` (both days included). Defaults: this Beijing month up to today."""
    from datetime import time, timedelta

    from shared.clock import REGULATORY_TIMEZONE, beijing_day, zone

    today = beijing_day(now)
    first = first or today.replace(day=1)
    last = last or today
    for name, day in (("from", first), ("to", last)):
        if not EARLIEST_DAY <= day <= LATEST_DAY:
            raise ValueError(f"{name} must be a day from {EARLIEST_DAY} to {LATEST_DAY}")
    if last < first:
        raise ValueError("to must not be before from")
    tz = zone(REGULATORY_TIMEZONE)
    return datetime.combine(first, time(0), tzinfo=tz), datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)
