"""The pure rules of negotiation's flows: state in, new state and events out, no storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.negotiation.handlers.answers import agreed, settlement_reference
from services.negotiation.handlers.escalation import escalated
from services.negotiation.handlers.offers import approval_decided, offer_made
from services.negotiation.handlers.opening import findings, is_news, opened, revised, started
from services.negotiation.models import (
    Acceptance,
    Actor,
    AgentProfile,
    AuthorityCheck,
    FairnessComparison,
    Offer,
    Workspace,
)
from services.negotiation.settings import Settings
from shared.clock import due
from shared.contracts.common import Category
from shared.contracts.envelope import Envelope
from shared.contracts.investigation import InvestigationCompleted, RemedyRange
from shared.contracts.terms import FeeWaiver

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BEIJING = ZoneInfo("Asia/Shanghai")
SETTINGS = Settings(environment="test")
AGENT = Actor(sub="a1", role="agent")
CUSTOMER = Actor(sub="c1", role="customer")


def completed(revision: int = 1, **extra: object) -> Envelope[InvestigationCompleted]:
    return Envelope.wrap(InvestigationCompleted(case_number="TS-1", category=Category.PRICING_FEES,
                                                finding="substantiated", revision=revision, **extra),  # type: ignore[arg-type]
                         case_id="K1", producer="investigation")


def open_case() -> Workspace:
    ws = Workspace(case_id="K1", case_number="TS-1", status="open", customer_id="c1",
                   amount_disputed=Decimal("3000.00"), category="pricing_fees", version=4)
    offer = Offer(offer_id="OF-001", party="institution", status="open",
                  terms=[FeeWaiver(fee="late_fee", fee_amount=Decimal("1000"), waiver_pct=Decimal("30"))],
                  concession=Decimal("300.00"), proposed_by=AGENT, created_at=NOW)
    return ws.model_copy(update={"offers": [offer]})


def test_opening_sets_findings_and_owes_one_started_event() -> None:
    env = completed(remedy_range=RemedyRange(min=Decimal("0"), max=Decimal("500")))
    blank = Workspace(case_id="K1")
    assert is_news(blank, env)
    ws = opened(blank, env, settings=SETTINGS, now=NOW)
    assert ws.status == "open" and ws.remedy_range is not None and ws.remedy_range.max == Decimal("500")
    # no deadline came with the case: 15 days counted like the regulatory period from the day it
    # opened (1 Dec 2026 in Beijing): the end of Wed 16 Dec 2026, Beijing time (shared.clock)
    assert ws.deadline_at == due(NOW, 15).due_at == datetime(2026, 12, 16, 23, 59, 59, 999999, tzinfo=BEIJING)
    ws, events = started(ws, env, agent=AgentProfile(agent_id="a1", team="t1"), settings=SETTINGS, now=NOW)
    assert (ws.assigned_agent, ws.team) == ("a1", "t1")
    assert [e.event_type for e in events] == ["negotiation.started"] and events[0].causation_id == str(env.event_id)
    assert blank.status == "awaiting_investigation", "the input is not changed"
    assert not is_news(ws.model_copy(update=findings(ws, env)), env), "the same event again is not news"
    assert is_news(ws.model_copy(update=findings(ws, env)), completed(revision=2))
    assert revised(ws, completed(revision=2), NOW).investigation_revision == 2


def test_agreement_is_made_without_touching_the_input() -> None:
    ws = open_case()
    acceptance = Acceptance(by=CUSTOMER, at=NOW, channel="in_app")
    new, events = agreed(ws, ws.offers[0], acceptance, NOW)
    assert new.status == "agreed" and new.agreement is not None and new.offers[0].status == "accepted"
    assert ws.status == "open" and ws.offers[0].status == "open"
    assert [e.event_type for e in events] == ["settlement.agreed", "customer.notified"]
    assert settlement_reference(new) == {
        "ref_id": "case-K1", "source": "agreed", "case_id": "K1", "category": "pricing_fees",
        "band": "1k-5k", "hardship": False, "relief_bp": 1000,
    }
    assert settlement_reference(ws) is None


def test_escalation_withdraws_offers_and_makes_the_dossier() -> None:
    ws = open_case()
    new, events, dossier = escalated(ws, target="litigation", by=CUSTOMER, requested_by="customer",
                                     reason="不同意", public_base_url="https://p.example", now=NOW)
    assert new.status == "escalated" and new.offers[0].status == "withdrawn" and ws.offers[0].status == "open"
    assert [e.event_type for e in events] == ["negotiation.failed", "case.escalated", "customer.notified"]
    assert dossier.dossier_id == "DS-K1-5" == new.escalation.dossier_id  # type: ignore[union-attr]
    assert events[1].payload.dossier_url == "https://p.example/cases/K1/dossier"


def test_an_offer_beyond_authority_waits_and_owes_nothing_until_approved() -> None:
    ws = open_case()
    terms = [FeeWaiver(fee="late_fee", fee_amount=Decimal("1000"), waiver_pct=Decimal("90"))]
    fairness = FairnessComparison(comparable=False, explanation_zh="-", explanation_en="-")
    check = AuthorityCheck(proposer_role="agent", required_role="team_lead", within_authority=False,
                           exceeded=["waiver 90% > 50%"])
    new, events, offer = offer_made(ws, terms=terms, concession=Decimal("900.00"), fairness=fairness, check=check,
                                    reason="r", justification=None, final=False, responds_to=None, by=AGENT, now=NOW)
    assert offer.status == "pending_approval" and events == [] and len(ws.offers) == 1 and len(new.offers) == 2
    lead = Actor(sub="lead", role="team_lead")
    approved, owed = approval_decided(new, offer.offer_id, approve=True, note="同意", by=lead,
                                      required="team_lead", now=NOW)
    assert approved.offer(offer.offer_id).status == "open"  # type: ignore[union-attr]
    assert approved.offer("OF-001").status == "superseded"  # type: ignore[union-attr]
    assert [e.event_type for e in owed] == ["settlement.approved", "settlement.proposed", "customer.notified"]
    assert new.offer(offer.offer_id).status == "pending_approval"  # type: ignore[union-attr]


def test_intakes_deadline_replaces_the_fallback_when_registration_comes_after_the_findings() -> None:
    """Two topics, two agents: complaint.registered may arrive after investigation.completed.
    A fallback deadline the workspace gave itself must not beat intake's real one; a deadline
    investigation sent does."""
    from services.negotiation.handlers.opening import registration_recorded
    from tests.support.events import registered

    reg = registered("K1", received_at=NOW - timedelta(days=15), deadline_days=15)
    ws = opened(Workspace(case_id="K1"), completed(), settings=SETTINGS, now=NOW)  # no deadline came
    after = registration_recorded(ws, reg)
    assert after is not None and after.deadline_at == reg.payload.deadline_at  # intake's, due now
    by_investigation = NOW + timedelta(days=30)
    ws = opened(Workspace(case_id="K1"), completed(deadline_at=by_investigation), settings=SETTINGS, now=NOW)
    after = registration_recorded(ws, reg)
    assert after is not None and after.deadline_at == by_investigation
