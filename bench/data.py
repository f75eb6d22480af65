"""Real complaints from ``../shared/data`` as ``complaint.received`` messages.

The texts are real (黑猫投诉 ``complaints-zh/*.csv`` and the CFPB narratives in
``cfpb-2023-sample.jsonl.gz``, about 7,500 in all, read in file order and cycled for larger
runs); customers, phones and ID numbers are synthesised from the message number, so every
message is a new customer and becomes a new case. Each message is the channel's plain JSON
(``ComplaintSubmission``, no envelope), keyed by its ``channel_complaint_id``, exactly as a
channel publishes it.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MAX_TEXT_CHARS = 20_000  # ComplaintSubmission.text's limit

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟"]
ZH_CHANNELS = ["app", "hotline", "web", "social_media", "letter", "in_person", "regulator_transfer"]
CFPB_CHANNELS = {"Web": "web", "Phone": "hotline", "Referral": "regulator_transfer",
                 "Postal mail": "letter", "Fax": "letter", "Email": "web"}


def data_dir() -> Path:
    """Where the shared data lives (``PARLEY_SHARED_DATA`` overrides ``../shared/data``)."""
    return Path(os.environ.get("PARLEY_SHARED_DATA") or REPO.parent / "shared" / "data")


def _zh_product(text: str) -> str:
    for words, product in (
        (("信用卡", "年费", "刷卡"), "credit_card"),
        (("保险", "保单", "理赔"), "insurance"),
        (("分期",), "instalment"),
        (("理财", "基金"), "wealth"),
        (("支付", "扣款", "花呗", "转账"), "payments"),
        (("借", "贷", "还款", "逾期", "催收"), "consumer_loan"),
    ):
        if any(w in text for w in words):
            return product
    return "other"


def _en_product(product: str) -> str:
    lowered = product.lower()
    if "credit card" in lowered:
        return "credit_card"
    if "loan" in lowered or "debt" in lowered or "mortgage" in lowered:
        return "consumer_loan"
    if "money transfer" in lowered or "payment" in lowered or "checking" in lowered:
        return "payments"
    return "other"


def _digits(seed: str, n: int) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:n]


class Complaints:
    """An endless, deterministic stream of real complaints as channel messages."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.texts = self._load()
        self.issued = 0

    @staticmethod
    def _load() -> list[dict[str, str]]:
        base = data_dir()
        zh: list[dict[str, str]] = []
        for name in ("train.csv", "dev.csv"):
            with (base / "complaints-zh" / name).open(encoding="utf-8", newline="") as fh:
                for row in csv.reader(fh):
                    text = (row[0] if row else "").strip()
                    if text and len(text) <= MAX_TEXT_CHARS:
                        zh.append({"text": text, "product": _zh_product(text), "channel": "", "demand": ""})
        en: list[dict[str, str]] = []
        with gzip.open(base / "cfpb-2023-sample.jsonl.gz", "rt", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                text = (row.get("complaint_what_happened") or "").strip()
                if text and len(text) <= MAX_TEXT_CHARS:
                    en.append({
                        "text": text, "product": _en_product(row.get("product") or ""),
                        "channel": CFPB_CHANNELS.get(row.get("submitted_via"), "app"),
                        "demand": (row.get("issue") or "")[:200],
                    })
        if not zh or not en:
            raise RuntimeError(f"no complaints found in {base}")
        # interleave: zh-CN first, English second, in file order
        out: list[dict[str, str]] = []
        for i in range(max(len(zh), len(en))):
            if i < len(zh):
                out.append(zh[i])
            if i < len(en):
                out.append(en[i])
        return out

    def submission(self, i: int) -> dict[str, Any]:
        """The ``i``-th complaint of this run as a ``ComplaintSubmission`` dict."""
        row = self.texts[i % len(self.texts)]
        seed = f"{self.run}-{i}"
        received = datetime.now(UTC) - timedelta(minutes=5 + i % 600)
        doc: dict[str, Any] = {
            "channel_complaint_id": f"B{self.run}-{i:07d}",
            "channel": row["channel"] or ZH_CHANNELS[i % len(ZH_CHANNELS)],
            "received_at": received.isoformat(),
            "customer": {
                "customer_id": f"BC{self.run}-{i:07d}",
                "name": SURNAMES[i % len(SURNAMES)] + GIVEN[i % len(GIVEN)],
                "phone": "13" + _digits(seed + "p", 9).rjust(9, "0"),
                "id_number": "4403" + "05" + "19" + _digits(seed + "y", 2).rjust(2, "0") + "0"
                + str(1 + i % 9) + str(10 + i % 18) + _digits(seed + "s", 3).rjust(3, "0") + "X",
            },
            "product": row["product"],
            "text": row["text"],
            "amount_disputed": f"{(i * 7919) % 90000}.{i % 100:02d}",
        }
        if row["demand"]:
            doc["demand"] = row["demand"]
        return doc

    def take(self, n: int) -> list[tuple[str, bytes]]:
        """The next ``n`` complaints as ``(key, value bytes)``; the key is the channel's id."""
        out = []
        for i in range(self.issued, self.issued + n):
            doc = self.submission(i)
            out.append((doc["channel_complaint_id"], json.dumps(doc, ensure_ascii=False).encode()))
        self.issued += n
        return out
