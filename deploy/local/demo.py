"""The pipeline demo: real complaints in, and what each stage made of them, printed.

Run by ``make demo`` after the stack and the services are up. Submits a handful of real
complaints (Chinese 黑猫投诉 and English CFPB narratives from ``../shared/data``) through the
intake API, then follows each case through the stages that are running and prints what a
person on the complaint desk would see.
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
PRODUCTS = ["credit_card", "consumer_loan", "instalment", "payments", "consumer_loan"]
CHANNELS = ["app", "hotline", "web", "regulator_transfer", "social_media"]


def _call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.demo")
    parser.add_argument("--zh", type=int, default=4, help="Chinese complaints to submit")
    parser.add_argument("--en", type=int, default=2, help="English complaints to submit")
    args = parser.parse_args(argv)
    run = datetime.now(UTC).strftime("%H%M%S")

    print("== 1. 投诉受理 intake: submitting real complaints through POST /complaints")
    cases = []
    for body in complaints(args.zh, args.en, run):
        status, answer = _call("POST", f"{INTAKE}/complaints", body)
        if status != 202:
            print(f"   ! {body['channel_complaint_id']}: HTTP {status} {answer}")
            continue
        cases.append((body, answer))
        print(
            f"   {body['channel']:<18} → {answer.get('case_number') or '(registering)'}  "
            f"{answer['status']:<10} {body['text'][:40].replace(chr(10), ' ')}…"
        )
    print("\n   A hostile submission is refused with the field named:")
    status, answer = _call("POST", f"{INTAKE}/complaints", {"channel": "app", "text": {"$where": "1"}})
    print(f"   HTTP {status}: {json.dumps(answer.get('errors', answer), ensure_ascii=False)[:300]}")

    print("\n== 2. What the complaint desk sees (intake case view, personal data masked)")
    for body, answer in cases:
        ref = answer.get("case_id")
        if not ref:
            for _ in range(50):
                s, reg = _call("GET", f"{INTAKE}{answer['status_url']}")
                if s == 200:
                    ref = reg["case_id"]
                    break
                time.sleep(0.2)
        if not ref:
            print(f"   {body['channel_complaint_id']}: not registered yet")
            continue
        s, case = _call("GET", f"{INTAKE}/cases/{ref}")
        if s == 200:
            print(
                f"   {case['case_number']}  priority={case['priority']:<7} deadline={case['deadline_at'][:10]}  "
                f"customer={case['customer_name_masked']} {case['customer_phone_masked']} "
                f"{case['customer_id_number_masked']}  reasons={case['priority_reasons']}"
            )

    print("\n== 3. Supervision: every stream and deadline")
    time.sleep(2)
    s, overview = _call("GET", f"{SUPERVISION}/overview")
    print(f"   {json.dumps(overview, ensure_ascii=False)}" if s == 200 else f"   supervision not answering ({s})")
    if cases and cases[0][1].get("case_id"):
        s, watch = _call("GET", f"{SUPERVISION}/cases/{cases[0][1]['case_id']}")
        if s == 200:
            print(f"   {watch.get('case_number')}: status={watch['status']} timeline="
                  f"{[e['event_type'] for e in watch['timeline']]}")
    print("\nServices keep running: `make status`, `make stop`. APIs: "
          f"{INTAKE}/docs, {SUPERVISION}/docs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
