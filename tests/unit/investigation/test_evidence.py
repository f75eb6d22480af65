"""Evidence checklists per category and the outcome of each item on the records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.investigation.claims import read_claims
from services.investigation.evidence import CHECKLISTS, ITEMS, checklist, customer_requests, gather
from services.investigation.facts import Rules, compute
from services.investigation.records import CoreRecords
from shared.contracts.common import Category
from tests.unit.investigation.test_facts import AS_OF, contact, loan

NOW = datetime(2026, 10, 13, tzinfo=UTC)


@pytest.mark.parametrize("category", [c.value for c in Category])
def test_every_category_has_a_checklist_of_known_items(category: str) -> None:
    items = CHECKLISTS[category]
    assert items and all(i in ITEMS for i in items)


def test_checklists_hold_what_the_issue_names() -> None:
    assert {"fee_ledger", "fee_schedule", "contract_clause"} <= set(CHECKLISTS["pricing_fees"])
    assert {"contact_log", "third_party_contacts", "call_times"} <= set(CHECKLISTS["collection_conduct"])


def test_claims_add_their_items_first_whatever_the_category() -> None:
    claims = read_claims("每天打二十多个电话，还收了会员费")
    pairs = checklist("customer_service", claims)
    assert pairs[0] == ("contact_log", "collection_frequency")
    assert ("fee_ledger", "unauthorised_fee") in pairs
    assert ("service_log", None) in pairs
    assert len({item for item, _ in pairs}) == len(pairs)


def _outcomes(records: CoreRecords, text: str, category: str = "collection_conduct") -> dict[str, str]:
    claims = read_claims(text)
    facts = compute(records, rules=Rules(), as_of=AS_OF)
    items = gather(category, claims, records, facts, Rules(), now=NOW)
    assert all(i.source and i.retrieved_at == NOW for i in items)
    return {i.item: i.outcome for i in items}


TEXT = "催收一天打了二十多个电话，半夜还打，还打给我父母"


def test_a_contact_log_that_bears_the_customer_out() -> None:
    records = loan(unpaid_from=6)
    records.collection_contacts = [*[contact(9 + i, 9, n=i) for i in range(12)], contact(23, 10),
                                   contact(15, 11, party="third_party", disclosed=True)]
    out = _outcomes(records, TEXT)
    assert out["contact_log"] == out["call_times"] == out["third_party_contacts"] == "confirmed"
    assert out["recording_qa"] == "contradicted"


def test_a_contact_log_that_contradicts_the_customer() -> None:
    records = loan(unpaid_from=6)
    records.collection_contacts = [contact(10, 9), contact(14, 10), contact(11, 11, party="emergency_contact")]
    out = _outcomes(records, TEXT)
    assert out["contact_log"] == out["call_times"] == out["third_party_contacts"] == "contradicted"


def test_no_contact_log_is_not_found() -> None:
    out = _outcomes(loan(unpaid_from=6), TEXT)
    assert out["contact_log"] == out["call_times"] == out["third_party_contacts"] == "not_found"


def test_the_customer_is_asked_only_for_what_the_institution_does_not_hold() -> None:
    asks = customer_requests(read_claims("疫情失业没有收入，协商分期被拒绝，催收每天打电话"))
    assert len(asks) == 1 and "困难证明" in asks[0]
    assert customer_requests(read_claims("利息太高，超过24%")) == []
