"""Supervision's web console: server-rendered pages for operations and auditors (issue 13).

Pages (Jinja2 templates in ``templates/``, inline CSS, no asset from the internet), zh-CN by
default, English with ``?lang=en`` (remembered in the ``parley_lang`` cookie):

- ``/console/login`` takes a bearer token and keeps it in an HttpOnly, SameSite=Strict cookie
  (``parley_console``); ``/console/logout`` clears it. Both are open.
- ``/console`` overview: cases by status as a funnel (the numbers of ``GET /overview``), cases
  due today / this week, deadlines breached;
- ``/console/alerts`` with a status filter and, for ``ops``, an Acknowledge form;
- ``/console/dead-letters`` with, for ``ops``, a Replay form (``shared.kafka.replay``: once,
  header ``replayed_from``; recorded in ``console_replays`` and on the audit chain);
- ``/console/lag``, ``/console/cases?q=`` and ``/console/cases/{case_id}`` (the timeline).

Every page takes the token from the cookie or the ``Authorization`` header and is for ``ops``
and ``auditor``; the two POSTs that act are for ``ops`` and carry a CSRF token (an HMAC of the
session token) in the form. Without a valid token a page answers 401 (an HTML page pointing at
the login, ``WWW-Authenticate: Bearer``), with another role 403 — as the access matrix says.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from services.supervision import handlers
from services.supervision.models import AlertNote
from services.supervision.repository import Repository
from shared.auth import Principal, Role, verifier_of
from shared.clock import REGULATORY_TIMEZONE, beijing_day, zone
from shared.contracts.envelope import utcnow
from shared.errors import Forbidden, NotFound, ParleyError, Unauthenticated, Unprocessable

COOKIE = "parley_console"
LANG_COOKIE = "parley_lang"
LANGS = ("zh", "en")
WATCHERS: tuple[Role, ...] = ("ops", "auditor")
ACTORS: tuple[Role, ...] = ("ops",)

#: the funnel: stages in order, each with the statuses (``handlers.STATUS_RANK``) it counts
FUNNEL: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("registered", ("open", "registered")),
    ("investigated", ("investigated",)),
    ("negotiating", ("negotiating",)),
    ("offer", ("offer_open", "negotiation_failed")),
    ("settled_escalated", ("settled", "escalated")),
    ("executed", ("executed", "followed_up")),
    ("closed", ("closed",)),
)

#: the console's words: key → (中文, English)
WORDS: dict[str, tuple[str, str]] = {
    "title": ("Parley 监督控制台", "Parley operations console"),
    "overview": ("总览", "Overview"),
    "alerts": ("告警", "Alerts"),
    "dead_letters": ("死信", "Dead letters"),
    "lag": ("消费延迟", "Consumer lag"),
    "cases": ("案件查询", "Case search"),
    "login": ("登录", "Sign in"),
    "logout": ("退出", "Sign out"),
    "logged_out": ("已退出。", "Signed out."),
    "token": ("令牌（Bearer token）", "Bearer token"),
    "token_hint": ("开发令牌：python -m shared.auth token --role ops --sub 您的名字",
                   "A development token: python -m shared.auth token --role ops --sub your-name"),
    "login_needed": ("请先登录。", "Please sign in."),
    "forbidden": ("您的角色不能使用此页面。", "Your role may not use this page."),
    "not_found": ("未找到。", "Not found."),
    "bad_request": ("请求无效。", "Bad request."),
    "signed_in_as": ("当前用户", "Signed in as"),
    "funnel": ("案件漏斗（按当前状态）", "Cases by status (funnel)"),
    "stage": ("阶段", "Stage"),
    "status": ("状态", "Status"),
    "count": ("数量", "Count"),
    "total": ("合计", "Total"),
    "deadlines": ("时限", "Deadlines"),
    "due_today": ("今日到期", "Due today"),
    "due_week": ("本周到期", "Due this week"),
    "breached": ("已超期", "Breached"),
    "alerts_total": ("告警总数", "Alerts recorded"),
    "dead_letters_total": ("死信总数", "Dead letters recorded"),
    "stage_registered": ("已受理", "Registered"),
    "stage_investigated": ("已调查", "Investigated"),
    "stage_negotiating": ("协商中", "Negotiating"),
    "stage_offer": ("方案", "Offer"),
    "stage_settled_escalated": ("和解 / 升级", "Settled / escalated"),
    "stage_executed": ("已执行", "Executed"),
    "stage_closed": ("已结案", "Closed"),
    "all": ("全部", "All"),
    "open": ("待处理", "Open"),
    "acknowledged": ("已确认", "Acknowledged"),
    "resolved": ("已解决", "Resolved"),
    "kind": ("类型", "Kind"),
    "severity": ("级别", "Severity"),
    "message": ("内容", "Message"),
    "case": ("案件", "Case"),
    "raised_at": ("时间", "Raised at"),
    "producer": ("来源服务", "Raised by"),
    "by": ("处理人", "By"),
    "note": ("备注", "Note"),
    "acknowledge": ("确认", "Acknowledge"),
    "resolve": ("解决", "Resolve"),
    "none": ("无", "None"),
    "reason": ("原因", "Reason"),
    "source": ("来源", "Source"),
    "position": ("位置", "Position"),
    "consumer": ("消费者", "Consumer"),
    "failed_at": ("失败时间", "Failed at"),
    "replay": ("重放", "Replay"),
    "replayed": ("已重放", "Replayed"),
    "replay_done": ("已重放到", "Replayed to"),
    "replay_already": ("此前已重放，未重复发送：", "Already replayed, nothing sent:"),
    "replay_missing": ("Kafka 中没有这条死信。", "That dead letter is not in Kafka."),
    "group": ("消费组", "Consumer group"),
    "topic": ("主题", "Topic"),
    "partition": ("分区", "Partition"),
    "committed": ("已提交", "Committed"),
    "end": ("末尾", "End"),
    "threshold": ("告警阈值", "Alert threshold"),
    "above": ("超过阈值", "above threshold"),
    "search": ("查询", "Search"),
    "search_hint": ("案件 ID 或案件编号", "Case id or case number"),
    "recent": ("最近的案件", "Recent cases"),
    "no_match": ("没有匹配的案件。", "No case matches."),
    "case_number": ("案件编号", "Case number"),
    "deadline": ("时限", "Deadline"),
    "paused": ("暂停计时", "Clock paused"),
    "last_event": ("最近事件", "Last event"),
    "timeline": ("时间线", "Timeline"),
    "event": ("事件", "Event"),
    "occurred_at": ("发生时间", "Occurred at"),
    "case_alerts": ("案件告警", "Alerts of the case"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "read_only": ("审计角色：只读。", "Auditor: read only."),
    "deadline_board": ("时限看板", "Deadline board"),
    "due_this_week": ("本周到期", "Due this week"),
    "report": ("评估报告", "Evaluation report"),
    "report_title": ("投诉处理总结评估报告", "Complaint handling evaluation report"),
    "period": ("统计期间", "Period"),
    "from": ("自", "From"),
    "to": ("至", "To"),
    "show": ("生成", "Show"),
    "download_csv": ("下载 CSV", "Download CSV"),
    "print": ("打印", "Print"),
    "cases_received": ("期间受理案件", "Cases received"),
    "generated_at": ("生成时间", "Generated at"),
    "volumes": ("案件量", "Volumes"),
    "by_channel": ("按渠道", "By channel"),
    "by_product": ("按产品", "By product"),
    "by_category": ("按类别", "By category"),
    "by_root_cause": ("按根因", "By root cause"),
    "by_agent": ("按协商人员", "By agent"),
    "stage_times": ("各阶段用时（小时）", "Time in each stage (hours)"),
    "cases_n": ("案件数", "Cases"),
    "deadline_compliance": ("时限达标情况", "Deadline compliance"),
    "met": ("按时办结", "Met"),
    "extended": ("延期后按时办结", "Met after extension"),
    "pending": ("未到期", "Pending"),
    "met_rate": ("达标率", "Met rate"),
    "rates": ("处理结果", "Outcomes"),
    "rate": ("比率", "Rate"),
    "rate_settlement": ("和解率", "Settlement rate"),
    "rate_escalation": ("升级率", "Escalation rate"),
    "rate_withdrawal": ("撤诉率", "Withdrawal rate"),
    "rate_repeat_complaint": ("重复投诉率", "Repeat-complaint rate"),
    "concessions": ("让步金额（元）", "Concessions (CNY)"),
    "settlements": ("和解数", "Settlements"),
    "average": ("平均", "Average"),
    "satisfaction": ("客户满意度", "Satisfaction"),
    "callbacks": ("回访数", "Callbacks"),
    "satisfied_rate": ("满意率", "Satisfied"),
    "mean_score": ("平均评分（1–5）", "Mean score (1–5)"),
    "top_root_causes": ("主要根因与溯源整改", "Top root causes and remediation"),
    "root_cause": ("根因", "Root cause"),
    "share": ("占比", "Share"),
    "remediation": ("整改事项", "Remediation"),
    "owner": ("责任人", "Owner"),
    "action": ("整改措施", "Action"),
    "due_date": ("完成期限", "Due date"),
    "add_remediation": ("新增整改事项", "Add a remediation item"),
    "save": ("保存", "Save"),
    "rem_open": ("未开始", "Open"),
    "rem_in_progress": ("进行中", "In progress"),
    "rem_done": ("已完成", "Done"),
    "rem_dropped": ("已撤销", "Dropped"),
    "heartbeats": ("服务心跳", "Service heartbeats"),
    "members": ("在线工作进程", "Workers"),
    "last_commit": ("最近提交", "Last commit"),
    "checked_at": ("检查时间", "Checked at"),
    "down": ("无工作进程", "down"),
    "stalled": ("停滞", "stalled"),
    "ok": ("正常", "ok"),
    "not_started": ("未启动", "not started"),
}

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))

router = APIRouter(prefix="/console", include_in_schema=False)


def word(key: str, lang: str) -> str:
    """The console's word for ``key`` in ``lang`` (the key itself when there is none)."""
    pair = WORDS.get(key)
    return key if pair is None else pair[LANGS.index(lang) if lang in LANGS else 0]


def lang_of(request: Request) -> str:
    """``?lang=`` first, then the cookie, then zh."""
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked
    kept = request.cookies.get(LANG_COOKIE)
    return kept if kept in LANGS else "zh"


def funnel(counts: dict[str, int]) -> list[dict[str, Any]]:
    """The funnel's stages in order, each with its statuses' counts (as ``GET /overview`` has them)."""
    stages = []
    for stage, statuses in FUNNEL:
        rows = [(s, counts.get(s, 0)) for s in statuses]
        stages.append({"stage": stage, "statuses": rows, "total": sum(n for _, n in rows)})
    listed = {s for _, statuses in FUNNEL for s in statuses}
    extra = [(s, n) for s, n in counts.items() if s not in listed]  # a status the funnel does not know yet
    if extra:
        stages.append({"stage": "other", "statuses": extra, "total": sum(n for _, n in extra)})
    return stages


def csrf_token(secret: bytes, session_token: str) -> str:
    """The form token of a session: an HMAC of its bearer token (stateless, per session)."""
    return hmac.new(secret, b"parley-console-csrf|" + session_token.encode(), hashlib.sha256).hexdigest()[:40]


# ------------------------------------------------------------------ who is calling


class ConsoleUnauthenticated(Unauthenticated):
    """No valid token on a console page: answered with an HTML page pointing at the login."""


class ConsoleForbidden(Forbidden):
    """A role the console page is not for: answered with an HTML page."""


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(COOKIE) or None


async def _verify(request: Request, token: str) -> Principal:
    verifier = verifier_of(request.app)
    if verifier.fetches_keys:
        return await asyncio.to_thread(verifier.verify, token)
    return verifier.verify(token)


class ConsoleGate:
    """The caller from the cookie or the ``Authorization`` header, when their role is one of ``roles``."""

    def __init__(self, roles: tuple[Role, ...]) -> None:
        self.roles = roles

    async def __call__(self, request: Request) -> Principal:
        token = _token_of(request)
        if token is None:
            raise ConsoleUnauthenticated("sign in at /console/login (or send Authorization: Bearer <token>)")
        try:
            p = await _verify(request, token)
        except Unauthenticated as exc:
            raise ConsoleUnauthenticated(exc.message) from None
        request.state.principal = p
        request.state.console_token = token
        if p.role not in self.roles:
            raise ConsoleForbidden(f"role {p.role} may not use this page (it is for: {', '.join(self.roles)})")
        return p

    def __repr__(self) -> str:
        return f"require({', '.join(self.roles)})"


Watcher = Annotated[Principal, Depends(ConsoleGate(WATCHERS))]
Actor = Annotated[Principal, Depends(ConsoleGate(ACTORS))]


def install_console(app: FastAPI) -> None:
    """HTML answers for the console's 401 and 403 (the API's stay JSON)."""

    async def _page(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ParleyError)
        lang = lang_of(request)
        unauth = isinstance(exc, ConsoleUnauthenticated)
        status = 401 if unauth else 403
        request.state.error = exc.message
        return TEMPLATES.TemplateResponse(
            request, "error.html",
            {**_context(request, lang, None), "status": status,
             "headline": word("login_needed" if unauth else "forbidden", lang), "detail": exc.message,
             "show_login": True},
            status_code=status, headers={"WWW-Authenticate": "Bearer"} if unauth else None)

    app.add_exception_handler(ConsoleUnauthenticated, _page)
    app.add_exception_handler(ConsoleForbidden, _page)


# ------------------------------------------------------------------ rendering


def _secret(request: Request) -> bytes:
    secret: str = request.app.state.settings.auth.secret.get_secret_value()
    return secret.encode()


def _context(request: Request, lang: str, p: Principal | None) -> dict[str, Any]:
    token = getattr(request.state, "console_token", None)
    return {
        "lang": lang, "other_lang": "en" if lang == "zh" else "zh",
        "t": lambda key: word(key, lang),
        "me": p, "can_act": p is not None and p.role in ACTORS,
        "csrf": csrf_token(_secret(request), token) if token else "",
        "path": request.url.path,
        "switch_url": "?" + urlencode({**{k: v for k, v in request.query_params.items() if k != "lang"},
                                       "lang": "en" if lang == "zh" else "zh"}),
    }


def render(request: Request, template: str, p: Principal | None, status_code: int = 200,
           **values: Any) -> Response:
    """A page in the caller's language; remember an asked ``?lang=`` in its cookie."""
    lang = lang_of(request)
    response = TEMPLATES.TemplateResponse(request, template, {**_context(request, lang, p), **values},
                                          status_code=status_code)
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict", httponly=True,
                            secure=request.url.scheme == "https")
    return response


def _repo(request: Request) -> Repository:
    repo: Repository = request.app.state.deps.repo
    return repo


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (first value of each field; anything else is empty)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _check_csrf(request: Request, form: dict[str, str]) -> str | None:
    """Why the form's CSRF token is wrong (None when it is right)."""
    token = getattr(request.state, "console_token", None)
    sent = form.get("csrf", "")
    if not token or not sent or not hmac.compare_digest(sent, csrf_token(_secret(request), token)):
        return "the form's CSRF token is missing or wrong: reload the page and try again"
    return None


def _bad(request: Request, p: Principal, detail: str, status: int = 400) -> Response:
    return render(request, "error.html", p, status_code=status, status=status,
                  headline=word("not_found" if status == 404 else "bad_request", lang_of(request)),
                  detail=detail, show_login=False)


# ------------------------------------------------------------------ login


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    """The sign-in form (open)."""
    return render(request, "login.html", None, error=None, notice=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the token (valid, role ops or auditor) and keep it in the session cookie (open)."""
    form = await _form(request)
    token = form.get("token", "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    error = None
    if not token:
        error = word("login_needed", lang_of(request))
    else:
        try:
            p = await _verify(request, token)
        except Unauthenticated as exc:
            error = exc.message
        else:
            if p.role not in WATCHERS:
                error = f"{word('forbidden', lang_of(request))} (role {p.role})"
    if error is not None:  # the form again, with why (200: the login page is open)
        return render(request, "login.html", None, error=error, notice=None)
    response = RedirectResponse("/console", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        path="/console")
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    """Forget the session cookie (open)."""
    response = render(request, "login.html", None, error=None, notice=word("logged_out", lang_of(request)))
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


# ------------------------------------------------------------------ pages


async def deadline_numbers(repo: Repository, now: datetime) -> dict[str, int]:
    """Cases on the clock due today and this week (Beijing days, Monday to Sunday), and breaches."""
    today = beijing_day(now)
    start = datetime.combine(today, time(0), tzinfo=zone(REGULATORY_TIMEZONE))
    day = await repo.deadline_counts(start, start + timedelta(days=1), handlers.FINISHED_FROM_RANK)
    week_end = start + timedelta(days=7 - today.weekday())
    week = await repo.deadline_counts(start, week_end, handlers.FINISHED_FROM_RANK)
    return {"due_today": day["due_today"], "due_week": week["due_today"], "breached": day["breached"]}


@router.get("", response_class=HTMLResponse)
async def overview_page(request: Request, p: Watcher) -> Response:
    """The funnel (``GET /overview``'s numbers) and the deadlines."""
    from services.supervision.api import overview

    numbers = await overview(request)
    counts: dict[str, int] = numbers["cases_by_status"]
    return render(request, "overview.html", p, stages=funnel(counts), counts=counts,
                  total=sum(counts.values()), numbers=numbers,
                  deadlines=await deadline_numbers(_repo(request), utcnow()))


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page(request: Request, p: Watcher) -> Response:
    """The newest alerts of every service, optionally of one status."""
    from services.supervision.api import _alert_view

    status = request.query_params.get("status")
    if status not in ("open", "acknowledged", "resolved"):
        status = None
    docs = await _repo(request).list_alerts(None, 200, status)
    return render(request, "alerts.html", p, alerts=[_alert_view(d) for d in docs], status=status)


@router.post("/alerts/{alert_id}/acknowledge", response_class=HTMLResponse)
async def acknowledge(alert_id: str, request: Request, p: Actor) -> Response:
    """The Acknowledge button: ``POST /alerts/{alert_id}/acknowledge`` as the caller (ops)."""
    from services.supervision.api import acknowledge_alert

    return await _act_on_alert(alert_id, request, p, acknowledge_alert)


@router.post("/alerts/{alert_id}/resolve", response_class=HTMLResponse)
async def resolve(alert_id: str, request: Request, p: Actor) -> Response:
    """The Resolve button: ``POST /alerts/{alert_id}/resolve`` as the caller (ops)."""
    from services.supervision.api import resolve_alert

    return await _act_on_alert(alert_id, request, p, resolve_alert)


async def _act_on_alert(alert_id: str, request: Request, p: Principal, act: Any) -> Response:
    form = await _form(request)
    problem = _check_csrf(request, form)
    if problem:
        return _bad(request, p, problem)
    note = (form.get("note") or "").strip()[:2000] or None
    try:
        await act(alert_id, AlertNote(note=note), request, p)
    except NotFound as exc:
        return _bad(request, p, exc.message, status=404)
    back = form.get("back") or ""
    return RedirectResponse("/console/alerts" + (f"?status={quote(back)}" if back else ""), status_code=303)


async def _replays(repo: Repository) -> dict[str, dict[str, Any]]:
    return {doc["_id"]: doc async for doc in repo.db["console_replays"].find({})}


@router.get("/dead-letters", response_class=HTMLResponse)
async def dead_letters_page(request: Request, p: Watcher) -> Response:
    """Dead letters: reason, source, position, and whether the console replayed them."""
    from shared.kafka.replay import marker_of

    repo = _repo(request)
    letters = await repo.list_dead_letters(200)
    done = await _replays(repo)
    for d in letters:
        d["marker"] = marker_of(d["dlq_topic"], d["partition"], d["offset"])
        d["replay"] = done.get(d["marker"])
    return render(request, "dead_letters.html", p, letters=letters, result=None)


@router.post("/dead-letters/replay", response_class=HTMLResponse)
async def replay(request: Request, p: Actor) -> Response:
    """The Replay form: the dead letter's original bytes to its source topic, once; audited."""
    from aiokafka.errors import KafkaError

    from shared.audit import chain_for
    from shared.kafka.dlq import read_stored_body
    from shared.kafka.replay import marker_of
    from shared.kafka.replay import replay as replay_dead_letter

    form = await _form(request)
    problem = _check_csrf(request, form)
    if problem:
        return _bad(request, p, problem)
    topic = form.get("dlq_topic", "")
    try:
        partition, offset = int(form.get("partition", "")), int(form.get("offset", ""))
    except ValueError:
        return _bad(request, p, "partition and offset must be numbers", status=422)
    repo = _repo(request)
    letter = await repo.dead_letters.find_one({"dlq_topic": topic, "partition": partition, "offset": offset})
    if letter is None:
        return _bad(request, p, f"supervision has seen no dead letter at {topic} {partition}/{offset}", status=404)
    marker = marker_of(topic, partition, offset)
    replays = repo.db["console_replays"]
    out = await replays.find_one({"_id": marker})
    if out is None:
        async def stored(headers: dict[str, str]) -> dict[str, Any]:
            database, _, collection = (headers.get("dlq.stored_in") or "").partition("/")
            doc = await read_stored_body(repo.db.client[database][collection], headers["dlq.stored_id"],
                                         reader=f"supervision-console:{p.sub}"[:200], purpose="console replay")
            if doc is None:
                raise ValueError(f"the stored body {headers['dlq.stored_id']} is not in {database}/{collection}")
            return doc

        try:
            result = await replay_dead_letter(request.app.state.settings.kafka, topic, partition, offset,
                                              stored_body=stored)
        except (KafkaError, ValueError) as exc:  # the broker, or a stored body, not there
            return _bad(request, p, f"not replayed: {type(exc).__name__}: {exc}"[:500], status=503)
        if result is None:
            return _bad(request, p, word("replay_missing", lang_of(request)), status=404)
        out = {**{k: result[k] for k in ("status", "topic", "partition", "offset")}, "by": p.sub, "at": utcnow()}
        await replays.update_one({"_id": marker}, {"$setOnInsert": out}, upsert=True)
        status = result["status"]
    else:
        status = "already"
    await chain_for(repo.db).append(
        who=p.sub, role=p.role, action="console replay dead letter",
        details={"replayed_from": marker, "outcome": status, "topic": out["topic"],
                 "partition": out["partition"], "offset": out["offset"]})
    letters = await repo.list_dead_letters(200)
    done = await _replays(repo)
    for d in letters:
        d["marker"] = marker_of(d["dlq_topic"], d["partition"], d["offset"])
        d["replay"] = done.get(d["marker"])
    return render(request, "dead_letters.html", p, letters=letters,
                  result={"status": status, "marker": marker, "topic": out["topic"],
                          "partition": out["partition"], "offset": out["offset"]})


@router.get("/lag", response_class=HTMLResponse)
async def lag_page(request: Request, p: Watcher) -> Response:
    """Every consumer group's lag per partition (``GET /lag``)."""
    from services.supervision.api import heartbeats, lag

    view = await lag(request)
    return render(request, "lag.html", p, view=view, beats=await heartbeats(request))


@router.get("/cases", response_class=HTMLResponse)
async def cases_page(request: Request, p: Watcher) -> Response:
    """Find a case by id or case number (without ``q``: the most recently active cases)."""
    q = (request.query_params.get("q") or "").strip()[:128]
    repo = _repo(request)
    projection = {"timeline": 0}
    if q:
        docs = [d async for d in repo.cases.find({"$or": [{"_id": q}, {"case_number": q}]}, projection).limit(50)]
    else:
        docs = [d async for d in repo.cases.find({}, projection).sort("last_event_at", -1).limit(50)]
    for d in docs:
        d["status"] = handlers.status_of(d.get("status_rank"))
    return render(request, "cases.html", p, q=q, cases=docs)


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def case_page(case_id: str, request: Request, p: Watcher) -> Response:
    """One case: status, deadline, alerts and its whole timeline (``GET /cases/{case_id}``)."""
    from services.supervision.api import case

    try:
        watch = await case(case_id, request)
    except NotFound as exc:
        return _bad(request, p, exc.message, status=404)
    return render(request, "case.html", p, case=watch)


# ------------------------------------------------------------------ deadline board, evaluation report


@router.get("/deadlines", response_class=HTMLResponse)
async def deadlines_page(request: Request, p: Watcher) -> Response:
    """The deadline board (``GET /deadlines``): due today, due this week, breached."""
    from services.supervision.api import board

    return render(request, "deadlines.html", p, board=await board(request, utcnow()))


def _period_args(request: Request) -> tuple[date | None, date | None] | str:
    """``from`` and ``to`` of the query as days, or why they are not."""
    out = []
    for name in ("from", "to"):
        text = (request.query_params.get(name) or "").strip()
        try:
            out.append(date.fromisoformat(text) if text else None)
        except ValueError:
            return f"{name} must be a day as YYYY-MM-DD"
    return out[0], out[1]


async def _report_or_problem(request: Request, p: Principal) -> dict[str, Any] | Response:
    from services.supervision.api import evaluation_report

    period = _period_args(request)
    if isinstance(period, str):
        return _bad(request, p, period, status=422)
    try:
        return await evaluation_report(request, *period)
    except Unprocessable as exc:
        return _bad(request, p, exc.message, status=422)


def _charts(report: dict[str, Any], lang: str) -> dict[str, Markup]:
    """The report's charts as inline SVG (no script, no asset from the internet)."""
    from services.supervision.evaluation import bar_chart

    name = "label_zh" if lang == "zh" else "label_en"
    charts = {dim: bar_chart([(r[name], r["count"]) for r in rows[:12]])
              for dim, rows in report["volumes"].items()}
    charts["stage_p50"] = bar_chart([(r[name], r["p50_hours"]) for r in report["stage_times"]
                                     if r["p50_hours"] is not None], unit=" h")
    d = report["deadlines"]
    charts["deadlines"] = bar_chart([(word(k, lang), d[k]) for k in ("met", "extended", "breached", "pending")])
    charts["satisfaction"] = bar_chart([(r[name], round(100 * (r["satisfied_rate"] or 0), 1))
                                        for r in report["satisfaction"]["by_category"]], unit=" %")
    return {k: Markup(v) for k, v in charts.items()}  # noqa: S704 - built from escaped labels and numbers


@router.get("/reports/evaluation", response_class=HTMLResponse)
async def report_page(request: Request, p: Watcher) -> Response:
    """The evaluation report as a printable page with charts, a CSV link and the remediation register."""
    from services.supervision.evaluation import REMEDIATION_STATUSES

    report = await _report_or_problem(request, p)
    if isinstance(report, Response):
        return report
    lang = lang_of(request)
    query = urlencode({"from": report["period"]["first_day"], "to": report["period"]["last_day"]})
    return render(request, "report.html", p, report=report, charts=_charts(report, lang), query=query,
                  statuses=REMEDIATION_STATUSES, remediations=await _repo(request).list_remediations())


@router.get("/reports/evaluation.csv")
async def report_csv_download(request: Request, p: Watcher) -> Response:
    """The evaluation report as CSV (``GET /reports/evaluation.csv``), with the console's session."""
    from services.supervision.api import csv_response

    report = await _report_or_problem(request, p)
    return report if isinstance(report, Response) else csv_response(report)


def _invalid(request: Request, p: Principal, exc: Any) -> Response:
    """A 422 page naming each field a form got wrong."""
    return _bad(request, p, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
                status=422)


def _back_to_report(form: dict[str, str]) -> RedirectResponse:
    back = {k: form[k] for k in ("from", "to") if form.get(k)}
    return RedirectResponse("/console/reports/evaluation" + (f"?{urlencode(back)}" if back else "") + "#register",
                            status_code=303)


@router.post("/remediations", response_class=HTMLResponse)
async def add_remediation_form(request: Request, p: Actor) -> Response:
    """The register's Add form (ops): ``POST /remediations`` as the caller."""
    from pydantic import ValidationError

    from services.supervision.api import create_remediation
    from services.supervision.models import RemediationIn

    form = await _form(request)
    problem = _check_csrf(request, form)
    if problem:
        return _bad(request, p, problem)
    try:
        body = RemediationIn(**{k: form.get(k) or None for k in ("root_cause", "owner", "action", "due_date")},
                             status=form.get("status") or "open")
    except ValidationError as exc:
        return _invalid(request, p, exc)
    await create_remediation(request, body, p)
    return _back_to_report(form)


@router.post("/remediations/{remediation_id}", response_class=HTMLResponse)
async def edit_remediation_form(remediation_id: str, request: Request, p: Actor) -> Response:
    """The register's Save form of one item (ops): ``PATCH /remediations/{id}`` as the caller."""
    from pydantic import ValidationError

    from services.supervision.api import change_remediation
    from services.supervision.models import RemediationPatch

    form = await _form(request)
    problem = _check_csrf(request, form)
    if problem:
        return _bad(request, p, problem)
    try:
        body = RemediationPatch(**{k: form.get(k) or None for k in ("owner", "action", "due_date", "status")})
        await change_remediation(request, remediation_id, body, p)
    except ValidationError as exc:
        return _invalid(request, p, exc)
    except NotFound as exc:
        return _bad(request, p, exc.message, status=404)
    return _back_to_report(form)
