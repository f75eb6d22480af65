"""Real complaints from ``../shared/data`` as channel submissions (customers synthesised).

Chinese 黑猫投诉 complaints (``complaints-zh/train.csv``) and English CFPB narratives
(``cfpb-2023-sample.jsonl.gz``) are read in file order, so every run sends the same
complaints; customers, phones and ID numbers are derived from the row number.
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

from services.intake.models import MAX_TEXT_CHARS
from services.intake.rules import detect_language
from shared.contracts.common import Language
from tests.support.servers import REPO

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟"]
ZH_CHANNELS = ["app", "hotline", "web", "social_media", "letter", "in_person", "regulator_transfer"]
CFPB_CHANNELS = {"Web": "web", "Phone": "hotline", "Referral": "regulator_transfer",
                 "Postal mail": "letter", "Fax": "letter", "Email": "web"}


def data_dir() -> Path:
    """Where the shared data lives (``PARLEY_SHARED_DATA`` overrides ``../shared/data``)."""
    return Path(os.environ.get("PARLEY_SHARED_DATA") or REPO.parent / "shared" / "data")


def _digits(seed: str, n: int) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:n]


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


def _customer(i: int) -> dict[str, Any]:
    seed = f"customer-{i}"
    return {
        "customer_id": f"RC{i:06d}",
        "name": SURNAMES[i % len(SURNAMES)] + GIVEN[i % len(GIVEN)],
        "phone": "13" + _digits(seed + "p", 9).rjust(9, "0"),
        "id_number": "4403" + "05" + "19" + _digits(seed + "y", 2) + "0" + str(1 + i % 9)
        + str(10 + i % 18) + _digits(seed + "s", 3).rjust(3, "0") + "X",
    }


def real_complaints(zh: int, en: int, *, prefix: str = "R") -> list[dict[str, Any]]:
    """``zh`` Chinese and ``en`` English real complaints, interleaved, as submissions."""
    base = data_dir()
    zh_texts: list[str] = []
    with (base / "complaints-zh" / "train.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            text = (row[0] if row else "").strip()
            if text and len(text) <= MAX_TEXT_CHARS and detect_language(text) is Language.ZH_CN:
                zh_texts.append(text)
            if len(zh_texts) >= zh:
                break
    en_rows: list[dict[str, Any]] = []
    with gzip.open(base / "cfpb-2023-sample.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            text = (row.get("complaint_what_happened") or "").strip()
            if text and len(text) <= MAX_TEXT_CHARS and detect_language(text) is Language.EN:
                en_rows.append(row)
            if len(en_rows) >= en:
                break
    if len(zh_texts) < zh or len(en_rows) < en:
        raise RuntimeError("not enough real complaints in the shared data")
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    zi = ei = 0
    for i in range(zh + en):
        take_en = ei < en and (zi >= zh or (i * en) // (zh + en) != ((i + 1) * en) // (zh + en))
        received = (now - timedelta(hours=1 + i % 240, minutes=i % 60)).isoformat()
        common = {
            "channel_complaint_id": f"{prefix}{i:06d}", "received_at": received,
            "customer": _customer(i), "amount_disputed": f"{(i * 7919) % 90000}.{i % 100:02d}",
        }
        if take_en:
            row = en_rows[ei]
            ei += 1
            out.append({**common, "channel": CFPB_CHANNELS.get(row.get("submitted_via"), "app"),
                        "product": _en_product(row.get("product") or ""),
                        "text": row["complaint_what_happened"].strip(),
                        "demand": (row.get("issue") or "")[:200]})
        else:
            text = zh_texts[zi]
            zi += 1
            out.append({**common, "channel": ZH_CHANNELS[i % len(ZH_CHANNELS)],
                        "product": _zh_product(text), "text": text})
    return out
