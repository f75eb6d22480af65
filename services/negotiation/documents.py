"""Documents: the settlement agreement (和解协议) and the escalation dossier (案件卷宗).

The agreement lists every term and the recorded acceptance, in zh-CN and in English. The
dossier gathers the complaint, findings, evidence, communications, every offer with its
reason, fairness and approvals, and the timeline, as JSON and as a readable HTML page
(zh-CN first, English second). Neither contains ID, phone or card numbers: free text is
passed through ``shared.logging.redact`` before it goes in.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from services.negotiation.fairness import CATEGORY_ZH
from services.negotiation.models import Acceptance, Dossier, DossierFindings, Offer, Workspace
from services.negotiation.texts import TARGET_ZH, describe_offer, describe_term
from shared.contracts.investigation import ComputedFact, EvidenceItem, RemedyRange
from shared.logging import redact

CHANNEL_ZH = {"in_app": "应用内", "sms": "短信", "call": "电话", "meeting": "面谈",
              "letter": "信函", "email": "电子邮件"}
FINDING_ZH = {"substantiated": "投诉属实", "partly_substantiated": "部分属实", "unsubstantiated": "投诉不属实"}
STATUS_ZH = {
    "pending_approval": "待审批", "approval_rejected": "审批未通过", "open": "待客户答复",
    "accepted": "已接受", "rejected": "已拒绝", "countered": "客户已还价", "withdrawn": "已撤回",
    "superseded": "已被新方案取代", "answered": "已答复",
}


def _t(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def agreement_texts(ws: Workspace, offer: Offer, acceptance: Acceptance, agreement_id: str) -> tuple[str, str]:
    """Return the agreement's text in zh-CN and English."""
    zh = (
        f"和解协议 {agreement_id}\n案件编号：{ws.case_number}\n\n"
        f"经协商，双方就上述投诉达成如下和解：\n{describe_offer(offer, 'zh-CN')}\n\n"
        f"减免及补偿合计：{offer.concession} 元。\n"
        f"客户于 {_t(acceptance.at)} 通过{CHANNEL_ZH.get(acceptance.channel, acceptance.channel)}"
        f"确认接受（确认人：{acceptance.by.sub}"
        + (f"，由 {acceptance.recorded_by.sub} 记录" if acceptance.recorded_by else "") + "）。\n"
        "本协议自客户确认之时生效。双方按上述条款履行后，本次投诉所涉争议即告解决；"
        "如一方未履行，另一方可申请调解或依法提起诉讼。\n"
    )
    en = (
        f"Settlement agreement {agreement_id}\nCase: {ws.case_number}\n\n"
        f"Following negotiation, both parties settle the complaint on these terms:\n"
        f"{describe_offer(offer, 'en')}\n\n"
        f"Total waived or paid: CNY {offer.concession}.\n"
        f"Accepted by the customer ({acceptance.by.sub}) on {_t(acceptance.at)} via {acceptance.channel}"
        + (f", recorded by {acceptance.recorded_by.sub}" if acceptance.recorded_by else "") + ".\n"
        "The agreement takes effect on the customer's acceptance. Once both sides have carried out "
        "these terms the dispute is settled; if one side does not, the other may seek mediation or "
        "go to court. The Chinese text prevails.\n"
    )
    return zh, en


def build_dossier(
    ws: Workspace, *, dossier_id: str, target: str, reason: str, created_at: datetime
) -> Dossier:
    """Gather the case into a dossier."""
    return Dossier(
        dossier_id=dossier_id,
        case_id=ws.case_id,
        case_number=ws.case_number,
        target=target,
        reason=redact(reason),
        created_at=created_at,
        complaint={
            "text": redact(ws.complaint_text), "demand": redact(ws.demand),
            "product": ws.product, "amount_disputed": ws.amount_disputed,
            "customer_id": ws.customer_id, "customer_name_masked": ws.customer_name_masked,
            "deadline_at": ws.deadline_at,
        },
        findings=DossierFindings(
            category=ws.category, finding=ws.finding, reasons=ws.reasons,
            complex_case=ws.complex_case, hardship=ws.hardship, facts=ws.facts,
            remedy_range=ws.remedy_range, details=ws.investigation_details,
            revision=ws.investigation_revision,
        ),
        evidence=ws.evidence,
        communications=[m.model_copy(update={"body": redact(m.body)}) for m in ws.messages],
        offers=ws.offers,
        timeline=ws.timeline,
    )


OUTCOME_ZH = {"confirmed": "属实", "contradicted": "不符", "not_found": "未找到记录"}


def _evidence_row(e: EvidenceItem) -> list[str]:
    title = " / ".join(x for x in (e.title_zh, e.title_en) if x) or e.item
    verdict = f"{OUTCOME_ZH.get(e.outcome, e.outcome)} / {e.outcome}"
    detail = " / ".join(x for x in (e.detail_zh, e.detail_en) if x)
    return [title, e.source or "—", verdict, redact(detail)]


def _fact_row(x: ComputedFact) -> list[str]:
    return [x.code, f"{x.value} {x.unit}".strip(), "是 / yes" if x.breach else "否 / no",
            redact(" / ".join(t for t in (x.detail_zh, x.detail_en) if t))]


def _remedy_text(remedy: RemedyRange | None) -> str:
    if remedy is None:
        return "—"
    return " / ".join(t for t in (f"{remedy.min}–{remedy.max} 元", remedy.text_zh, remedy.text_en) if t)


def _rows(items: list[list[str]]) -> str:
    return "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in items)


def dossier_html(d: Dossier) -> str:
    """Render a dossier as a self-contained HTML page, zh-CN first then English."""
    target_zh = TARGET_ZH[d.target]
    offers_html = []
    for o in d.offers:
        fair = o.fairness
        approvals = [h for h in o.history if h.status in ("open", "approval_rejected") and h.by.role != "customer"]
        offers_html.append(
            f"<section class='offer'><h3>{escape(o.offer_id)} · {escape(STATUS_ZH.get(o.status, o.status))} / "
            f"{escape(o.status)}</h3>"
            f"<p>提出方 / by: {escape(o.proposed_by.sub)} ({escape(o.proposed_by.role)}), {_t(o.created_at)}"
            f"{' · 最终方案 / final offer' if o.final else ''}</p>"
            "<ol>" + "".join(
                f"<li>{escape(describe_term(t, 'zh-CN'))}<br><small>{escape(describe_term(t, 'en'))}</small></li>"
                for t in o.terms) + "</ol>"
            f"<p>理由 / reason: {escape(redact(o.reason) or '—')}</p>"
            + (f"<p>书面说明 / justification: {escape(redact(o.justification))}</p>"
               if o.justification else "")
            + (f"<p>公平性比较：{escape(fair.explanation_zh)}<br><small>{escape(fair.explanation_en)}</small></p>"
               if fair else "")
            + (f"<p>授权 / authority: {escape(o.authority.proposer_role)} → "
               f"{escape(o.authority.required_role)}</p>" if o.authority else "")
            + "<ul>" + "".join(
                f"<li>{_t(h.at)} {escape(h.status)} — {escape(h.by.sub)} ({escape(h.by.role)})"
                f"{': ' + escape(redact(h.note)) if h.note else ''}</li>" for h in o.history) + "</ul>"
            + (f"<p>审批记录 / approvals: {len(approvals)}</p>" if o.authority and not o.authority.within_authority else "")
            + "</section>"
        )
    c, f = d.complaint, d.findings
    evidence_rows = [_evidence_row(e) for e in d.evidence]
    fact_rows = [_fact_row(x) for x in f.facts]
    remedy_text = _remedy_text(f.remedy_range)
    details = f.details
    root = " / ".join(x for x in (details.root_cause_zh, details.root_cause_en, details.root_cause or "") if x) or "—"
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>案件卷宗 {escape(d.case_number)} / Case dossier</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.5}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #bbb;padding:.3em;vertical-align:top}}
small{{color:#555}}section.offer{{border-left:3px solid #888;padding-left:1em;margin:1em 0}}</style></head>
<body>
<h1>案件卷宗 <small>Case dossier</small></h1>
<p>案件编号 / case: {escape(d.case_number)} · 卷宗编号 / dossier: {escape(d.dossier_id)} · 生成于 / made {_t(d.created_at)}</p>
<p>转交 / escalated to: <strong>{target_zh} / {escape(d.target)}</strong> · 原因 / reason: {escape(d.reason)}</p>
<h2>一、投诉 <small>Complaint</small></h2>
<p>{escape(str(c.get('text') or '—'))}</p>
<p>诉求 / demand: {escape(str(c.get('demand') or '—'))} · 争议金额 / amount in dispute: {escape(str(c.get('amount_disputed') or '—'))}
 · 产品 / product: {escape(str(c.get('product') or '—'))} · 客户 / customer: {escape(str(c.get('customer_id') or '—'))}</p>
<h2>二、调查结论 <small>Findings</small></h2>
<p>类别 / category: {escape(CATEGORY_ZH.get(str(f.category), '—'))} / {escape(str(f.category))}
 · 结论 / finding: {escape(FINDING_ZH.get(str(f.finding), '—'))} / {escape(str(f.finding))}
 · 复杂案件 / complex: {escape(str(f.complex_case))} · 困难客户 / hardship: {escape(str(f.hardship))}</p>
<ul>{''.join(f'<li>{escape(redact(str(r)))}</li>' for r in f.reasons)}</ul>
<h2>三、证据 <small>Evidence</small></h2>
<table><tr><th>材料 / item</th><th>来源 / source</th><th>核实结果 / outcome</th><th>说明 / detail</th></tr>{_rows(evidence_rows) or '<tr><td colspan=4>—</td></tr>'}</table>
<p>计算事实 / facts:</p>
<table><tr><th>项目 / code</th><th>数值 / value</th><th>违规 / breach</th><th>说明 / detail</th></tr>{_rows(fact_rows) or '<tr><td colspan=4>—</td></tr>'}</table>
<p>建议补救范围 / suggested remedy: {escape(remedy_text)} · 根本原因 / root cause: {escape(root)}</p>
<h2>四、沟通记录 <small>Communications</small></h2>
<table><tr><th>时间 / time</th><th>渠道 / channel</th><th>方向 / direction</th><th>作者 / author</th><th>内容 / text</th></tr>
{_rows([[_t(m.at), CHANNEL_ZH.get(m.channel, m.channel) + ' / ' + m.channel, m.direction, f'{m.author.sub} ({m.author.role})', m.body] for m in d.communications]) or '<tr><td colspan=5>—</td></tr>'}</table>
<h2>五、方案及理由 <small>Offers and why</small></h2>
{''.join(offers_html) or '<p>—</p>'}
<h2>六、时间线 <small>Timeline</small></h2>
<table><tr><th>时间 / time</th><th>事项 / what</th><th>操作人 / by</th><th>说明 / detail</th></tr>
{_rows([[_t(t.at), t.what, t.by, redact(t.detail)] for t in d.timeline])}</table>
</body></html>
"""


def dossier_json(d: Dossier) -> dict[str, Any]:
    """Return the dossier as JSON-ready data."""
    return d.model_dump(mode="json")
