"""Reading checkable claims and the customer's own figures out of complaint texts."""

from __future__ import annotations

from decimal import Decimal

from services.investigation.claims import read_claims, zh_number


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
