"""What the customer sees of a case, start to end, in plain words (zh-CN first, English on
request): registered and being investigated (with the deadline and where to reach us) →
findings with what was checked and the rule behind them → offers as readable terms (what
changes, how much, by when; a replaced offer says so) → the agreement (both parties named,
Beijing time) → each agreed term carried out, each instalment paid or missed → closed, or
escalated with where to and what happens next; every change of the deadline with its reason.

Nothing internal leaks: notes, offers awaiting approval, staff names, investigation's remedy
range, the fairness rules staff work to, raw terms and offer ids as text stay out.
"""

from __future__ import annotations

from services.negotiation.api.schemas import (
    CustomerCaseView,
    CustomerMessage,
    CustomerOffer,
    CustomerStep,
)
from services.negotiation.models import Workspace
from services.negotiation.settings import Settings
from services.negotiation.texts import (
    agreement_text,
    comparison_text,
    customer_status,
    customer_timeline,
    deadline_change_text,
    deadline_sentence,
    earlier_shown,
    findings_text,
    offer_text,
    stage,
)


def customer_view(ws: Workspace, lang: str, settings: Settings | None = None) -> CustomerCaseView:
    """Build the customer's view of a case in their language."""
    settings = settings or Settings()
    status_text, next_step = customer_status(ws, lang)
    zh = lang != "en"
    where = stage(ws)
    if ws.deadline_at is None or where in ("agreed", "executed", "closed", "escalated"):
        deadline_text = ""
    else:
        # the regulatory day is Beijing's (shared.clock): a deadline stored in UTC (24:00 Beijing
        # is 16:00 UTC) must not show the day before
        when = deadline_sentence(ws.deadline_at, lang)
        deadline_text = (f"我们最迟将于 {when}给您答复。" if zh
                         else f"We will give you our answer by {when}.")
    offers = [
        CustomerOffer(
            offer_id=o.offer_id, final=o.final, description=offer_text(ws, o, lang),
            concession=o.concession, comparison=comparison_text(o, lang),
            replaces_earlier=earlier_shown(ws, o) is not None,
        )
        for o in ws.offers if o.party == "institution" and o.status == "open"
    ]
    messages = [
        CustomerMessage(at=m.at, sender="you" if m.author.role == "customer" else "us", body=m.body)
        for m in ws.messages if m.direction != "note"
    ]
    institution = settings.institution_name_zh if zh else settings.institution_name_en
    return CustomerCaseView(
        case_id=ws.case_id, case_number=ws.case_number, language="en" if not zh else "zh-CN",
        status=ws.status, stage=where, status_text=status_text, next_step=next_step,
        deadline_at=ws.deadline_at, deadline_text=deadline_text,
        deadline_changes=[deadline_change_text(c, lang) for c in ws.deadline_changes],
        contact=settings.contact_zh if zh else settings.contact_en,
        findings=findings_text(ws, lang), open_offers=offers, messages=messages,
        timeline=[CustomerStep(at=at, text=text) for at, text in customer_timeline(ws, lang)],
        agreement_id=ws.agreement.agreement_id if ws.agreement else None,
        agreement_text=agreement_text(ws, lang, institution=institution) or None, version=ws.version,
    )
