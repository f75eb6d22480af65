"""Fairness: relief ratio, amount bands, the percentile comparison, the seeded reference set."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from services.negotiation import fairness as fair

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "cfpb-2023-sample.jsonl.gz"


def test_bands_and_relief_ratio() -> None:
    assert fair.amount_band(Decimal("999.99")) == "lt1k"
    assert fair.amount_band(Decimal("1000")) == "1k-5k"
    assert fair.amount_band(Decimal("100000")) == "ge100k"
    assert fair.amount_band(None) == "unknown"
    assert fair.relief_pct(Decimal("200"), Decimal("3000")) == Decimal("6.67")
    assert fair.relief_pct(Decimal("5000"), Decimal("3000")) == Decimal("100")
    assert fair.relief_pct(Decimal("5"), None) is None


def test_compare_places_offers_against_the_peer_percentiles() -> None:
    peers = [Decimal(x) for x in range(10, 60)]  # 10..59 %
    scope = {"category": "pricing_fees", "band": "1k-5k", "hardship": False}
    within = fair.compare(Decimal("30"), peers, scope)
    assert within["position"] == "within" and not within["flagged"]
    assert within["p10"] == Decimal("14.90") and within["p90"] == Decimal("54.10")
    assert within["median"] == Decimal("34.50") and within["peers"] == 50
    assert "定价收费类" in within["explanation_zh"] and "pricing fees" in within["explanation_en"]
    above = fair.compare(Decimal("80"), peers, scope)
    assert above["position"] == "above" and above["flagged"]
    assert "需要书面说明理由" in above["explanation_zh"]
    below = fair.compare(Decimal("5"), peers, scope)
    assert below["position"] == "below" and below["flagged"]
    # the one-point tolerance: just outside P90 is not flagged
    assert not fair.compare(Decimal("55"), peers, scope)["flagged"]


def test_compare_without_amount_or_peers_is_not_comparable() -> None:
    assert fair.compare(None, [Decimal(1)] * 30, {})["comparable"] is False
    assert fair.compare(Decimal(5), [Decimal(1)], {})["comparable"] is False


def test_widening_goes_from_narrow_to_everything() -> None:
    cell = fair.Cell("marketing", "lt1k", True)
    scopes = cell.widening()
    assert scopes[0] == {"category": "marketing", "band": "lt1k", "hardship": True}
    assert scopes[-1] == {}
    assert [len(s) for s in scopes] == [3, 2, 1, 0]


def test_seed_is_deterministic_and_hardship_gets_more() -> None:
    rates = dict.fromkeys(fair.FALLBACK_RELIEF, 0.6)
    a = list(fair.seed_reference(rates, 40))
    b = list(fair.seed_reference(rates, 40))
    assert a == b and len(a) == 6 * 5 * 2 * 40
    assert len({d["ref_id"] for d in a}) == len(a)

    def median(hardship: bool) -> float:
        values = sorted(d["relief_bp"] for d in a if d["hardship"] is hardship)
        return values[len(values) // 2]

    assert median(True) > median(False)


@pytest.mark.skipif(not DATA.exists(), reason="the shared CFPB sample is not on this machine")
def test_cfpb_rates_are_shares_per_category() -> None:
    rates = fair.cfpb_relief_rates(DATA)
    assert set(rates) == set(fair.FALLBACK_RELIEF)
    assert all(0 <= r <= 1 for r in rates.values())
    assert len(set(rates.values())) > 1, "categories should differ"


def test_relief_propensity_is_relative_and_clamped() -> None:
    rates = {"a": 0.1, "b": 0.3}
    assert fair.relief_propensity(rates, "a", False) == pytest.approx(0.35)
    assert fair.relief_propensity(rates, "b", False) == pytest.approx(0.95)  # 1.05 clamped
    assert fair.relief_propensity(rates, "a", True) == pytest.approx(0.5)
    assert fair.relief_propensity({"a": 0.01, "b": 0.99}, "a", False) == 0.3
