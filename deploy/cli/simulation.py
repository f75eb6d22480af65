"""The simulated month behind ``parley simulate``: real complaints, agents and customers.

Everything here acts through the services' real interfaces — complaints go to Kafka's
``complaint.received`` or intake's ``POST /complaints``; agents, customers and operations
staff call negotiation's and follow-up's APIs with the tokens of their roles — on the
services' own clock (``shared.clock.AcceleratedClock``, the clock every service process was
started with). Nothing is written to a database directly.

The parts without I/O (arrival times, the texts, the policies' choices, the offer an agent
makes from investigation's remedy range) are plain functions, unit-tested in
``tests/unit/cli/test_simulation.py``.

Stated policies (``Policy``; ``docs/cli.md#simulate``):

* an **agent** answers an open case after 0.2–2 days with an offer inside investigation's
  remedy range *and* the agent's authority (negotiation's defaults: 2,000 CNY, 50 % waiver):
  one term per remedy item (refund, fee waiver, compensation, credit report correction,
  apology), the amount drawn in the range; a share of consumer-loan cases also get a short
  instalment plan of what is owed;
* a **customer** answers an offer after 0.3–3 days: accept, counter, reject or stay silent
  with the probabilities given; a counter or a rejection of a non-final offer gets a final,
  better offer (still within range and authority); rejecting a final offer sends the case
  to mediation; a silent customer is left to negotiation's near-deadline escalation;
* **operations** carry out the institution's steps of an agreement after 0.5–4 days, record
  the customer's instalments when due except the missed share, and make the satisfaction
  callback 1–3 days after execution — unhappy with the probability given (the case reopens).
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import heapq
import json
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from deploy.cli.common import REPO, CliError
from shared.clock import REGULATORY_TIMEZONE, Clock, to_local

#: Where the real complaints are (``../shared/data``; ``PARLEY_SHARED_DATA`` overrides).
DATA = Path(os.environ.get("PARLEY_SHARED_DATA") or REPO.parent / "shared" / "data")
CHANNELS = (("app", 0.35), ("web", 0.2), ("hotline", 0.25), ("regulator_transfer", 0.1), ("social_media", 0.1))
CATEGORIES = ["collection_conduct", "other", "contract_terms", "pricing_fees", "customer_service", "marketing"]
#: Simulated agents (one team); each takes every category in both languages.
AGENTS = tuple(f"sim-agent-{i}" for i in range(1, 7))
TEAM = "sim"
#: The agent's authority in negotiation's default settings (services/negotiation/settings.py).
AGENT_MAX_CONCESSION = Decimal("2000")
AGENT_MAX_WAIVER_PCT = Decimal("50")
CENT = Decimal("0.01")


# ------------------------------------------------------------------ policies


@dataclass(frozen=True)
class Policy:
    """The simulated people's choices (probabilities and delays in simulated days)."""

    accept: float = 0.55
    counter: float = 0.15
    reject: float = 0.10
    silent: float = 0.20
    final_accept: float = 0.65  # a final offer after a counter or a rejection
    unhappy_callback: float = 0.15
    missed_instalment: float = 0.2
    instalment_share: float = 0.25  # consumer-loan/instalment cases offered a plan too
    http_share: float = 0.5  # complaints sent through intake's API rather than Kafka
    agent_days: tuple[float, float] = (0.2, 2.0)
    customer_days: tuple[float, float] = (0.3, 3.0)
    ops_days: tuple[float, float] = (0.5, 4.0)
    callback_days: tuple[float, float] = (1.0, 3.0)

    def __post_init__(self) -> None:
        total = self.accept + self.counter + self.reject + self.silent
        if abs(total - 1) > 1e-6:
            raise ValueError(f"accept + counter + reject + silent must be 1, not {total:g}")

    def answer(self, rng: random.Random, *, final: bool) -> str:
        """A customer's answer to an offer: accept, counter, reject or silent (a final offer
        cannot be countered: accept or reject, or silence)."""
        if final:
            roll = rng.random()
            if roll < self.final_accept:
                return "accept"
            return "reject" if roll < self.final_accept + (1 - self.final_accept) * 0.6 else "silent"
        roll, edge = rng.random(), 0.0
        for choice, p in (("accept", self.accept), ("counter", self.counter), ("reject", self.reject)):
            edge += p
            if roll < edge:
                return choice
        return "silent"

    def delay(self, rng: random.Random, span: tuple[float, float]) -> timedelta:
        return timedelta(days=rng.uniform(*span))


# ------------------------------------------------------------------ the complaints


def _zh_texts() -> list[str]:
    texts = []
    for split in ("train.csv", "dev.csv"):
        with (DATA / "complaints-zh" / split).open(encoding="utf-8", newline="") as fh:
            texts += [row[0] for row in csv.reader(fh) if row and row[0].strip()]
    return list(dict.fromkeys(texts))  # the data repeats some texts: each once


def _en_rows() -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    with gzip.open(DATA / "cfpb-2023-sample.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            text = row.get("complaint_what_happened") or ""
            if 200 < len(text) < 4000:
                rows.setdefault(text, row)  # templated letters repeat: each text once
    return list(rows.values())


def en_product(cfpb_product: str) -> str:
    """Our product for a CFPB product name."""
    p = cfpb_product.lower()
    if "credit card" in p or "prepaid" in p:
        return "credit_card"
    if "loan" in p or "debt" in p or "mortgage" in p or "lease" in p:
        return "consumer_loan"
    if "money transfer" in p or "checking" in p or "savings" in p or "virtual currency" in p:
        return "payments"
    return "other"


def load_texts(lang: str, n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """``n`` real complaints as (language, text, product), drawn without repeats while the
    data lasts: Chinese (黑猫投诉 train + dev), English (CFPB narratives) or mixed (2:1)."""
    from deploy.cli.backlog import zh_product

    if lang not in ("zh", "en", "mixed"):
        raise ValueError(f"lang must be zh, en or mixed, not {lang!r}")
    n_en = n if lang == "en" else (n // 3 if lang == "mixed" else 0)
    out: list[tuple[str, str, str]] = []
    if n - n_en:
        zh = _zh_texts()
        picks = rng.sample(zh, k=min(n - n_en, len(zh)))
        out += [("zh-CN", t, zh_product(t)) for t in picks]
    if n_en:
        en = _en_rows()
        out += [("en", r["complaint_what_happened"], en_product(r.get("product") or ""))
                for r in rng.sample(en, k=min(n_en, len(en)))]
    rng.shuffle(out)
    return out


def _weight(moment: datetime) -> float:
    """How likely a complaint is at a Beijing moment: fewer at night and at weekends."""
    local = to_local(moment, REGULATORY_TIMEZONE)
    hour = local.hour
    by_hour = 0.1 if hour < 7 else 0.6 if hour < 9 else 1.0 if hour < 12 else 0.7 if hour < 14 else \
        1.0 if hour < 18 else 0.8 if hour < 22 else 0.3
    return by_hour * (1.0 if local.weekday() < 5 else 0.55)


def arrival_times(start: datetime, span: timedelta, n: int, rng: random.Random) -> list[datetime]:
    """``n`` arrival instants in [start, start + span), sorted, following the day's and the
    week's rhythm (rejection sampling on ``_weight``)."""
    out: list[datetime] = []
    seconds = span.total_seconds()
    while len(out) < n:
        moment = start + timedelta(seconds=rng.uniform(0, seconds))
        if rng.random() < _weight(moment):
            out.append(moment)
    return sorted(out)


def amount_disputed(rng: random.Random) -> Decimal:
    """A realistic disputed amount: log-normal around a few hundred yuan, 20–50,000."""
    return min(max(Decimal(str(round(rng.lognormvariate(6.0, 1.1), 2))), Decimal("20")), Decimal("50000"))


def submission(run: str, i: int, when: datetime, lang: str, text: str, product: str,
               rng: random.Random) -> dict[str, Any]:
    """A complaint as a channel sends it; the customer is synthetic (fake name, phone, id)."""
    channels, weights = zip(*CHANNELS, strict=True)
    customer_id = f"SIM{run}{i:05d}"
    return {
        "channel_complaint_id": f"sim-{run}-{i:05d}",
        "channel": rng.choices(channels, weights)[0],
        "received_at": when.isoformat(),
        "customer": {
            "customer_id": customer_id,
            "name": rng.choice(["张伟", "王芳", "李娜", "刘洋", "陈静"]) if lang == "zh-CN" else
            rng.choice(["Alex Doe", "Sam Lee", "Jordan Smith"]),
            "phone": f"139{rng.randrange(10**8):08d}",
        },
        "product": product,
        "text": text,
        "amount_disputed": str(amount_disputed(rng)),
    }


# ------------------------------------------------------------------ the agent's offer


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def _draw(rng: random.Random, low: Decimal, high: Decimal) -> Decimal:
    if high <= low:
        return low.quantize(CENT)
    return (low + (high - low) * Decimal(str(rng.random()))).quantize(Decimal("1"), ROUND_DOWN).quantize(CENT)


def build_offer(ws: dict[str, Any], rng: random.Random, *, policy: Policy, today: datetime,
                better_than: Decimal | None = None, final: bool = False) -> tuple[list[dict[str, Any]], Decimal]:
    """The terms an agent offers for a workspace (negotiation's ``GET /cases/{id}``) and the
    money they move: one term per item of investigation's remedy range, each amount inside
    the item's range and, in all, inside the agent's authority. ``better_than``: a later,
    final offer moves the money up from that amount toward the range's top."""
    remedy = ws.get("remedy_range") or {}
    items = remedy.get("items") or []
    zh = ws.get("language", "zh-CN") == "zh-CN"
    budget = min(_money(remedy.get("max") or 0), AGENT_MAX_CONCESSION)
    floor = min(_money(remedy.get("min") or 0), budget)
    if better_than is not None:
        floor = min(max(floor, better_than * Decimal("1.25")), budget)
    target = _draw(rng, floor, budget) if better_than is None else floor
    terms: list[dict[str, Any]] = []
    moved = Decimal("0")
    for item in items:
        kind = item.get("kind")
        if kind in ("refund", "compensation") and target - moved > 0:
            high = min(_money(item.get("max") or target), target - moved)
            amount = max(min(_money(item.get("min") or 0), high), high if better_than is not None else _draw(
                rng, min(_money(item.get("min") or 0), high), high))
            if amount > 0:
                terms.append({"kind": kind, "amount": str(amount),
                              "reason": "按调查结论" if zh else "per the investigation's finding"})
                moved += amount
        elif kind == "fee_waiver" and target - moved > 0:
            fee = _money(item.get("max") or ws.get("amount_disputed") or 0)
            if fee <= 0:
                continue
            pct_high = min(Decimal(item.get("pct_max") or 100), AGENT_MAX_WAIVER_PCT)
            pct_low = min(Decimal(item.get("pct_min") or 0), pct_high)
            pct = pct_high if better_than is not None else _draw(rng, pct_low, pct_high).quantize(Decimal("1"))
            while pct > 0 and moved + fee * pct / 100 > target:
                pct -= 5
            if pct > 0:
                terms.append({"kind": "fee_waiver", "fee": "late_fee", "fee_amount": str(fee),
                              "waiver_pct": str(pct.quantize(Decimal("1")))})
                moved += (fee * pct / 100).quantize(CENT)
        elif kind == "credit_report_correction":
            terms.append({"kind": kind, "description": "申请更正征信记录" if zh else "ask the bureau to correct the record"})
    if ws.get("product") in ("consumer_loan", "instalment") and rng.random() < policy.instalment_share:
        owed = max(_money(ws.get("amount_disputed") or 0), Decimal("600"))
        first = to_local(today, REGULATORY_TIMEZONE).date() + timedelta(days=10)
        terms.append({"kind": "instalment_plan", "amount": str(owed), "months": 3, "first_due_date": first.isoformat()})
    terms.append({"kind": "apology", "text": "对给您带来的不便深表歉意。" if zh else
                  "We apologise for the trouble this caused."})
    return terms, moved


# ------------------------------------------------------------------ the run


@dataclass
class SimCase:
    """One complaint's way through the month, as the simulator sees it."""

    i: int
    body: dict[str, Any]
    via: str
    at: datetime
    step: str = "arrive"
    case_id: str | None = None
    offer_id: str | None = None
    offer_final: bool = False
    offered: Decimal = Decimal("0")
    done_steps: set[str] = field(default_factory=set)
    missed: set[str] = field(default_factory=set)
    called_back: bool = False
    attempts: int = 0

    def __lt__(self, other: SimCase) -> bool:
        return (self.at, self.i) < (other.at, other.i)


@dataclass
class Tally:
    """What the simulated people did (the report's numbers come from the APIs, not from here)."""

    submitted: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class Apis:
    """The services' APIs with the right development token for each role."""

    def __init__(self, urls: dict[str, str], client: Any) -> None:
        from shared.auth import mint
        from shared.settings import CommonSettings

        self.urls, self.client = urls, client
        auth = CommonSettings().auth
        self._mint = lambda **kw: mint(auth, ttl=timedelta(hours=12), **kw)
        self._tokens: dict[tuple[str, ...], str] = {}

    def token(self, role: str, sub: str, **identity: str) -> str:
        key = (role, sub, *sorted(identity.items()))  # type: ignore[arg-type]
        if key not in self._tokens:
            self._tokens[key] = self._mint(role=role, sub=sub, **identity)
        return self._tokens[key]

    async def call(self, method: str, service: str, path: str, token: str, body: Any = None,
                   params: dict[str, Any] | None = None) -> tuple[int, Any]:
        try:
            resp = await self.client.request(method, self.urls[service] + path, json=body, params=params,
                                             headers={"Authorization": f"Bearer {token}"})
        except Exception as exc:  # noqa: BLE001 - a refused connection is an answer too
            return 0, {"detail": f"{type(exc).__name__}: {exc}"}
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, None


class Simulation:
    """The month: a queue of what each complaint waits for, run against the services."""

    def __init__(self, *, clock: Clock, apis: Apis, complaints: list[SimCase], end: datetime,
                 policy: Policy, rng: random.Random, send_kafka: Callable[[str, bytes], Any],
                 concurrency: int = 8) -> None:
        self.clock, self.apis, self.end, self.policy, self.rng = clock, apis, end, policy, rng
        self.send_kafka = send_kafka
        self.queue: list[SimCase] = list(complaints)
        heapq.heapify(self.queue)
        self.tally = Tally()
        self.limit = asyncio.Semaphore(concurrency)
        self.stopping = asyncio.Event()
        self.cases = complaints

    async def setup(self) -> None:
        """Put the simulated agents in negotiation's directory (idempotent PUTs)."""
        lead = self.apis.token("team_lead", "sim-lead", team=TEAM)
        for agent in AGENTS:
            status, answer = await self.apis.call("PUT", "negotiation", f"/agents/{agent}", lead, {
                "agent_id": agent, "team": TEAM, "role": "agent", "categories": CATEGORIES,
                "languages": ["zh-CN", "en"], "max_load": 500})
            if status != 200:
                raise CliError(f"negotiation refused the simulated agent {agent}: HTTP {status} {answer} — "
                               "is `parley services up` done, and PARLEY_AUTH_SECRET the services'?")

    async def run(self, on_tick: Callable[[datetime, Tally], None]) -> None:
        """Run until the simulated end (or ``stopping``); ``on_tick`` after each round."""
        running: set[asyncio.Task[None]] = set()
        while not self.stopping.is_set():
            now = self.clock.now()
            if now >= self.end:
                break
            while self.queue and self.queue[0].at <= now:
                case = heapq.heappop(self.queue)
                task = asyncio.create_task(self._act(case))
                running.add(task)
                task.add_done_callback(running.discard)
            on_tick(now, self.tally)
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=0.2)
            except TimeoutError:
                pass
        if running:
            await asyncio.wait(running, timeout=30)

    async def _act(self, case: SimCase) -> None:
        async with self.limit:
            try:
                after = await getattr(self, f"_{case.step}")(case)
            except Exception as exc:  # noqa: BLE001 - one case's trouble must not stop the month
                self.tally.errors[f"{case.step}: {type(exc).__name__}"] += 1
                after = timedelta(hours=6)
        if after is not None and not self.stopping.is_set():
            case.at = self.clock.now() + after
            if case.at < self.end:
                heapq.heappush(self.queue, case)

    def _note(self, what: str) -> None:
        self.tally.actions[what] += 1

    # --- the complaint arrives; its case is found

    async def _arrive(self, case: SimCase) -> timedelta | None:
        case.body["received_at"] = self.clock.now().isoformat()  # the moment it is really sent
        if case.via == "http":
            status, answer = await self.apis.call("POST", "intake", "/complaints",
                                                  self.apis.token("channel", "sim-channel"), case.body)
            if status != 202:
                self.tally.errors[f"intake POST {status}"] += 1
                return None
            case.case_id = answer.get("case_id")
        else:
            await self.send_kafka(case.body["channel_complaint_id"],
                                  json.dumps(case.body, ensure_ascii=False).encode())
        self.tally.submitted += 1
        self._note(f"submitted via {case.via}")
        case.step = "open" if case.case_id else "locate"
        return timedelta(hours=2)

    async def _locate(self, case: SimCase) -> timedelta | None:
        b = case.body
        status, answer = await self.apis.call("GET", "intake", f"/complaints/{b['channel']}/{b['channel_complaint_id']}",
                                              self.apis.token("channel", "sim-channel"))
        if status == 200:
            case.case_id, case.step = answer["case_id"], "open"
            return timedelta(hours=1)
        return self._retry(case, timedelta(hours=2))

    def _retry(self, case: SimCase, after: timedelta, most: int = 60) -> timedelta | None:
        case.attempts += 1
        if case.attempts > most:
            self.tally.errors[f"gave up at {case.step}"] += 1
            return None
        return after

    async def _workspace(self, case: SimCase) -> dict[str, Any] | None:
        status, ws = await self.apis.call("GET", "negotiation", f"/cases/{case.case_id}",
                                          self.apis.token("manager", "sim-manager"))
        return ws if status == 200 else None

    async def _still_open(self, case: SimCase) -> tuple[dict[str, Any] | None, timedelta | None]:
        """The workspace if the case is open for negotiation; else when to look again."""
        ws = await self._workspace(case)
        if ws is None:
            return None, self._retry(case, timedelta(hours=6))
        if ws["status"] != "open":
            case.step = "open"
            return None, timedelta(hours=1)
        return ws, None

    # --- negotiation

    async def _open(self, case: SimCase) -> timedelta | None:
        ws = await self._workspace(case)
        if ws is None or ws["status"] == "awaiting_investigation":
            return self._retry(case, timedelta(hours=4))
        case.attempts = 0
        if ws["status"] == "escalated":
            self._note("escalated by negotiation")
            return None
        if ws["status"] == "agreed":
            case.step = "execution"
            return timedelta(hours=6)
        case.step = "offer"
        return self.policy.delay(self.rng, self.policy.agent_days)

    async def _offer(self, case: SimCase, *, final: bool = False, responds_to: str | None = None) -> timedelta | None:
        ws, later = await self._still_open(case)
        if ws is None:
            return later
        terms, moved = build_offer(ws, self.rng, policy=self.policy, today=self.clock.now(),
                                   better_than=case.offered if final else None, final=final)
        agent = ws.get("assigned_agent")
        token = (self.apis.token("agent", agent, team=ws["team"]) if agent
                 else self.apis.token("manager", "sim-manager"))
        zh = ws.get("language", "zh-CN") == "zh-CN"
        body = {"terms": terms, "final": final, "expected_version": ws["version"],
                "reason": ("按调查结论在建议范围内提出方案" if zh else "within the investigation's suggested range")
                + ("（最终方案）" if final and zh else " (final offer)" if final else ""),
                "justification": "在授权与调查建议范围内" if zh else "within authority and the suggested range"}
        if responds_to:
            body["responds_to"] = responds_to
        status, made = await self.apis.call("POST", "negotiation", f"/cases/{case.case_id}/offers", token, body)
        if status == 409:
            return self._retry(case, timedelta(hours=1))
        if status != 201:
            self.tally.errors[f"offer {status}"] += 1
            return self._retry(case, timedelta(days=1), most=3)
        offer = made["offer"]
        if offer["status"] == "pending_approval":
            status, made = await self.apis.call(
                "POST", "negotiation", f"/cases/{case.case_id}/offers/{offer['offer_id']}/approval",
                self.apis.token("manager", "sim-manager"),
                {"decision": "approve", "expected_version": made["version"]})
            self._note("offer approved by a manager")
        case.offer_id, case.offer_final, case.offered = offer["offer_id"], final, moved
        self._note("final offer" if final else "offer")
        case.step, case.attempts = "answer", 0
        return self.policy.delay(self.rng, self.policy.customer_days)

    async def _answer(self, case: SimCase) -> timedelta | None:
        ws, later = await self._still_open(case)
        if ws is None:
            return later
        choice = self.policy.answer(self.rng, final=case.offer_final)
        customer = ws["customer_id"]
        token = self.apis.token("customer", customer, customer_id=customer)
        base = f"/customer/cases/{case.case_id}/offers/{case.offer_id}"
        zh = ws.get("language", "zh-CN") == "zh-CN"
        self._note(f"customer {choice}s" if choice != "silent" else "customer stays silent")
        if choice == "silent":
            case.step = "silent"
            return timedelta(days=2)
        if choice == "accept":
            status, _ = await self.apis.call("POST", "negotiation", f"{base}/accept", token,
                                             {"expected_version": ws["version"]})
            case.step = "execution" if status == 200 else "open"
            return timedelta(hours=6)
        if choice == "counter":
            status, made = await self.apis.call("POST", "negotiation", f"{base}/counter", token, {
                "message": "希望能多退一些" if zh else "I would like a larger refund.", "expected_version": ws["version"]})
            counter = made.get("offer", {}).get("offer_id") if status == 201 else None
            case.step = "reply"
            case.offer_id = counter
            return self.policy.delay(self.rng, self.policy.agent_days)
        status, _ = await self.apis.call("POST", "negotiation", f"{base}/reject", token, {
            "reason": "不接受" if zh else "Not acceptable.", "escalate_to": "mediation",
            "expected_version": ws["version"]})
        if case.offer_final:
            return None  # the final offer rejected: the case goes to mediation
        case.step = "reply"
        case.offer_id = None
        return self.policy.delay(self.rng, self.policy.agent_days)

    async def _reply(self, case: SimCase) -> timedelta | None:
        return await self._offer(case, final=True, responds_to=case.offer_id)

    async def _silent(self, case: SimCase) -> timedelta | None:
        ws = await self._workspace(case)
        if ws is None or ws["status"] == "open":
            return timedelta(days=2)  # waiting for negotiation's near-deadline escalation
        case.step = "open"
        return timedelta(hours=1)

    # --- follow-up

    async def _execution(self, case: SimCase) -> timedelta | None:
        ops = self.apis.token("ops", "sim-ops")
        status, ex = await self.apis.call("GET", "followup", f"/executions/{case.case_id}", ops)
        if status != 200:
            return self._retry(case, timedelta(hours=6))
        if ex["status"] in ("executed", "followed_up") and not case.called_back:
            case.step = "callback"
            return self.policy.delay(self.rng, self.policy.callback_days)
        if ex["status"] == "reopened":  # an unhappy callback: negotiation opens a new round
            case.step = "open"
            return self._retry(case, timedelta(hours=12))
        if ex["status"] not in ("executing",):
            return None
        now = self.clock.now()
        waiting: list[datetime] = []
        for step in ex["steps"]:
            sid = step["step_id"]
            if step.get("done_at") or step.get("completed_at") or sid in case.done_steps or sid in case.missed:
                continue
            due = datetime.fromisoformat(step["due_at"])
            if step["owner"] == "customer":
                if due > now:
                    waiting.append(due)
                    continue
                if self.rng.random() < self.policy.missed_instalment:
                    case.missed.add(sid)
                    self._note("instalment missed")
                    continue
                what = "instalment paid"
            else:
                what = "step carried out"
            status, ex = await self.apis.call("POST", "followup", f"/executions/{case.case_id}/steps/{sid}/complete",
                                              ops, {"evidence_ref": f"SIM-{sid}"})
            if status == 200:
                case.done_steps.add(sid)
                self._note(what)
        if ex.get("status") in ("executed", "followed_up"):
            case.step = "callback"
            return self.policy.delay(self.rng, self.policy.callback_days)
        if waiting:
            return max(min(waiting) - now, timedelta(hours=1))
        if case.missed and all(s["step_id"] in case.done_steps | case.missed for s in ex["steps"]):
            return None  # only missed instalments left: follow-up's overdue timer has them
        return self.policy.delay(self.rng, self.policy.ops_days)

    async def _callback(self, case: SimCase) -> timedelta | None:
        unhappy = self.rng.random() < self.policy.unhappy_callback
        zh = case.body["text"] and not case.body["text"].isascii()
        body = ({"satisfied": False, "score": self.rng.choice([1, 2]), "comment": "仍不满意" if zh else "still unhappy"}
                if unhappy else
                {"satisfied": True, "score": self.rng.choice([4, 5, 5]), "comment": "满意" if zh else "satisfied"})
        status, _ = await self.apis.call("POST", "followup", f"/executions/{case.case_id}/callback",
                                         self.apis.token("agent", "sim-cs", team=TEAM), body)
        if status == 409:
            return self._retry(case, timedelta(hours=12), most=10)
        self._note("unhappy callback" if unhappy else "satisfied callback")
        if unhappy:  # follow-up reopens the case: another agent negotiates a new round
            case.step, case.attempts, case.done_steps, case.missed = "open", 0, set(), set()
            return timedelta(hours=12)
        case.called_back = True
        return None


def plan(*, n: int, lang: str, start: datetime, days: float, seed: int, run: str,
         policy: Policy) -> list[SimCase]:
    """The month's complaints: real texts, arrival times over the first two thirds of the
    span (so most deadlines fall inside it), and which go through Kafka or HTTP."""
    rng = random.Random(seed)
    texts = load_texts(lang, n, rng)
    times = arrival_times(start, timedelta(days=days * 2 / 3), len(texts), rng)
    return [SimCase(i=i, body=submission(run, i, when, lang_, text, product, rng),
                    via="http" if rng.random() < policy.http_share else "kafka", at=when)
            for i, ((lang_, text, product), when) in enumerate(zip(texts, times, strict=True))]
