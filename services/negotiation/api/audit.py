"""The append-only audit trail of the HTTP API: every request to a case, the directory, the
tools or the trail itself, with who asked, the answer's status and, for a refusal, why.

Entries are inserted, never updated or deleted. A request never fails because its entry
could not be written (that is logged instead).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response

from services.negotiation.auth import Principal
from services.negotiation.repository import Repository
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
                try:
                    await repo.record({
                        "at": datetime.now(UTC), "actor": p.sub if p else None, "role": p.role if p else None,
                        "method": request.method, "path": path[:300], "case_id": case_id,
                        "status": status, "outcome": outcome_of(status),
                        "reason": getattr(request.state, "error", None),
                    })
                except Exception:  # noqa: BLE001 - a request must not fail because the log did
                    log.exception("could not write the audit entry")
            if status >= 400:
                log.info("%s %s refused with %s", request.method, path[:120], status)
        return response
