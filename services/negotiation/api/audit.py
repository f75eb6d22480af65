"""The append-only audit trail of the HTTP API: every request to a case, the directory, the
tools or the trail itself, with who asked, the answer's status and, for a refusal, why.

Entries are inserted, never updated or deleted. A request never fails because its entry
could not be written (that is logged instead).

Each audited request is written twice: to ``audit`` (the queryable log the service always
kept, by case and outcome) and to the service's tamper-evident chain (``shared.audit``,
``audit_chain``): ``who`` and ``role`` from the token, ``action`` = method and route template
(``POST /cases/{case_id}/recusals``: a recusal, ``…/approval``: an approval), ``case_id``, and
details ``method``, ``path``, ``status``, ``outcome``, ``reason``. ``GET /audit`` reads the
chain, by seq (``audit_page``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from pydantic import AwareDatetime, BaseModel, Field, field_serializer

from services.negotiation.auth import Principal
from services.negotiation.repository import Repository
from shared.audit import canonical_time, chain_for, exported
from shared.logging import log_context

log = logging.getLogger(__name__)

AUDITED = ("/cases", "/customer", "/agents", "/audit", "/plans")


def case_of(path: str) -> str | None:
    """The case id a path is about, if any."""
    if path.startswith("/customer/cases/"):
        return path.split("/")[3]
    if path.startswith("/cases/"):
        return path.split("/")[2]
    return None


def outcome_of(status: int) -> str:
    """allowed (2xx/3xx), refused (401, 403, 404) or rejected (any other error)."""
    return "allowed" if status < 400 else ("refused" if status in (401, 403, 404) else "rejected")


def action_of(request: Request) -> str:
    """``METHOD /route/{template}`` of a request (its path when no route matched)."""
    route = request.scope.get("route")
    template = getattr(route, "path", None) or request.url.path[:200]
    return f"{request.method} {template}"


class AuditRecord(BaseModel):
    """One record of the chain (``shared.audit``); ``hash`` is SHA-256 over the other fields."""

    seq: int
    at: AwareDatetime
    who: str | None
    role: str | None
    action: str
    case_id: str | None
    details: dict[str, Any]
    prev: str
    hash: str

    @field_serializer("at")
    def _canonical_at(self, at: datetime) -> str:
        """``at`` exactly as it was hashed (UTC, milliseconds, ``Z``): a reader re-hashes an entry alone."""
        return canonical_time(at)


class AuditPage(BaseModel):
    """A page of the chain, oldest first; ask again with ``after=next`` until ``next`` is null."""

    entries: list[AuditRecord]
    next: int | None = Field(description="The seq to pass as `after` for the next page; null at the head.")


#: Most records one filtered page reads while it looks for ``limit`` matching ones.
MAX_SCAN = 5000


async def audit_page(repo: Repository, *, after: int, limit: int, case_id: str | None = None,
                     outcome: Literal["allowed", "refused", "rejected"] | None = None) -> AuditPage:
    """Up to ``limit`` records after seq ``after``, oldest first; with ``case_id``/``outcome``
    only the matching ones.

    Read by ``_id`` (seq). A filtered page reads on until it has ``limit`` matches, reaches
    the head or has read ``MAX_SCAN`` records; ``next`` is then the last seq it read, so a
    filtered page may hold fewer than ``limit`` entries (even none) and still have a ``next``.
    """
    chain = chain_for(repo.db)
    kept: list[dict[str, Any]] = []
    cursor: int | None = after
    while cursor is not None and len(kept) < limit and cursor - after < MAX_SCAN:
        records, cursor = await chain.read(after=cursor, limit=limit)
        for r in records:
            if (case_id is None or r.get("case_id") == case_id) and (
                    outcome is None or (r.get("details") or {}).get("outcome") == outcome):
                kept.append(r)
                if len(kept) == limit:
                    if r["seq"] != records[-1]["seq"] or cursor is not None:
                        cursor = r["seq"]
                    break
    return AuditPage(entries=[AuditRecord.model_validate(exported(r)) for r in kept], next=cursor)


def install_audit(app: FastAPI) -> None:
    """Write an audit entry for every audited request (and log refusals)."""

    @app.middleware("http")
    async def _audit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if not path.startswith(AUDITED):
            return await call_next(request)
        case_id = case_of(path)
        with log_context(case_id=case_id):
            response = await call_next(request)
            p: Principal | None = getattr(request.state, "principal", None)
            status = response.status_code
            deps = getattr(request.app.state, "deps", None)
            repo: Repository | None = getattr(deps, "repo", None)
            if repo is not None:
                at = datetime.now(UTC)
                reason = getattr(request.state, "error", None)
                try:
                    await repo.record({
                        "at": at, "actor": p.sub if p else None, "role": p.role if p else None,
                        "method": request.method, "path": path[:300], "case_id": case_id,
                        "status": status, "outcome": outcome_of(status), "reason": reason,
                    })
                except Exception:  # noqa: BLE001 - a request must not fail because the log did
                    log.exception("could not write the audit entry")
                try:
                    await chain_for(repo.db).append(
                        who=p.sub if p else None, role=p.role if p else None, action=action_of(request),
                        case_id=case_id, at=at,
                        details={"method": request.method, "path": path[:300], "status": status,
                                 "outcome": outcome_of(status),
                                 "reason": str(reason)[:300] if reason is not None else None},
                    )
                except Exception:  # noqa: BLE001 - likewise
                    log.exception("could not append the audit chain record")
            if status >= 400:
                log.info("%s %s refused with %s", request.method, path[:120], status)
        return response
