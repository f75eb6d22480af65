"""Reading checkable claims and the customer's own figures out of complaint texts."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest

from services.investigation import claims, classifier, records
from services.investigation.claims import Caseless, folded, read_claims, zh_number


def test_chinese_numerals() -> None:
    assert zh_number("二十") == 20
    assert zh_number("二十三") == 23
    assert zh_number("十") == 10
    assert zh_number("几十") == 30
    assert zh_number("15") == 15
    assert zh_number("多") is None


def test_collection_claims_with_the_daily_count() -> None:
    c = read_claims("催收人员一天打了二十多个电话，凌晨还在打，还打给我的同事和家人，威胁要上门。")
    assert {"collection_frequency", "collection_off_hours", "collection_third_party", "collection_abuse"} <= set(c.codes)
    assert c.contacts_per_day == 20


def test_loan_figures_and_rate_claim() -> None:
    c = read_claims("本人于2018年借款本金70000元，分期45期，每月还款金额2786.51元，利息超过国家规定的24%。")
    assert c.has("excessive_rate")
    assert c.principal == Decimal("70000")
    assert c.term == 45
    assert c.monthly_payment == Decimal("2786.51")


def test_fee_kinds_and_unauthorised_account() -> None:
    c = read_claims("从未申请过这笔贷款，却每月被扣会员费和保险费")
    assert c.has("unauthorised_account") and c.has("unauthorised_fee")
    assert set(c.fee_kinds) == {"membership_fee", "insurance_premium"}


def test_english_complaint() -> None:
    c = read_claims("The collector calls me 15 times a day and called my employer. They also charged a late fee.")
    assert {"collection_frequency", "collection_third_party", "late_fees"} <= set(c.codes)
    assert c.contacts_per_day == 15


def test_a_complaint_without_checkable_claims() -> None:
    assert read_claims("电影票选错时间不提供退改").codes == ()


# --------------------------------------------------------------------------- Caseless (the fast path)

#: Texts where a lower-cased search of the lower-cased text would differ from IGNORECASE:
#: ſ (long s), İ / ı and K (Kelvin sign) match ASCII letters under IGNORECASE only.
TRICKY = [
    "They charged a ſervice fee and a late fee.",
    "An unauthoriſed fee was charged, without my conſent to any fee.",
    "The \u0130NTEREST RATE was too high, the APR 36 % on my loan of 5,000.",
    "The collector called me 12 TIMES A DAY and threatened me; \u212aept calling at night.",
    "HARDSHIP: lost my job and they REFUSED any plan; Credit Report wrong; Membership fee.",
    "借款5000元，年化APR 36%，每天打20个电话，Insurance 保险费, ANNUAL FEE",
    "",
]


def _caseless_patterns() -> list[tuple[str, Caseless]]:
    out = [(f"en:{code}", c) for code, c in claims._EN.items()]
    out += [(f"fee:{kind}", c) for kind, c in claims._FEE_KINDS.items()]
    out += [("per_day", claims._PER_DAY_EN), ("apr", claims._APR), ("hardship", claims._HARDSHIP)]
    out += [(f"product:{p.value}", c) for p, c in records._PRODUCT_WORDS]
    return out


def _corpus() -> list[str]:
    data = classifier.shared_data_dir()
    texts = list(TRICKY)
    dev = data / "complaints-zh" / "dev.csv"
    if dev.exists():
        texts += classifier.read_labelled_csv(dev)[0][:300]
    cfpb = data / "cfpb-2023-sample.jsonl.gz"
    if cfpb.exists():
        with gzip.open(cfpb, "rt", encoding="utf-8") as fh:
            narratives = (json.loads(line).get("complaint_what_happened") or "" for line in fh)
            texts += [t for t in narratives if t.strip()][:300]
    return texts


def test_caseless_search_finds_what_ignorecase_finds() -> None:
    """The lower-cased search of ASCII text is a shortcut: it must match exactly where the
    IGNORECASE pattern matches (same spans, same groups), on real complaints and on the
    characters IGNORECASE folds onto ASCII letters."""
    texts = _corpus()
    assert len(texts) > len(TRICKY) + 100, "the shared data is missing: the corpus is too small to mean much"
    for text in texts:
        lowered = folded(text)
        for name, caseless in _caseless_patterns():
            fast, reference = caseless.search(text, lowered), caseless.pattern.search(text)
            assert (fast and [fast.span(i) for i in range(fast.re.groups + 1)]) == (
                reference and [reference.span(i) for i in range(reference.re.groups + 1)]), (name, text[:80])


def test_the_tricky_texts_take_the_ignorecase_path() -> None:
    assert folded("Late FEE") == "late fee"
    assert folded("a ſervice fee") is None  # not ASCII: searched with IGNORECASE itself
    c = read_claims(TRICKY[0])
    assert set(c.fee_kinds) == {"service_fee"} and c.has("late_fees")
    assert read_claims(TRICKY[3]).contacts_per_day == 12


def test_caseless_refuses_a_pattern_lowering_would_change() -> None:
    with pytest.raises(ValueError, match="upper-case escape"):
        Caseless(r"late\Sfee")
    with pytest.raises(ValueError, match="cased letter"):
        Caseless("ſervice")
    assert Caseless("信用卡|credit card").search("信用卡", folded("信用卡")) is not None
