"""The customer API (``/customer/...``): your cases in plain words, your messages, and your
answers to our offers — accept, reject, counter — or a request for mediation or litigation.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.negotiation import handlers
from services.negotiation.api.customer_view import customer_view
from services.negotiation.api.deps import (
    READ_ERRORS,
    WRITE_ERRORS,
    AcceptLanguage,
    CustomerCaller,
    D,
    IfMatch,
    expected_version,
    language,
    publish_owed,
    repo_of,
)
from services.negotiation.api.schemas import (
    AcceptRequest,
    CaseResult,
    CounterRequest,
    CustomerCaseView,
    CustomerMessageRequest,
    EscalateRequest,
    OfferResult,
    RejectRequest,
)
from services.negotiation.errors import NotFound
from services.negotiation.models import Agreement

customer = APIRouter(prefix="/customer", tags=["customer"])


@customer.get("/cases", response_model=list[CustomerCaseView], responses=READ_ERRORS)
async def my_cases(p: CustomerCaller, d: D, accept_language: AcceptLanguage = None) -> list[CustomerCaseView]:
    """Your cases."""
    assert p.customer_id is not None  # verified: a customer token carries customer_id
    found = await repo_of(d).customer_cases(p.customer_id)
    return [customer_view(ws, language(accept_language), d.settings) for ws in found if handlers.in_scope(ws, p)]


@customer.get("/cases/{case_id}", response_model=CustomerCaseView, responses=READ_ERRORS)
async def my_case(case_id: str, p: CustomerCaller, d: D, response: Response,
                  accept_language: AcceptLanguage = None) -> CustomerCaseView:
    """Status, next step, deadline and open offers, in plain words."""
    ws = await handlers.load_case(case_id, p, repo=repo_of(d))
    response.headers["ETag"] = f'"{ws.version}"'
    return customer_view(ws, language(accept_language), d.settings)


@customer.post("/cases/{case_id}/messages", response_model=CaseResult, status_code=201, responses=WRITE_ERRORS)
async def my_message(case_id: str, body: CustomerMessageRequest, p: CustomerCaller, d: D,
                     if_match: IfMatch = None) -> CaseResult:
    """Write to the agent."""
    ws = await handlers.log_message(case_id, body=body.body, direction="inbound", channel="in_app", p=p,
                                    expected_version=expected_version(if_match, body), repo=repo_of(d), now=d.clock())
    return CaseResult(version=ws.version, status=ws.status)


@customer.post("/cases/{case_id}/offers/{offer_id}/accept", response_model=CaseResult, responses=WRITE_ERRORS)
async def my_accept(case_id: str, offer_id: str, body: AcceptRequest, p: CustomerCaller, d: D,
                    if_match: IfMatch = None) -> CaseResult:
    """Accept an offer: the settlement agreement is made and binding."""
    ws = await handlers.accept_offer(case_id, offer_id, channel=body.channel, p=p,
                                     expected_version=expected_version(if_match, body), repo=repo_of(d), now=d.clock())
    await publish_owed(d, case_id)
    return CaseResult(version=ws.version, status=ws.status)


@customer.post("/cases/{case_id}/offers/{offer_id}/reject", response_model=CaseResult, responses=WRITE_ERRORS)
async def my_reject(case_id: str, offer_id: str, body: RejectRequest, p: CustomerCaller, d: D,
                    if_match: IfMatch = None) -> CaseResult:
    """Reject an offer; rejecting the final offer sends the case to mediation or litigation."""
    ws = await handlers.reject_offer(case_id, offer_id, reason=body.reason, escalate_to=body.escalate_to,
                                     p=p, expected_version=expected_version(if_match, body), repo=repo_of(d),
                                     now=d.clock(), settings=d.settings)
    await publish_owed(d, case_id)
    return CaseResult(version=ws.version, status=ws.status)


@customer.post("/cases/{case_id}/offers/{offer_id}/counter", response_model=OfferResult, status_code=201,
               responses=WRITE_ERRORS)
async def my_counter(case_id: str, offer_id: str, body: CounterRequest, p: CustomerCaller, d: D,
                     if_match: IfMatch = None) -> OfferResult:
    """Say what you would accept instead."""
    ws, offer = await handlers.counter_offer(case_id, offer_id, message=body.message, terms=list(body.terms),
                                             p=p, expected_version=expected_version(if_match, body), repo=repo_of(d),
                                             settings=d.settings, now=d.clock())
    return OfferResult(version=ws.version, offer=offer)


@customer.post("/cases/{case_id}/escalate", response_model=CaseResult, responses=WRITE_ERRORS)
async def my_escalate(case_id: str, body: EscalateRequest, p: CustomerCaller, d: D, if_match: IfMatch = None) -> CaseResult:
    """Ask for mediation or litigation instead of negotiating further."""
    ws = await handlers.escalate(case_id, target=body.target, reason=body.reason, p=p,
                                 expected_version=expected_version(if_match, body), repo=repo_of(d),
                                 settings=d.settings, now=d.clock())
    await publish_owed(d, case_id)
    return CaseResult(version=ws.version, status=ws.status)


@customer.get("/cases/{case_id}/agreement", response_model=Agreement, responses=READ_ERRORS)
async def my_agreement(case_id: str, p: CustomerCaller, d: D) -> Agreement:
    """Your settlement agreement (zh-CN and English)."""
    ws = await handlers.load_case(case_id, p, repo=repo_of(d))
    if ws.agreement is None:
        raise NotFound(f"case {case_id} has no agreement")
    return ws.agreement
