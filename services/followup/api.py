"""Follow-up's HTTP face for the operations team: carry out steps, record the callback.

Every route needs a bearer token (``shared.auth``; the roles per route are in
``docs/security.md``). Staff read executions; a customer may read only their own case's
(404 for anyone else's). Completing a step and recording the callback take a staff role
that acts, and record the token's subject as who did it: a ``by`` in the body is refused
(422), so nobody can write a step or a callback in someone else's name.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from services.followup import handlers
from services.followup.errors import Conflict, NotFound
from services.followup.models import Execution
from services.followup.repository import Repository
from services.followup.settings import Settings
from shared.audit import chain_for
from shared.auth import Principal, Role, check_scope, install_auth, require
from shared.contracts.envelope import utcnow
from shared.outbox import relay

router = APIRouter()
log = logging.getLogger(__name__)

#: staff who read executions (investigators have no business here)
READERS: tuple[Role, ...] = ("agent", "team_lead", "manager", "committee", "ops", "auditor")
#: staff who carry out steps and make the callback
ACTORS: tuple[Role, ...] = ("agent", "team_lead", "manager", "ops")

Reader = Annotated[Principal, Depends(require(*READERS))]
CaseReader = Annotated[Principal, Depends(require("customer", *READERS))]
Actor = Annotated[Principal, Depends(require(*ACTORS))]


def install_api(app: FastAPI, settings: Settings) -> None:
    """Check the token settings (production refuses unsafe ones)."""
    install_auth(app, settings)


class StepDone(BaseModel):
    """Request: a step was carried out (by the caller, as their token says)."""

    model_config = ConfigDict(extra="forbid")

    evidence_ref: str | None = Field(None, max_length=256, description="Booking, payment or letter reference.")
    expected_version: int | None = Field(None, ge=1, description="Refuse with 409 if the record changed.")


class CallbackResult(BaseModel):
    """Request: the result of the satisfaction callback (made by the caller)."""

    model_config = ConfigDict(extra="forbid")

    satisfied: bool
    score: int = Field(ge=1, le=5, description="1 (very dissatisfied) to 5 (very satisfied).")
    comment: str = Field("", max_length=2000)
    expected_version: int | None = Field(None, ge=1)


def repo_of(request: Request) -> Repository:
    repo: Repository = request.app.state.deps.repo
    return repo


def _unknown(case_id: str) -> NotFound:
    return NotFound(f"no settlement or escalation is known for case {case_id!r}")


async def _load(repo: Repository, case_id: str, expected_version: int | None, p: Principal) -> Execution:
    execution = await repo.get(case_id)
    if execution is None:
        raise _unknown(case_id)
    check_scope(p, customer_id=execution.customer_id, not_found=_unknown(case_id).message)
    if expected_version is not None and expected_version != execution.version:
        raise Conflict(f"case is at version {execution.version}, not {expected_version}")
    return execution


@router.get("/executions", response_model=list[Execution])
async def list_executions(
    p: Reader,
    repo: Annotated[Repository, Depends(repo_of)],
    status: Annotated[
        str | None, Query(pattern="^(executing|monitoring|executed|followed_up|closed|reopened|escalated)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Execution]:
    """List executions, optionally in one status (staff)."""
    return await repo.list(status, limit)


@router.get("/executions/{case_id}", response_model=Execution, responses={404: {"description": "unknown case"}})
async def get_execution(case_id: str, p: CaseReader, repo: Annotated[Repository, Depends(repo_of)]) -> Execution:
    """Return a case's execution plan, step by step, and its callback (a customer: their own)."""
    return await _load(repo, case_id, None, p)


@router.post(
    "/executions/{case_id}/steps/{step_id}/complete",
    response_model=Execution,
    responses={404: {"description": "unknown case or step"}, 409: {"description": "changed meanwhile, or escalated"},
               422: {"description": "invalid body (a 'by' field is refused: the token says who)"}},
)
async def complete_step(
    case_id: str, step_id: str, body: StepDone, request: Request, p: Actor,
    repo: Annotated[Repository, Depends(repo_of)],
) -> Execution:
    """Record that the caller carried out a step (booking, payment, letter), with its evidence."""
    execution = await _load(repo, case_id, body.expected_version, p)
    updated, events = handlers.complete_step(
        execution, step_id, by=p.sub, evidence_ref=body.evidence_ref, now=utcnow()
    )
    if updated is execution:
        return execution
    saved = await repo.save(updated, events)
    await audit(repo, p, "step_completed", saved, step_id=step_id, evidence_ref=body.evidence_ref)
    await relay(repo.executions, case_id, request.app.state.publisher.send)
    return saved


async def audit(repo: Repository, p: Principal, action: str, execution: Execution, **details: str | int | None) -> None:
    """Put a state change on follow-up's tamper-evident audit chain: who (the token's subject),
    role, what, when, which case, and the state it left (no personal data).

    The change is already saved: a failure to append is logged, not turned into an error.
    """
    try:
        await chain_for(repo.db).append(
            who=p.sub, role=p.role, action=action, case_id=execution.case_id,
            details={"status": execution.status, "version": execution.version, **details},
        )
    except Exception:  # noqa: BLE001 - the request's change stands; the log says what is missing
        log.exception("could not append %s for case %s to the audit chain", action, execution.case_id)


@router.post(
    "/executions/{case_id}/callback",
    response_model=Execution,
    responses={404: {"description": "unknown case"}, 409: {"description": "not yet executed, or changed meanwhile"},
               422: {"description": "invalid body (a 'by' field is refused: the token says who)"}},
)
async def callback(
    case_id: str, body: CallbackResult, request: Request, p: Actor, repo: Annotated[Repository, Depends(repo_of)]
) -> Execution:
    """Record the satisfaction callback the caller made: satisfied closes the case (once the last
    instalment is paid), dissatisfied reopens it for negotiation."""
    execution = await _load(repo, case_id, body.expected_version, p)
    updated, events = handlers.record_callback(
        execution, satisfied=body.satisfied, score=body.score, comment=body.comment, by=p.sub, now=utcnow()
    )
    saved = await repo.save(updated, events)
    await audit(repo, p, "callback_recorded", saved, satisfied=body.satisfied, score=body.score)
    if saved.status == "reopened":
        await audit(repo, p, "case_reopened", saved, agreement_id=saved.agreement_id)
    await relay(repo.executions, case_id, request.app.state.publisher.send)
    return saved
