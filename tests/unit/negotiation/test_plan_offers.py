"""Plans in offers: the first due date, no zero instalments, and a plan above the disputed
balance plus stated costs waits for a manager."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.negotiation import handlers
from services.negotiation.errors import Unprocessable
from services.negotiation.models import InstalmentPlanTerm
from shared.clock import beijing_day
from tests.unit.negotiation.fakes import FakeRepo
from tests.unit.negotiation.test_handlers import A1, LEAD, MANAGER, NOW, offer, opened

TODAY = beijing_day(NOW)  # 2026-12-01, Beijing


def plan(amount: str, months: int = 6, first: date | None = None, costs: str = "0") -> InstalmentPlanTerm:
    return InstalmentPlanTerm(amount=Decimal(amount), months=months, first_due_date=first or TODAY + timedelta(days=30),
                              stated_costs=Decimal(costs))


@pytest.mark.parametrize("first", [TODAY, TODAY - timedelta(days=1), date(2027, 12, 2), date(9999, 12, 31)])
async def test_a_first_due_date_not_in_the_coming_year_is_refused_naming_the_field(first: date) -> None:
    repo = FakeRepo()
    await opened(repo)
    with pytest.raises(Unprocessable) as err:
        await offer(repo, [plan("1000", first=first)], justification="hardship plan for the customer")
    assert err.value.field == "terms.0.first_due_date"


async def test_a_term_with_zero_instalments_is_shortened_and_the_offer_says_so() -> None:
    repo = FakeRepo()
    await opened(repo)
    terms = handlers.prepare_terms([plan("1.00", months=36)], today=TODAY)
    [term] = terms
    assert term.months == 34 and len(term.schedule) == 34 and all(r.payment > 0 for r in term.schedule)
    assert term.note is not None and "34" in term.note and "shortened" in term.note
    # a term that needs no change carries no note
    [fine] = handlers.prepare_terms([plan("1200", months=12)], today=TODAY)
    assert fine.months == 12 and fine.note is None


async def test_a_plan_above_the_disputed_balance_plus_costs_needs_a_manager() -> None:
    repo = FakeRepo()
    await opened(repo, amount="1280")  # the disputed balance
    just = "the customer asked to fold the whole card balance into the plan"
    ws, within = await offer(repo, [plan("1280")], justification=just)
    assert within.status == "open" and within.authority.within_authority
    # stated costs raise the ceiling
    ws, with_costs = await offer(repo, [plan("1500", costs="220")], justification=just)
    assert with_costs.status == "open"
    # 12,000 on a 1,280 dispute: above every agent's and team lead's authority, a manager approves
    ws, big = await offer(repo, [plan("12000", months=12)], justification=just)
    assert big.status == "pending_approval" and big.authority.required_role == "manager"
    assert any("exceeds the disputed balance plus stated costs by 10720.00 CNY" in x for x in big.authority.exceeded)
    with pytest.raises(Exception, match="needs approval by a manager"):
        await handlers.decide_approval(ws.case_id, big.offer_id, approve=True, note="ok", p=LEAD,
                                       expected_version=None, repo=repo, now=NOW)
    _, approved = await handlers.decide_approval(ws.case_id, big.offer_id, approve=True, note="checked the balance",
                                                 p=MANAGER, expected_version=None, repo=repo, now=NOW)
    assert approved.status == "open"
    assert A1.role == "agent"


def test_offer_metrics_measure_the_plan_against_the_balance_only_when_it_is_known() -> None:
    terms = handlers.prepare_terms([plan("3000", costs="500")], today=TODAY)
    assert handlers.offer_metrics(terms, Decimal("2000")).plan_over_balance == Decimal("500.00")
    assert handlers.offer_metrics(terms, Decimal("2500")).plan_over_balance == Decimal("0.00")
    assert handlers.offer_metrics(terms, None).plan_over_balance == Decimal("0.00")
