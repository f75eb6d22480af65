"""The pipeline demo: real complaints in, and what each stage made of them, printed.

Run by ``make demo`` after the stack and the services are up. Submits a handful of real
complaints (Chinese 黑猫投诉 and English CFPB narratives from ``../shared/data``) through the
intake API, then follows each case through the stages that are running and prints what a
person on the complaint desk would see. Every call carries a development token of the role
docs/security.md gives it, minted in-process with ``shared.auth`` from the same
``PARLEY_AUTH_*`` settings the services read.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("PARLEY_SHARED_DATA", REPO.parent / "shared" / "data"))
INTAKE = f"http://127.0.0.1:{os.environ.get('PARLEY_INTAKE_PORT', '8001')}"
SUPERVISION = f"http://127.0.0.1:{os.environ.get('PARLEY_SUPERVISION_PORT', '8005')}"
NEGOTIATION = f"http://127.0.0.1:{os.environ.get('PARLEY_NEGOTIATION_PORT', '8003')}"
FOLLOWUP = f"http://127.0.0.1:{os.environ.get('PARLEY_FOLLOWUP_PORT', '8004')}"
CATEGORIES = ["collection_conduct", "other", "contract_terms", "pricing_fees", "customer_service", "marketing"]
PRODUCTS = ["credit_card", "consumer_loan", "instalment", "payments", "consumer_loan"]
CHANNELS = ["app", "hotline", "web", "regulator_transfer", "social_media"]


def token(role: str, sub: str, **identity: str) -> str:
    """A development bearer token (as ``python -m shared.auth token`` mints it)."""
    from shared.auth import mint
    from shared.settings import CommonSettings

    return mint(CommonSettings().auth, sub=sub, role=role, **identity)


def _call(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except OSError as exc:
        return 0, {"detail": str(exc)}


def complaints(n_zh: int, n_en: int, run: str) -> list[dict[str, Any]]:
    """Real complaint texts with synthetic (fake) customers."""
    texts: list[str] = []
    with (DATA / "complaints-zh" / "dev.csv").open(encoding="utf-8") as f:
        texts += [row[0] for row, _ in zip(csv.reader(f), range(n_zh), strict=False)]
    with gzip.open(DATA / "cfpb-2023-sample.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            narrative = json.loads(line).get("complaint_what_happened") or ""
            if 200 < len(narrative) < 3000:
                texts.append(narrative)
            if len(texts) >= n_zh + n_en:
                break
    out = []
    for i, text in enumerate(texts):
        out.append(
            {
                "channel_complaint_id": f"demo-{run}-{i:03d}",
                "channel": CHANNELS[i % len(CHANNELS)],
                "received_at": datetime.now(UTC).isoformat(),
                "customer": {
                    "customer_id": f"C{run}{i:03d}",
                    "name": "张三" if i % 2 == 0 else "Alex Doe",
                    "phone": f"1381234{i:04d}",
                    "id_number": f"11010119900307{i:03d}4",
                },
                "product": PRODUCTS[i % len(PRODUCTS)],
                "text": text,
                "amount_disputed": f"{(i + 1) * 137.5:.2f}",
            }
        )
    return out


def _wait(fetch: Any, ok: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    result = fetch()
    while not ok(result) and time.monotonic() < deadline:
        time.sleep(0.5)
        result = fetch()
    return result if ok(result) else None


def directory() -> None:
    """Put one demo agent, who takes every category in both languages, in the directory."""
    lead = token("team_lead", "lead-demo", team="demo")
    status, answer = _call("PUT", f"{NEGOTIATION}/agents/agent-demo", {
        "agent_id": "agent-demo", "team": "demo", "role": "agent", "categories": CATEGORIES,
        "languages": ["zh-CN", "en"], "max_load": 500,
    }, token=lead)
    if status != 200:
        print(f"   ! could not set up the demo agent: HTTP {status} {answer}")


def story(cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Investigation's findings for every case, then one case negotiated, settled and closed."""
    lead = token("manager", "manager-demo", team="demo")
    ops = token("ops", "ops-demo")

    print("\n== 3. 初步调查与核实 investigation (as the negotiation workspace shows it)")
    opened = []
    for body, answer in cases:
        case_id = answer.get("case_id")
        if not case_id:
            continue
        got = _wait(lambda cid=case_id: _call("GET", f"{NEGOTIATION}/cases/{cid}", token=lead),
                    lambda r: r[0] == 200 and r[1].get("status") == "open")
        if not got:
            print(f"   {answer.get('case_number')}: investigation not finished yet")
            continue
        ws = got[1]
        opened.append((body, ws))
        remedy = (ws.get("remedy_range") or {}).get("text_zh") or "-"
        print(f"   {ws['case_number']}  {ws['category']:<18} {ws['finding']:<22} "
              f"evidence={len(ws['evidence'])}  agent={ws['assigned_agent']}  remedy: {remedy[:60]}")
    if not opened:
        return
    body, ws = opened[0]
    case_id = ws["case_id"]
    customer = token("customer", body["customer"]["customer_id"], customer_id=body["customer"]["customer_id"])
    print(f"\n== 4. 协商与方案 negotiation of {ws['case_number']}")
    offer = {
        "terms": [
            {"kind": "fee_waiver", "fee": "late_fee", "fee_amount": "100.00", "waiver_pct": "50"},
            {"kind": "apology", "text": "对给您带来的不便深表歉意。"},
        ],
        "reason": "演示：部分减免并致歉", "justification": "演示数据：按政策手册部分减免",
        "expected_version": ws["version"],
    }
    actor = token("agent", ws["assigned_agent"], team=ws["team"]) if ws.get("assigned_agent") else lead
    status, made = _call("POST", f"{NEGOTIATION}/cases/{case_id}/offers", offer, token=actor)
    if status != 201:
        print(f"   offer refused: HTTP {status} {made}")
        return
    offer_id = made["offer"]["offer_id"]
    print(f"   agent offered {offer_id}: {made['offer'].get('summary_zh') or made['offer'].get('concession')}")
    status, view = _call("GET", f"{NEGOTIATION}/customer/cases/{case_id}", token=customer)
    if status == 200:
        print(f"   customer sees: {view.get('status_text') or view.get('status')} — next: {view.get('next_step')}")
        for o in view.get("open_offers", []):
            print(f"     offer: {o.get('description')}")
    status, accepted = _call("POST", f"{NEGOTIATION}/customer/cases/{case_id}/offers/{offer_id}/accept", {},
                             token=customer)
    print(f"   customer accepted → HTTP {status}; settlement.agreed published")

    print(f"\n== 5. 施行与回访 follow-up of {ws['case_number']}")
    got = _wait(lambda: _call("GET", f"{FOLLOWUP}/executions/{case_id}", token=ops), lambda r: r[0] == 200)
    if not got:
        print("   no execution plan yet")
        return
    for step in got[1]["steps"]:
        if step["owner"] == "institution":
            status, ex = _call("POST", f"{FOLLOWUP}/executions/{case_id}/steps/{step['step_id']}/complete",
                               {"evidence_ref": f"DEMO-{step['step_id']}"}, token=ops)
            print(f"   done by ops-demo (the token's subject): {step['title_zh']} / {step['title_en']} "
                  f"→ {ex.get('status')}")
    status, ex = _call("POST", f"{FOLLOWUP}/executions/{case_id}/callback",
                       {"satisfied": True, "score": 5, "comment": "满意"}, token=token("agent", "cs-demo", team="demo"))
    print(f"   callback by cs-demo: satisfied 5/5 → case {ex.get('status')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.demo")
    parser.add_argument("--zh", type=int, default=4, help="Chinese complaints to submit")
    parser.add_argument("--en", type=int, default=2, help="English complaints to submit")
    args = parser.parse_args(argv)
    run = datetime.now(UTC).strftime("%H%M%S")

    channel, desk, ops = token("channel", "demo-channel"), token("agent", "desk-demo", team="demo"), token("ops", "ops-demo")
    directory()
    print("== 1. 投诉受理 intake: submitting real complaints through POST /complaints (a channel's token)")
    status, answer = _call("GET", f"{INTAKE}/cases")
    print(f"   without a token every API but /health answers HTTP {status}: {answer.get('detail')}")
    cases = []
    for body in complaints(args.zh, args.en, run):
        status, answer = _call("POST", f"{INTAKE}/complaints", body, token=channel)
        if status != 202:
            print(f"   ! {body['channel_complaint_id']}: HTTP {status} {answer}")
            continue
        cases.append((body, answer))
        print(
            f"   {body['channel']:<18} → {answer.get('case_number') or '(registering)'}  "
            f"{answer['status']:<10} {body['text'][:40].replace(chr(10), ' ')}…"
        )
    print("\n   A hostile submission is refused with the field named:")
    status, answer = _call("POST", f"{INTAKE}/complaints", {"channel": "app", "text": {"$where": "1"}}, token=channel)
    print(f"   HTTP {status}: {json.dumps(answer.get('errors', answer), ensure_ascii=False)[:300]}")

    print("\n== 2. What the complaint desk sees (intake case view, personal data masked)")
    for body, answer in cases:
        ref = answer.get("case_id")
        if not ref:
            for _ in range(50):
                s, reg = _call("GET", f"{INTAKE}{answer['status_url']}", token=channel)
                if s == 200:
                    ref = reg["case_id"]
                    break
                time.sleep(0.2)
        if not ref:
            print(f"   {body['channel_complaint_id']}: not registered yet")
            continue
        s, case = _call("GET", f"{INTAKE}/cases/{ref}", token=desk)
        if s == 200:
            print(
                f"   {case['case_number']}  priority={case['priority']:<7} deadline={case['deadline_at'][:10]}  "
                f"customer={case['customer_name_masked']} {case['customer_phone_masked']} "
                f"{case['customer_id_number_masked']}  reasons={case['priority_reasons']}"
            )

    story(cases)

    print("\n== 6. Supervision: every stream and deadline")
    time.sleep(2)
    s, overview = _call("GET", f"{SUPERVISION}/overview", token=ops)
    print(f"   {json.dumps(overview, ensure_ascii=False)}" if s == 200 else f"   supervision not answering ({s})")
    if cases and cases[0][1].get("case_id"):
        s, watch = _call("GET", f"{SUPERVISION}/cases/{cases[0][1]['case_id']}", token=ops)
        if s == 200:
            print(f"   {watch.get('case_number')}: status={watch['status']} timeline="
                  f"{[e['event_type'] for e in watch['timeline']]}")
    print("\nServices keep running: `make status`, `make stop`. APIs (OpenAPI at /docs): "
          f"{INTAKE} {NEGOTIATION} {FOLLOWUP} {SUPERVISION}; tokens: python -m shared.auth token "
          "--role ROLE --sub SUB [--team T] [--customer-id C] (roles per route: docs/security.md)")
    print(f"Operations console: {SUPERVISION}/console (sign in with: python -m shared.auth token --role ops --sub me)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
