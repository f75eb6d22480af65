"""What the customer sees of a case: status, next step, deadline, open offers, messages and
timeline in plain words (zh-CN first, English on request). Nothing internal leaks: notes,
offers awaiting approval and staff names of the approval chain stay out.
"""

from __future__ import annotations

from services.negotiation.api.schemas import (
    CustomerCaseView,
    CustomerMessage,
    CustomerOffer,
    CustomerStep,
)
from services.negotiation.models import Workspace
from services.negotiation.texts import customer_status, customer_timeline, describe_offer
from shared.clock import beijing_day


def customer_view(ws: Workspace, lang: str) -> CustomerCaseView:
    """Build the customer's view of a case in their language."""
    status_text, next_step = customer_status(ws, lang)
    zh = lang != "en"
    if ws.deadline_at is None:
        deadline_text = ""
    else:
        # the regulatory day is Beijing's (shared.clock): a deadline stored in UTC (24:00 Beijing
        # is 16:00 UTC) must not show the day before
        day = beijing_day(ws.deadline_at)
        if zh:
            deadline_text = f"我们最迟将于 {day.year}年{day.month}月{day.day}日（北京时间）当日24时前给您答复。"
        else:
            deadline_text = f"We will give you our answer by the end of {day.day} {day:%B %Y} (24:00 Beijing time)."
    offers = [
        CustomerOffer(
            offer_id=o.offer_id, final=o.final, description=describe_offer(o, lang),
            concession=o.concession, terms=o.terms,
            comparison=(o.fairness.explanation_zh if zh else o.fairness.explanation_en)
            if o.fairness and o.fairness.comparable else None,
        )
        for o in ws.offers if o.party == "institution" and o.status == "open"
    ]
    messages = [
        CustomerMessage(at=m.at, sender="you" if m.author.role == "customer" else "us", body=m.body)
        for m in ws.messages if m.direction != "note"
    ]
    return CustomerCaseView(
        case_id=ws.case_id, case_number=ws.case_number, language="en" if not zh else "zh-CN",
        status=ws.status, status_text=status_text, next_step=next_step, deadline_at=ws.deadline_at,
        deadline_text=deadline_text, open_offers=offers, messages=messages,
        timeline=[CustomerStep(at=at, text=text) for at, text in customer_timeline(ws, lang)],
        agreement_id=ws.agreement.agreement_id if ws.agreement else None, version=ws.version,
    )
