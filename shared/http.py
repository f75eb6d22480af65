"""HTTP edge shared by every API: one error body, one mapping from domain errors to status.

Every API answers errors as ``{"detail": str, "field": str | null, "errors": [...]}``
(``errors`` lists ``{"field", "problem"}`` for validation failures). The status comes from
the error's class here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shared.errors import (
    Conflict,
    Forbidden,
    InvalidMessage,
    NotFound,
    ParleyError,
    Unauthenticated,
    Unprocessable,
)

#: The HTTP status of each domain error class (first match along the MRO wins).
STATUS: dict[type[ParleyError], int] = {
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unprocessable: 422,
    InvalidMessage: 422,
}


class Problem(BaseModel):
    """One thing wrong with a request's input."""

    field: str = Field(description="Dotted path of the field, e.g. body.customer.phone.")
    problem: str = Field(description="What is wrong with it.")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    detail: str = Field(description="What is wrong, in words.")
    field: str | None = Field(None, description="The field at fault, when there is one.")
    errors: list[Problem] = Field(default_factory=list, description="Per-field problems.")


def status_of(exc: ParleyError) -> int:
    """Return the HTTP status for a domain error (500 for an unmapped one)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 503 if exc.retriable else 500


def error_response(status: int, detail: str, *, field: str | None = None,
                   errors: list[Problem] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """Build an error answer in the one shape."""
    body = ErrorBody(detail=detail, field=field, errors=errors or [])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def validation_problems(exc: RequestValidationError) -> list[Problem]:
    """Turn FastAPI's validation errors into ``Problem`` items (no input values echoed)."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header"))
        problems.append(Problem(field=loc or "(root)", problem=str(err.get("msg", "invalid"))))
    return problems


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors and validation failures to the one error shape."""

    async def _domain(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ParleyError)
        status = status_of(exc)
        request.state.error = exc.message
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        errors = [Problem(**e) for e in getattr(exc, "errors", []) if {"field", "problem"} <= set(e)]
        return error_response(status, exc.message or type(exc).__name__, field=exc.field,
                              errors=errors, headers=headers)

    async def _invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = validation_problems(exc)
        detail = "; ".join(f"{p.field}: {p.problem}" for p in problems)[:2000]
        request.state.error = detail
        return error_response(422, f"invalid request: {detail}", errors=problems)

    app.add_exception_handler(ParleyError, _domain)
    app.add_exception_handler(RequestValidationError, _invalid)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the error body for these statuses."""
    return {s: {"model": ErrorBody} for s in statuses}
