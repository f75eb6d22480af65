"""Plain words for customers and documents, zh-CN first and English second."""

from __future__ import annotations

from services.negotiation.models import Offer, Workspace
from shared.contracts.terms import (
    Apology,
    Compensation,
    CreditReportCorrection,
    Deferral,
    FeeWaiver,
    InstalmentPlanTerm,
    InterestReduction,
    Refund,
)

FEE_ZH = {"late_fee": "滞纳金", "penalty_interest": "罚息"}
FEE_EN = {"late_fee": "late fee", "penalty_interest": "penalty interest"}
METHOD_ZH = {"annuity": "等额本息", "equal_principal": "等额本金"}
METHOD_EN = {"annuity": "equal instalments", "equal_principal": "equal principal"}
TARGET_ZH = {"mediation": "调解", "litigation": "诉讼"}


def waived(term: FeeWaiver) -> object:
    """Return the amount a waiver waives."""
    from services.negotiation.plan import money

    if term.waiver_amount is not None:
        return term.waiver_amount
    return money(term.fee_amount * (term.waiver_pct or 0) / 100)


def describe_term(term: object, lang: str) -> str:
    """Describe one term of an offer in one sentence."""
    zh = lang != "en"
    if isinstance(term, FeeWaiver):
        pct = f"（{term.waiver_pct}%）" if zh and term.waiver_pct is not None else (
            f" ({term.waiver_pct}%)" if term.waiver_pct is not None else "")
        if zh:
            return f"减免{FEE_ZH[term.fee]} {waived(term)} 元{pct}，原金额 {term.fee_amount} 元。"
        return f"Waive CNY {waived(term)}{pct} of the {FEE_EN[term.fee]} of CNY {term.fee_amount}."
    if isinstance(term, InterestReduction):
        if zh:
            return (f"年利率由 {term.from_rate_pct}% 降至 {term.to_rate_pct}%，"
                    f"共少收利息 {term.reduction_amount} 元。")
        return (f"Lower the annual rate from {term.from_rate_pct}% to {term.to_rate_pct}%, "
                f"CNY {term.reduction_amount} less interest in total.")
    if isinstance(term, InstalmentPlanTerm):
        first = term.schedule[0] if term.schedule else None
        last = term.schedule[-1] if term.schedule else None
        if zh:
            text = (f"{term.amount} 元分 {term.months} 期偿还（{METHOD_ZH[term.method]}，"
                    f"年利率 {term.annual_rate_pct}%），首期 {term.first_due_date} 到期")
            if first and last:
                text += (f"，首期应还 {first.payment} 元，末期 {last.due_date} 应还 {last.payment} 元，"
                         f"利息合计 {term.total_interest} 元，总计 {term.total_payable} 元")
            return text + "。"
        text = (f"Repay CNY {term.amount} in {term.months} monthly instalments "
                f"({METHOD_EN[term.method]}, {term.annual_rate_pct}% a year), first due {term.first_due_date}")
        if first and last:
            text += (f"; first payment CNY {first.payment}, last CNY {last.payment} due {last.due_date}; "
                     f"interest CNY {term.total_interest}, total CNY {term.total_payable}")
        return text + "."
    if isinstance(term, Deferral):
        amount_zh = f" {term.amount} 元" if term.amount is not None else ""
        amount_en = f" of CNY {term.amount}" if term.amount is not None else ""
        return (f"延期还款{amount_zh} {term.months} 个月。" if zh
                else f"Defer repayment{amount_en} by {term.months} months.")
    if isinstance(term, Refund):
        return f"退款 {term.amount} 元。" if zh else f"Refund CNY {term.amount}."
    if isinstance(term, Compensation):
        return f"补偿 {term.amount} 元。" if zh else f"Pay compensation of CNY {term.amount}."
    if isinstance(term, CreditReportCorrection):
        return (f"向征信机构申请更正：{term.description}" if zh
                else f"Ask the credit bureau to correct: {term.description}")
    if isinstance(term, Apology):
        return f"书面致歉与说明：{term.text}" if zh else f"Written apology and explanation: {term.text}"
    return str(term)


def describe_offer(offer: Offer, lang: str) -> str:
    """Describe an offer's terms, one per line."""
    return "\n".join(f"{i}. {describe_term(t, lang)}" for i, t in enumerate(offer.terms, 1))


def summary(offer: Offer) -> str:
    """A one-line bilingual summary for events (no personal data)."""
    kinds = ", ".join(t.kind for t in offer.terms)
    return f"{kinds}; concession CNY {offer.concession}"


STATUS = {
    "awaiting_investigation": ("正在核实您的投诉。", "We are still looking into your complaint."),
    "open": ("正在与您协商解决方案。", "We are working out a solution with you."),
    "agreed": ("双方已达成和解协议。", "We have both agreed a settlement."),
    "escalated": ("协商未能达成一致，案件已转交{target}。", "We could not agree; the case has gone to {target}."),
}


def customer_status(ws: Workspace, lang: str) -> tuple[str, str]:
    """Return the plain-language status and next step for the customer."""
    zh = lang != "en"
    target = ws.escalation.target if ws.escalation else "mediation"
    status = STATUS[ws.status][0 if zh else 1].format(target=TARGET_ZH[target] if zh else target)
    open_offers = [o for o in ws.offers if o.status == "open" and o.party == "institution"]
    if ws.status == "agreed":
        step = ("我们将按协议执行，并告知您每一步的进展。" if zh
                else "We will carry out the agreement and tell you about each step.")
    elif ws.status == "escalated":
        step = ("调解或诉讼机构会联系您；您的案件材料已整理成卷宗。" if zh
                else "The mediator or court will contact you; your case file has been prepared.")
    elif open_offers:
        step = ("请查看我们的方案，您可以接受、拒绝或提出您的意见。" if zh
                else "Please look at our offer: you can accept it, reject it or tell us what you would like instead.")
    elif ws.status == "open":
        step = ("我们的专员正在准备方案，如有需要会与您联系。" if zh
                else "Our agent is preparing an offer and will contact you if anything is needed.")
    else:
        step = "核实完成后我们会与您联系。" if zh else "We will contact you once the review is done."
    return status, step


def customer_timeline(ws: Workspace, lang: str) -> list[tuple[object, str]]:
    """Return (time, plain sentence) steps the customer may see, oldest first."""
    zh = lang != "en"
    steps: list[tuple[object, str]] = []
    if ws.opened_at:
        steps.append((ws.opened_at, "我们已完成核实，开始与您协商。" if zh
                      else "We finished looking into your complaint and started talking with you."))
    for o in ws.offers:
        for h in o.history:
            if o.party == "institution" and h.status == "open":
                text = (f"我们向您提出了方案 {o.offer_id}{'（最终方案）' if o.final else ''}。" if zh
                        else f"We made you offer {o.offer_id}{' (our final offer)' if o.final else ''}.")
            elif o.party == "institution" and h.status == "withdrawn" and any(
                    x.status == "open" for x in o.history):
                text = f"方案 {o.offer_id} 已撤回。" if zh else f"Offer {o.offer_id} was withdrawn."
            elif h.status in ("accepted", "rejected", "countered") and o.party == "institution":
                text = {
                    "accepted": (f"您接受了方案 {o.offer_id}。", f"You accepted offer {o.offer_id}."),
                    "rejected": (f"您拒绝了方案 {o.offer_id}。", f"You rejected offer {o.offer_id}."),
                    "countered": (f"您对方案 {o.offer_id} 提出了意见。", f"You answered offer {o.offer_id} with your own proposal."),
                }[h.status][0 if zh else 1]
            else:
                continue
            steps.append((h.at, text))
    if ws.escalation:
        target = TARGET_ZH[ws.escalation.target] if zh else ws.escalation.target
        steps.append((ws.escalation.at, f"案件已转交{target}。" if zh else f"The case went to {target}."))
    return sorted(steps, key=lambda s: s[0])  # type: ignore[arg-type, return-value]
