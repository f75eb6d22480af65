"""Follow-up's HTTP face for the operations team: carry out steps, record the callback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.followup import handlers
from services.followup.errors import Conflict, NotFound
from services.followup.models import CompleteStep, Execution, RecordCallback
from services.followup.repository import Repository
from shared.contracts.envelope import utcnow
from shared.outbox import relay

router = APIRouter()


def repo_of(request: Request) -> Repository:
    repo: Repository = request.app.state.deps.repo
    return repo


async def _load(repo: Repository, case_id: str, expected_version: int | None) -> Execution:
    execution = await repo.get(case_id)
    if execution is None:
        raise NotFound(f"no settlement or escalation is known for case {case_id!r}")
    if expected_version is not None and expected_version != execution.version:
        raise Conflict(f"case is at version {execution.version}, not {expected_version}")
    return execution


@router.get("/executions", response_model=list[Execution])
async def list_executions(
    repo: Annotated[Repository, Depends(repo_of)],
    status: Annotated[str | None, Query(pattern="^(executing|executed|followed_up|closed|reopened|escalated)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Execution]:
    """List executions, optionally in one status."""
    return await repo.list(status, limit)


@router.get("/executions/{case_id}", response_model=Execution, responses={404: {"description": "unknown case"}})
async def get_execution(case_id: str, repo: Annotated[Repository, Depends(repo_of)]) -> Execution:
    """Return a case's execution plan, step by step, and its callback."""
    return await _load(repo, case_id, None)


@router.post(
    "/executions/{case_id}/steps/{step_id}/complete",
    response_model=Execution,
    responses={404: {"description": "unknown case or step"}, 409: {"description": "changed meanwhile, or escalated"}},
)
async def complete_step(
    case_id: str, step_id: str, body: CompleteStep, request: Request,
    repo: Annotated[Repository, Depends(repo_of)],
) -> Execution:
    """Record that a step was carried out (booking, payment, letter) with its evidence."""
    execution = await _load(repo, case_id, body.expected_version)
    updated, events = handlers.complete_step(
        execution, step_id, by=body.by, evidence_ref=body.evidence_ref, now=utcnow()
    )
    if updated is execution:
        return execution
    saved = await repo.save(updated, events)
    await relay(repo.executions, case_id, request.app.state.publisher.send)
    return saved


@router.post(
    "/executions/{case_id}/callback",
    response_model=Execution,
    responses={404: {"description": "unknown case"}, 409: {"description": "not yet executed, or changed meanwhile"}},
)
async def callback(
    case_id: str, body: RecordCallback, request: Request, repo: Annotated[Repository, Depends(repo_of)]
) -> Execution:
    """Record the satisfaction callback: satisfied closes the case, dissatisfied reopens it."""
    execution = await _load(repo, case_id, body.expected_version)
    updated, events = handlers.record_callback(
        execution, satisfied=body.satisfied, score=body.score, comment=body.comment, by=body.by, now=utcnow()
    )
    saved = await repo.save(updated, events)
    await relay(repo.executions, case_id, request.app.state.publisher.send)
    return saved
