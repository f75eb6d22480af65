"""Plain words for customers and documents, zh-CN first and English second."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.negotiation.models import Offer, StepProgress, Workspace
from shared.contracts.common import Category
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
from shared.logging import redact

FEE_ZH = {"late_fee": "滞纳金", "penalty_interest": "罚息"}
FEE_EN = {"late_fee": "late fee", "penalty_interest": "penalty interest"}
METHOD_ZH = {"annuity": "等额本息", "equal_principal": "等额本金"}
METHOD_EN = {"annuity": "equal instalments", "equal_principal": "equal principal"}
TARGET_ZH = {"mediation": "调解", "litigation": "诉讼"}
BEIJING = ZoneInfo("Asia/Shanghai")


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



# ------------------------------------------------------------------ the customer's view

#: Per category: what we checked, and the rule or contract clause the finding rests on
#: (zh-CN, English). General and correct on purpose: the law or rule by name, no article
#: numbers; the contract is "your contract". Polite and plain: read to the customer as is.
CATEGORY_EXPLANATIONS: dict[str, tuple[str, str, str, str]] = {
    Category.COLLECTION_CONDUCT.value: (
        "我们查看了与您相关的催收通话、短信记录，包括联系的时间、次数、对象和用语。",
        "催收应当文明、合规：《消费者权益保护法》保护您的人格尊严和个人信息，金融监管规定要求不得在不适当的时间频繁联系、"
        "不得骚扰与债务无关的人、不得使用威胁或侮辱性的语言；同时我们也对照了合同约定的联系方式。",
        "We looked at the collection calls and text messages about your account: when, how often, to whom and in what words.",
        "Collection must be courteous and lawful: the Consumer Rights Protection Law protects your dignity and your "
        "personal information, and financial regulations forbid contacting you at unreasonable hours or too often, "
        "contacting people unrelated to the debt, and threatening or insulting language. We also checked the contact "
        "arrangements in your contract.",
    ),
    Category.PRICING_FEES.value: (
        "我们查看了您的还款记录和每一笔收费的明细（利息、滞纳金、罚息及其他费用）。",
        "收费须以合同约定为准：收费项目和标准应当在签约前向您明示，合同未约定的费用不得收取；"
        "监管规定还要求如实披露综合融资成本。",
        "We looked at your repayment record and every charge on your account (interest, late fees, penalty interest "
        "and other fees).",
        "Charges must follow your contract: what is charged and how much must be made clear to you before you sign, "
        "and nothing the contract does not provide for may be charged. Regulations also require the full cost of "
        "credit to be disclosed truthfully.",
    ),
    Category.CONTRACT_TERMS.value: (
        "我们查看了您签署的合同条款，以及签约时向您提示和说明条款的记录。",
        "合同约定对双方都有约束力；按照《民法典》，格式条款中与您有重大利害关系的内容应当提示并说明，"
        "《消费者权益保护法》也规定不得以格式条款作出对消费者不公平、不合理的规定。",
        "We looked at the terms of the contract you signed and the record of how they were pointed out and "
        "explained to you.",
        "A contract binds both sides. Under the Civil Code, standard terms that matter greatly to you must be pointed "
        "out and explained, and the Consumer Rights Protection Law forbids standard terms that are unfair or "
        "unreasonable to consumers.",
    ),
    Category.CUSTOMER_SERVICE.value: (
        "我们查看了您与我们的服务记录，包括来电、在线咨询以及问题的处理经过和时间。",
        "按照《消费者权益保护法》，您有权获得真实的信息并受到尊重；我们也对照了我们对外公布的服务标准。",
        "We looked at the record of your contacts with us (calls, online chats) and how and when your questions "
        "were handled.",
        "Under the Consumer Rights Protection Law you have the right to true information and to respectful "
        "treatment. We also checked the service standards we publish.",
    ),
    Category.MARKETING.value: (
        "我们查看了向您推送的营销信息、产品介绍以及签约前向您披露的信息。",
        "按照《消费者权益保护法》，我们应当提供真实、全面的信息，不得作虚假或引人误解的宣传；"
        "金融产品的营销宣传还须符合相关监管规定。",
        "We looked at the marketing messages sent to you, the product description and what was disclosed to you "
        "before you signed.",
        "Under the Consumer Rights Protection Law we must give true and complete information and must not advertise "
        "falsely or misleadingly; marketing of financial products must also follow the financial regulations.",
    ),
    Category.OTHER.value: (
        "我们查看了与您的投诉有关的账户和业务记录。",
        "我们依据您的合同约定以及相关法律法规和监管规定作出判断。",
        "We looked at the account and business records your complaint concerns.",
        "We judged it by your contract and the laws and regulations that apply.",
    ),
}

FINDING_TEXT = {
    "substantiated": ("经核实，您反映的问题属实。", "We checked, and what you told us is right."),
    "partly_substantiated": ("经核实，您反映的问题部分属实。", "We checked, and what you told us is partly right."),
    "unsubstantiated": (
        "经核实，我们没有发现您反映的问题。如果您有其他材料，欢迎随时提供给我们。",
        "We checked and did not find the problem you described. If you have anything more to show us, "
        "please send it at any time.",
    ),
}

OUTCOME_TEXT = {
    "confirmed": ("记录证实了您的说法", "the records confirm what you said"),
    "contradicted": ("记录与您的说法不一致", "the records do not match what you said"),
    "not_found": ("没有找到相关记录", "we found no record of it"),
}

#: Days the institution allows itself for each kind of term after the agreement (follow-up's plan).
EXECUTION_DAYS = {
    "fee_waiver": 2, "interest_reduction": 3, "instalment_plan": 3, "deferral": 3, "refund": 5,
    "compensation": 5, "credit_report_correction": 5, "apology": 1,
}

#: Words that belong to staff screens, never to the customer's.
INTERNAL_WORDS = ("written justification", "书面说明理由", "remedy range", "remedy_range", "建议补救范围")

CASE_CHANGES = {
    "mediation": (
        "您的案件已转交调解。我们已把完整的案件材料（投诉、核实结果、沟通记录和各次方案）整理成卷宗交给调解机构"
        "（如金融纠纷调解组织）。调解员会联系您，安排调解；在调解中达成的协议对双方都有约束力。",
        "Your case has gone to mediation. We have given the mediator (such as a financial dispute mediation centre) a "
        "complete file: your complaint, what we found, our conversations and every offer. The mediator will contact "
        "you to arrange the mediation; an agreement reached there binds both sides.",
    ),
    "litigation": (
        "您的案件将通过诉讼解决。我们已把完整的案件材料整理成卷宗；您可以向有管辖权的人民法院起诉，"
        "法院在立案前通常会先组织诉前调解。",
        "Your case will be settled in court. We have prepared a complete case file; you may bring the case before the "
        "competent people's court, which usually first offers mediation before the case is filed.",
    ),
}


def beijing_time(at: datetime, lang: str) -> str:
    """A moment as Beijing time, e.g. ``2026年12月1日 17:00（北京时间）`` / ``1 December 2026, 17:00 Beijing time``."""
    t = at.astimezone(BEIJING)
    if lang != "en":
        return f"{t.year}年{t.month}月{t.day}日 {t:%H:%M}（北京时间）"
    return f"{t.day} {t:%B %Y}, {t:%H:%M} Beijing time"


def beijing_date(at: datetime, lang: str) -> str:
    """The Beijing day of a moment, in words."""
    t = at.astimezone(BEIJING)
    return f"{t.year}年{t.month}月{t.day}日" if lang != "en" else f"{t.day} {t:%B %Y}"


def deadline_sentence(at: datetime, lang: str) -> str:
    """The deadline as the end of its Beijing day."""
    if lang != "en":
        return f"{beijing_date(at, lang)}（北京时间）当日24时前"
    return f"the end of {beijing_date(at, lang)} (24:00 Beijing time)"


def customer_name(ws: Workspace, lang: str) -> str:
    """The customer as named to themselves: the masked name, or "you"."""
    if ws.customer_name_masked:
        return f"{ws.customer_name_masked}（您）" if lang != "en" else f"{ws.customer_name_masked} (you)"
    return "您" if lang != "en" else "you"


def term_headline(term: object, lang: str) -> str:
    """One term without its trailing full stop, for a list in one sentence."""
    return describe_term(term, lang).rstrip("。.")


def when_done(offer: Offer, lang: str) -> str:
    """By when the offer's terms would be carried out, once accepted."""
    days = max((EXECUTION_DAYS.get(t.kind, 5) for t in offer.terms), default=5)
    if lang != "en":
        return f"如您接受，我们将在协议生效后 {days} 日内办好各项内容，并告知您每一步的进展。"
    return (f"If you accept, we will carry out everything within {days} days of the agreement "
            "and tell you about each step.")


def earlier_shown(ws: Workspace, offer: Offer) -> Offer | None:
    """The last institution offer shown to the customer before ``offer``, if any."""
    before = [o for o in ws.offers if o.party == "institution" and o.offer_id != offer.offer_id
              and o.created_at <= offer.created_at and any(h.status == "open" for h in o.history)]
    return before[-1] if before else None


def replaces_text(ws: Workspace, offer: Offer, lang: str) -> str:
    """Says that an offer replaces the earlier one (by its date), or ""."""
    earlier = earlier_shown(ws, offer)
    if earlier is None:
        return ""
    shown = next(h.at for h in earlier.history if h.status == "open")
    if lang != "en":
        return f"这一方案取代我们于 {beijing_time(shown, lang)} 提出的方案，之前的方案不再有效。"
    return f"This offer replaces the one we made on {beijing_time(shown, lang)}; the earlier one no longer applies."


def comparison_text(offer: Offer, lang: str) -> str | None:
    """How the offer compares with similar settled cases, in the customer's words (no staff rules)."""
    f = offer.fairness
    if f is None or not f.comparable or f.offer_pct is None or f.p10 is None or f.p90 is None:
        return None
    if lang != "en":
        return (f"供您参考：在 {f.peers} 个类似的已和解案件中，多数（80%）客户获得的减免在 {f.p10}%–{f.p90}% 之间，"
                f"中位数为 {f.median}%；本方案为 {f.offer_pct}%。")
    return (f"For your information: in {f.peers} similar settled cases, most customers (80%) received relief of "
            f"between {f.p10}% and {f.p90}%, with a median of {f.median}%; this offer gives {f.offer_pct}%.")


def offer_text(ws: Workspace, offer: Offer, lang: str) -> str:
    """An offer as the customer reads it: what changes, how much, by when; what it replaces."""
    zh = lang != "en"
    lines = [("我们的最终方案：" if offer.final else "我们的方案：") if zh
             else ("Our final offer:" if offer.final else "Our offer:")]
    lines.append(describe_offer(offer, lang))
    if offer.concession:
        lines.append(f"减免及补偿合计 {offer.concession} 元。" if zh
                     else f"In all, CNY {offer.concession} waived, refunded or paid to you.")
    lines.append(when_done(offer, lang))
    again = replaces_text(ws, offer, lang)
    if again:
        lines.append(again)
    return "\n".join(lines)


def findings_text(ws: Workspace, lang: str) -> list[str]:
    """Investigation's findings in plain words, with what was checked and the rule behind each."""
    if not ws.finding:
        return []
    zh = lang != "en"
    i = 0 if zh else 1
    out = [FINDING_TEXT.get(ws.finding, FINDING_TEXT["partly_substantiated"])[i]]
    checked_zh, rule_zh, checked_en, rule_en = CATEGORY_EXPLANATIONS.get(
        ws.category or "other", CATEGORY_EXPLANATIONS["other"])
    out.append(checked_zh if zh else checked_en)
    for e in ws.evidence:
        title = e.title_zh if zh else e.title_en
        detail = redact(e.detail_zh if zh else e.detail_en).strip()
        outcome = OUTCOME_TEXT.get(e.outcome, OUTCOME_TEXT["not_found"])[i]
        out.append(f"{title}：{outcome}" + (f"（{detail.rstrip('。')}）" if detail else "") + "。" if zh
                   else f"{title}: {outcome}" + (f" ({detail.rstrip('.')})" if detail else "") + ".")
    d = ws.investigation_details
    for reason in (d.reasons_zh if zh else d.reasons_en):
        out.append(redact(reason))
    out.append(("依据：" + rule_zh) if zh else ("The rule behind it: " + rule_en))
    return [t for t in out if t and not any(w in t for w in INTERNAL_WORDS)]


def agreement_text(ws: Workspace, lang: str, *, institution: str) -> str:
    """The agreement as the customer sees it: both parties named, the time in Beijing time."""
    a = ws.agreement
    if a is None:
        return ""
    zh = lang != "en"
    offer = ws.offer(a.offer_id)
    terms = "\n".join(f"{n}. {describe_term(t, lang)}" for n, t in enumerate(a.terms, 1))
    by_phone = a.acceptance.recorded_by is not None
    if zh:
        how = "由我们的专员记录您的确认" if by_phone else "在应用内确认"
        return (f"和解协议（案件编号 {ws.case_number}）\n双方：{institution}（“我们”）与 {customer_name(ws, lang)}。\n"
                f"{customer_name(ws, lang)}于 {beijing_time(a.acceptance.at, lang)} {how}，接受了以下方案，协议自即时起生效：\n"
                f"{terms}\n减免及补偿合计 {a.concession} 元。"
                + (f"\n{when_done(offer, lang).replace('如您接受，', '')}" if offer else ""))
    how = "as recorded by our staff" if by_phone else "in the app"
    return (f"Settlement agreement (case {ws.case_number})\nBetween {institution} (\"we\") and "
            f"{customer_name(ws, lang)}.\nAccepted {how} on {beijing_time(a.acceptance.at, lang)}; it took effect then:\n"
            f"{terms}\nIn all, CNY {a.concession} waived, refunded or paid to you."
            + (f"\n{when_done(offer, lang).replace('If you accept, we', 'We')}" if offer else ""))


def day_text(day: date, lang: str) -> str:
    """A calendar day in words (``2027年1月31日`` / ``31 January 2027``)."""
    return f"{day.year}年{day.month}月{day.day}日" if lang != "en" else f"{day.day} {day:%B %Y}"


def _current_progress(ws: Workspace) -> list[StepProgress]:
    """Follow-up's reports on the agreement in force (all of them when none is known)."""
    if ws.agreement is None:
        return list(ws.progress)
    return [r for r in ws.progress if r.agreement_id in ("", ws.agreement.agreement_id)]


def _term_of_step(ws: Workspace, record: StepProgress) -> object | None:
    """The agreed term an institution step carries out (follow-up's step ``s<n>`` is term n)."""
    a = ws.agreement
    if a is None or record.agreement_id not in ("", a.agreement_id) or not record.step_id[1:].isdigit():
        return None
    n = int(record.step_id[1:])
    return a.terms[n - 1] if 1 <= n <= len(a.terms) else None


def _terms_done(ws: Workspace) -> set[int]:
    """Indexes of the agreed terms follow-up reported carried out one by one."""
    done = set()
    for r in _current_progress(ws):
        term = _term_of_step(ws, r) if r.owner == "institution" and r.outcome == "done" else None
        if term is not None:
            done.add(int(r.step_id[1:]) - 1)
    return done


def progress_text(ws: Workspace, record: StepProgress, lang: str) -> str | None:
    """One step of the agreement or one instalment as the customer reads it; None for what is
    not the customer's to see (an institution step past its due day is supervision's)."""
    zh = lang != "en"
    if record.owner == "institution":
        if record.outcome != "done":
            return None
        term = _term_of_step(ws, record)
        what = term_headline(term, lang) if term is not None else (record.title_zh if zh else record.title_en)
        return f"已完成：{what}。" if zh else f"Done: {what}."
    n = record.instalment_number
    which = (f"第 {n} 期还款" if n else "一期还款") if zh else (f"instalment {n}" if n else "an instalment")
    amount = (f" {record.amount} 元" if zh else f" of CNY {record.amount}") if record.amount is not None else ""
    due = (f"（应还日 {day_text(record.due_date, lang)}）" if zh else f" (due {day_text(record.due_date, lang)})"
           ) if record.due_date else ""
    total, paid = record.instalments_total, record.instalments_paid
    if record.outcome == "paid":
        if zh:
            rest = f"还有 {total - paid} 期待还。" if total > paid else "全部分期已还清。"
            return f"我们已收到您的{which}{amount}{due}。已还 {paid}/{total} 期，{rest}"
        rest = f"{total - paid} still to pay." if total > paid else "Every instalment is paid."
        return f"We received {which}{amount}{due}. {paid} of {total} paid; {rest}"
    if zh:
        return (f"{which}{amount}{due}已到期，我们尚未收到。请尽快还款；如有困难，请联系负责您案件的专员商量。")
    return (f"{which.capitalize()}{amount}{due} is past due and we have not received it. Please pay it as soon "
            "as you can; if you have difficulty, contact the person handling your case.")


def progress_steps(ws: Workspace, lang: str) -> list[tuple[datetime, str]]:
    """Each step carried out and each instalment paid or missed, as follow-up reported them."""
    out = []
    for r in ws.progress:
        text = progress_text(ws, r, lang)
        if text:
            out.append((r.at, text))
    return out


def next_instalment(ws: Workspace, lang: str) -> str:
    """What is left of the agreed instalment plan and when the next one is due, or "" when
    there is no plan or everything is paid."""
    plan = next((t for t in ws.agreement.terms if isinstance(t, InstalmentPlanTerm)), None) if ws.agreement else None
    if plan is None or not plan.schedule:
        return ""
    paid = {r.instalment_number for r in _current_progress(ws) if r.owner == "customer" and r.outcome == "paid"}
    left = [row for row in plan.schedule if row.number not in paid]
    if not left:
        return ""
    row = left[0]
    if lang != "en":
        return (f"您还有 {len(left)} 期分期待还：下一期（第 {row.number} 期）{row.payment} 元，"
                f"请于 {day_text(row.due_date, lang)} 前还款。全部还清后，案件即告办结。")
    return (f"{len(left)} instalments are still to pay: the next (instalment {row.number}) is CNY {row.payment}, "
            f"due by {day_text(row.due_date, lang)}. The case is closed once the last one is paid.")


def execution_steps(ws: Workspace, lang: str) -> list[tuple[datetime, str]]:
    """Each agreed term carried out (from ``settlement.executed``; a term follow-up reported on
    its own shows at its own time, ``progress_steps``), then that everything is done."""
    if not ws.executions or ws.agreement is None:
        return []
    at = ws.executions[0].at
    zh = lang != "en"
    reported = _terms_done(ws)
    steps = [(at, f"已完成：{term_headline(t, lang)}。" if zh else f"Done: {term_headline(t, lang)}.")
             for i, t in enumerate(ws.agreement.terms) if i not in reported]
    steps.append((at, "和解协议约定的各项内容已全部办理完毕。" if zh
                  else "Everything agreed in the settlement has been carried out."))
    return steps


STATUS = {
    "registered": ("我们已受理您的投诉，正在核实。", "We have registered your complaint and are looking into it."),
    "awaiting_investigation": ("我们已受理您的投诉，正在核实。", "We have registered your complaint and are looking into it."),
    "open": ("我们已完成核实，正在与您协商解决方案。", "We have finished looking into it and are working out a solution with you."),
    "agreed": ("双方已达成和解协议，我们正在按协议办理。", "We have both agreed a settlement, and we are carrying it out."),
    "executed": ("和解协议约定的内容已全部办理完毕。", "Everything agreed in the settlement has been carried out."),
    "closed": ("您的案件已办结。", "Your case is closed."),
    "escalated": ("协商未能达成一致，案件已转交{target}。", "We could not agree; the case has gone to {target}."),
}


def stage(ws: Workspace) -> str:
    """Where the case stands for the customer: registered, open, agreed, executed, closed, escalated."""
    if ws.status == "escalated":
        return "escalated"
    if ws.closure is not None:
        return "closed"
    if ws.status == "agreed" and ws.executions:
        return "executed"
    if ws.status == "awaiting_investigation":
        return "registered"
    return ws.status


def customer_status(ws: Workspace, lang: str) -> tuple[str, str]:
    """Return the plain-language status and next step for the customer."""
    zh = lang != "en"
    where = stage(ws)
    target = ws.escalation.target if ws.escalation else "mediation"
    status = STATUS[where][0 if zh else 1].format(target=TARGET_ZH[target] if zh else target)
    open_offers = [o for o in ws.offers if o.status == "open" and o.party == "institution"]
    if where == "closed":
        step = ("感谢您的耐心。如您对处理结果仍有疑问，可以随时联系我们。" if zh
                else "Thank you for your patience. If you still have questions about the outcome, contact us at any time.")
    elif where == "executed" and next_instalment(ws, lang):
        step = next_instalment(ws, lang)
    elif where == "executed":
        step = ("我们会回访您，了解您是否满意；之后案件即告办结。" if zh
                else "We will call you to ask whether you are satisfied; after that the case is closed.")
    elif where == "agreed":
        step = ("我们将按协议逐项办理，每完成一步都会告诉您。" if zh
                else "We will carry out the agreement step by step and tell you as each one is done.")
    elif where == "escalated":
        step = CASE_CHANGES[target][0 if zh else 1]
    elif open_offers:
        step = ("请查看我们的方案，您可以接受、拒绝或提出您的意见。" if zh
                else "Please look at our offer: you can accept it, reject it or tell us what you would like instead.")
    elif where == "open":
        step = ("负责您案件的专员正在准备方案，如有需要会与您联系。" if zh
                else "The person handling your case is preparing an offer and will contact you if anything is needed.")
    else:
        step = ("我们正在查看相关记录；核实完成后会告诉您结果，并与您商量解决办法。" if zh
                else "We are checking the records; once we are done we will tell you what we found and talk with you "
                     "about a solution.")
    return status, step


def deadline_change_text(change: object, lang: str) -> str:
    """A change of deadline with its reason."""
    at = change.deadline_at  # type: ignore[attr-defined]
    reason = change.reason_zh if lang != "en" else change.reason_en  # type: ignore[attr-defined]
    if lang != "en":
        return f"处理时限调整为 {deadline_sentence(at, lang)}。{reason}"
    return f"The time limit is now {deadline_sentence(at, lang)}. {reason}"


def customer_timeline(ws: Workspace, lang: str) -> list[tuple[datetime, str]]:
    """Return (time, plain sentence) steps the customer may see, oldest first."""
    zh = lang != "en"
    steps: list[tuple[datetime, str]] = []
    registered = ws.received_at or ws.registered_at
    if registered is not None:
        steps.append((registered, f"我们已受理您的投诉（案件编号 {ws.case_number}），开始核实。" if zh
                      else f"We registered your complaint (case {ws.case_number}) and started looking into it."))
    for change in ws.deadline_changes:
        steps.append((change.at, deadline_change_text(change, lang)))
    if ws.opened_at:
        steps.append((ws.opened_at, "我们已完成核实，开始与您协商。" if zh
                      else "We finished looking into your complaint and started talking with you."))
    for o in ws.offers:
        for h in o.history:
            shown = next((x.at for x in o.history if x.status == "open"), None)
            when = f"（{beijing_time(shown, lang)}提出）" if zh and shown else (
                f" (made on {beijing_time(shown, lang)})" if shown else "")
            if o.party == "institution" and h.status == "open":
                heads = "；".join(term_headline(t, lang) for t in o.terms) if zh else "; ".join(
                    term_headline(t, lang) for t in o.terms)
                again = " " + replaces_text(ws, o, lang) if replaces_text(ws, o, lang) else ""
                text = (f"我们向您提出了{'最终' if o.final else ''}方案：{heads}。{again.strip()}" if zh
                        else f"We made you {'our final' if o.final else 'an'} offer: {heads}.{again}")
            elif o.party == "institution" and h.status == "withdrawn" and shown is not None:
                text = f"我们撤回了方案{when}。" if zh else f"We withdrew our offer{when}."
            elif h.status in ("accepted", "rejected", "countered") and o.party == "institution":
                text = {
                    "accepted": (f"您接受了我们的方案{when}。", f"You accepted our offer{when}."),
                    "rejected": (f"您拒绝了我们的方案{when}。", f"You rejected our offer{when}."),
                    "countered": (f"您对我们的方案{when}提出了意见。", f"You answered our offer{when} with your own proposal."),
                }[h.status][0 if zh else 1]
            else:
                continue
            steps.append((h.at, text))
    if ws.agreement:
        a = ws.agreement
        steps.append((a.acceptance.at, f"和解协议于 {beijing_time(a.acceptance.at, lang)} 生效。" if zh
                      else f"The settlement agreement took effect on {beijing_time(a.acceptance.at, lang)}."))
    steps += progress_steps(ws, lang)
    steps += execution_steps(ws, lang)
    if ws.escalation:
        target = TARGET_ZH[ws.escalation.target] if zh else ws.escalation.target
        steps.append((ws.escalation.at, f"案件已转交{target}。" if zh else f"The case went to {target}."))
    if ws.closure:
        steps.append((ws.closure.at, "案件已办结。" if zh else "The case was closed."))
    return sorted(steps, key=lambda s: s[0])
