"""Fairness (公平性): compare an offer with what similar past cases settled for.

**Measure.** An offer's *relief ratio* is its monetary concession (waivers, interest
forgone, refunds, compensation) as a percentage of the amount in dispute (or, when the
case names no amount, of the fees the offer waives). Instalment plans, deferrals, apologies
and credit-report corrections add no concession: they change when money is paid, not how
much.

**Peers.** Past settlements are kept per case in the ``settlement_refs`` collection with
their category, amount band and hardship flag. The comparison takes the settlements that
share all three; when fewer than ``fairness_min_peers`` do, it widens step by step
(drop hardship → drop the band → category only → everything), and says which keys the
peers share, so nobody is compared with a handful of cases.

**Range.** The usual range is the 10th–90th percentile of the peers' relief ratios (linear
interpolation), widened by one percentage point so ties at 0% or 100% do not flag identical
offers. Median and the median absolute deviation (MAD) are reported as the robust centre and
spread. An offer below P10 (possibly too little for the customer) or above P90 (more than
similar customers got — unequal treatment or leakage) is *flagged*, and the API refuses it
(422) without a written justification, which is kept with the offer and in the dossier.

**Reference set.** A new database is seeded deterministically (fixed random seed): how
likely each category is to end with relief is taken from the CFPB sample's company
responses ("Closed with monetary/non-monetary relief" vs "Closed with explanation"), mapped
onto Parley's categories and used relatively (see ``relief_propensity``); settlements with
relief draw their ratio from Beta distributions
(mean ≈ 38% without hardship, ≈ 62% with hardship, smaller for larger amounts), settlements
without relief a 0–5% goodwill gesture. Each agreed settlement is added to the set, so the
comparison learns from the institution's own practice.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from shared.contracts.common import Category

log = logging.getLogger(__name__)

#: Amount bands in CNY: [lower, upper).
BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("lt1k", 0, 1_000),
    ("1k-5k", 1_000, 5_000),
    ("5k-20k", 5_000, 20_000),
    ("20k-100k", 20_000, 100_000),
    ("ge100k", 100_000, None),
)
BAND_LABEL_ZH = {
    "lt1k": "1000 元以下", "1k-5k": "1000–5000 元", "5k-20k": "5000–2 万元",
    "20k-100k": "2 万–10 万元", "ge100k": "10 万元以上", "unknown": "金额未知",
}
BAND_LABEL_EN = {
    "lt1k": "under CNY 1,000", "1k-5k": "CNY 1,000–5,000", "5k-20k": "CNY 5,000–20,000",
    "20k-100k": "CNY 20,000–100,000", "ge100k": "CNY 100,000 or more", "unknown": "amount unknown",
}
CATEGORY_ZH = {
    "collection_conduct": "催收行为类", "other": "其他类", "contract_terms": "合同条款类",
    "pricing_fees": "定价收费类", "customer_service": "客户服务类", "marketing": "营销宣传类",
}
TOLERANCE = Decimal("1")
SEED = 20231130
_BAND_FACTOR = {"lt1k": 1.0, "1k-5k": 0.95, "5k-20k": 0.85, "20k-100k": 0.75, "ge100k": 0.6}
#: Relief share per category when the CFPB sample is not available.
FALLBACK_RELIEF = dict.fromkeys((c.value for c in Category), 0.42)


def amount_band(amount: Decimal | None) -> str:
    """Return the amount band of a disputed amount."""
    if amount is None:
        return "unknown"
    for name, low, high in BANDS:
        if amount >= low and (high is None or amount < high):
            return name
    return BANDS[-1][0]


def relief_pct(concession: Decimal, basis: Decimal | None) -> Decimal | None:
    """Return concession as a percentage of basis (2 dp), or None when there is no basis."""
    if basis is None or basis <= 0:
        return None
    return min(concession / basis * 100, Decimal("100")).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )


def _q(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Cell:
    """The similarity keys of a case."""

    category: str
    band: str
    hardship: bool

    def widening(self) -> list[dict[str, Any]]:
        """Return the peer filters to try, narrowest first."""
        return [
            {"category": self.category, "band": self.band, "hardship": self.hardship},
            {"category": self.category, "band": self.band},
            {"category": self.category},
            {},
        ]


def describe_scope(scope: dict[str, Any]) -> tuple[list[str], str, str]:
    """Return the scope keys and their plain-language description in zh-CN and English."""
    zh, en = [], []
    if "category" in scope:
        zh.append(CATEGORY_ZH.get(scope["category"], scope["category"]))
        en.append(str(scope["category"]).replace("_", " "))
    if "band" in scope:
        zh.append("争议金额 " + BAND_LABEL_ZH.get(scope["band"], scope["band"]))
        en.append("amount " + BAND_LABEL_EN.get(scope["band"], scope["band"]))
    if "hardship" in scope:
        zh.append("困难客户" if scope["hardship"] else "非困难客户")
        en.append("hardship" if scope["hardship"] else "no hardship")
    return list(scope), "、".join(zh) or "全部类别", ", ".join(en) or "all categories"


def compare(
    offer_pct: Decimal | None, peer_pcts: list[Decimal], scope: dict[str, Any]
) -> dict[str, Any]:
    """Compare an offer's relief ratio with its peers; return ``FairnessComparison`` fields."""
    keys, scope_zh, scope_en = describe_scope(scope)
    if offer_pct is None:
        return {
            "comparable": False, "peers": len(peer_pcts), "scope": keys,
            "explanation_zh": "本方案没有可与类似案件比较的金额（案件未载明争议金额，方案也不含减免金额）。",
            "explanation_en": "This offer has no amount to compare with similar cases (the case names no disputed amount and the offer waives no fee).",
        }
    if len(peer_pcts) < 2:
        return {
            "comparable": False, "offer_pct": offer_pct, "peers": len(peer_pcts), "scope": keys,
            "explanation_zh": "类似案件太少，无法比较。",
            "explanation_en": "Too few similar cases to compare with.",
        }
    values = sorted(float(p) for p in peer_pcts)
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    p10, p90 = _q(deciles[0]), _q(deciles[-1])
    median = _q(statistics.median(values))
    mad = _q(statistics.median(abs(v - float(median)) for v in values))
    if offer_pct < p10 - TOLERANCE:
        position = "below"
    elif offer_pct > p90 + TOLERANCE:
        position = "above"
    else:
        position = "within"
    zh = (
        f"在 {len(values)} 个类似的已和解案件中（{scope_zh}），减免比例的中位数为 {median}%，"
        f"80% 的案件在 {p10}%–{p90}% 之间。本方案减免 {offer_pct}%，"
    )
    en = (
        f"Among {len(values)} similar settled cases ({scope_en}), the median relief was "
        f"{median}% and 80% of cases got between {p10}% and {p90}%. This offer gives "
        f"{offer_pct}%, "
    )
    zh += {
        "within": "处于常见范围内。",
        "below": "低于常见范围，需要书面说明理由。",
        "above": "高于常见范围，需要书面说明理由。",
    }[position]
    en += {
        "within": "which is within the usual range.",
        "below": "which is below the usual range and needs a written justification.",
        "above": "which is above the usual range and needs a written justification.",
    }[position]
    return {
        "comparable": True, "offer_pct": offer_pct, "peers": len(values), "scope": keys,
        "p10": p10, "median": median, "p90": p90, "mad": mad, "position": position,
        "flagged": position != "within", "explanation_zh": zh, "explanation_en": en,
    }


# ------------------------------------------------------------------ reference set


def _cfpb_category(row: dict[str, Any]) -> str:
    product = (row.get("product") or "").lower()
    issue = f"{row.get('issue') or ''} {row.get('sub_issue') or ''}".lower()
    if "debt collection" in product or any(
        w in issue for w in ("collect", "communication tactics", "threaten", "false statements")
    ):
        return "collection_conduct"
    if any(w in issue for w in ("fee", "interest", "charge", "apr", "billing")):
        return "pricing_fees"
    if any(w in issue for w in ("advertis", "marketing", "confusing or misleading", "offer")):
        return "marketing"
    if any(w in issue for w in ("term", "contract", "payoff", "closing", "opening", "managing")):
        return "contract_terms"
    if any(w in issue for w in ("customer service", "trouble", "getting a", "problem with a company")):
        return "customer_service"
    return "other"


def cfpb_relief_rates(path: Path) -> dict[str, float]:
    """Return, per Parley category, the share of closed CFPB complaints that got relief."""
    closed: Counter[str] = Counter()
    relief: Counter[str] = Counter()
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            response = row.get("company_response") or ""
            if not response.startswith("Closed"):
                continue
            cat = _cfpb_category(row)
            closed[cat] += 1
            if "relief" in response:
                relief[cat] += 1
    return {
        c.value: (relief[c.value] / closed[c.value]) if closed[c.value] >= 20
        else FALLBACK_RELIEF[c.value]
        for c in Category
    }


#: Share of *settled* negotiations that end with some monetary relief, across categories.
RELIEF_ANCHOR = 0.7


def relief_propensity(rates: dict[str, float], category: str, hardship: bool) -> float:
    """Return the chance that a settled case of ``category`` got monetary relief.

    The CFPB shares are low in absolute terms (most US complaints close "with explanation"
    before anything is negotiated), so they are used *relatively*: a category's share divided
    by the mean share, anchored so the average settled case has a ``RELIEF_ANCHOR`` chance of
    relief, plus 0.15 for hardship, clamped to [0.3, 0.95].
    """
    mean = sum(rates.values()) / len(rates) if rates else 0.0
    base = RELIEF_ANCHOR * (rates.get(category, mean) / mean) if mean > 0 else RELIEF_ANCHOR
    return min(0.95, max(0.3, base + (0.15 if hardship else 0.0)))


def seed_reference(rates: dict[str, float], per_cell: int, seed: int = SEED) -> Iterable[dict[str, Any]]:
    """Yield the deterministic seeded reference settlements (one dict per settlement)."""
    rng = random.Random(seed)
    for category in (c.value for c in Category):
        for band, _low, _high in BANDS:
            for hardship in (False, True):
                for i in range(per_cell):
                    if rng.random() < relief_propensity(rates, category, hardship):
                        a, b = (4.0, 2.5) if hardship else (2.5, 4.0)
                        pct = rng.betavariate(a, b) * 100 * _BAND_FACTOR[band]
                    else:
                        pct = rng.uniform(0, 5)
                    yield {
                        "ref_id": f"seed-{category}-{band}-{int(hardship)}-{i}",
                        "source": "seed",
                        "category": category,
                        "band": band,
                        "hardship": hardship,
                        "relief_bp": round(pct * 100),
                    }
