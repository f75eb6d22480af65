"""Authority limits and the approval chain."""

from __future__ import annotations

from decimal import Decimal

from services.negotiation.authority import OfferMetrics, exceeded, may_approve, required_role
from services.negotiation.settings import RoleLimit, default_authority

LIMITS = default_authority()


def m(concession: str = "0", pct: str = "0", plan: int = 0, deferral: int = 0) -> OfferMetrics:
    return OfferMetrics(Decimal(concession), Decimal(pct), plan, deferral)


def test_required_role_climbs_with_each_dimension() -> None:
    assert required_role(LIMITS, m("2000", "50", 24, 3)) == "agent"
    assert required_role(LIMITS, m("2000.01")) == "team_lead"
    assert required_role(LIMITS, m(pct="50.01")) == "team_lead"
    assert required_role(LIMITS, m(plan=36)) == "team_lead"
    assert required_role(LIMITS, m(plan=37)) == "manager"
    assert required_role(LIMITS, m(deferral=7)) == "manager"
    assert required_role(LIMITS, m("50000.01")) == "committee"
    assert required_role(LIMITS, m("10", "10", 60, 13)) == "committee"


def test_exceeded_names_every_limit_crossed() -> None:
    over = exceeded(LIMITS["agent"], m("2500", "60", 30, 1))
    assert len(over) == 3
    assert any("concession" in o for o in over) and any("waiver" in o for o in over)
    assert exceeded(LIMITS["committee"], m("99999999", "100", 60, 24)) == []


def test_only_a_high_enough_role_may_approve() -> None:
    assert may_approve("team_lead", "team_lead")
    assert may_approve("manager", "team_lead")
    assert not may_approve("agent", "team_lead")
    assert not may_approve("team_lead", "manager")
    assert not may_approve("auditor", "agent")
    assert not may_approve("customer", "agent")
    assert may_approve("committee", "committee")


def test_limits_are_configurable() -> None:
    strict = dict(LIMITS, agent=RoleLimit(max_concession=Decimal("100")))
    assert required_role(strict, m("150")) == "team_lead"
    assert required_role(strict, m("100", "90", 60, 24)) == "agent"  # other dimensions unlimited
