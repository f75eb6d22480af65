"""HTTP edge shared by every API: one error body, one mapping from domain errors to status.

Every API answers errors as ``{"detail": str, "field": str | null, "errors": [...]}``
(``errors`` lists ``{"field", "problem"}`` for validation failures). The status comes from
the error's class here and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    app.add_middleware(RefuseNul)
    _document_validation_errors(app)


#: JSON bodies up to this size are checked for NUL characters (larger ones pass: their
#: routes read them with their own caps and models)
NUL_CHECKED_BODY_BYTES = 1 << 20
_NUL_PROBLEM = "contains a NUL character (U+0000), which cannot be stored"


def _nul_fields(value: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of the strings (keys included) in a JSON value that hold a NUL."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path or "(root)"
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                yield where
            else:
                yield from _nul_fields(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nul_fields(item, f"{path}.{i}" if path else str(i))


class RefuseNul:
    """422 naming the field for a NUL character in the path, a query parameter or a JSON body.

    No store of ours can keep one (PostgreSQL under FerretDB refuses ``\\u0000`` in text, and
    it is never meaningful input), so it is refused at the edge, before a handler reads or
    writes anything, instead of failing as a 500 deep inside a query.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fields = ["(path)"] if "\x00" in scope.get("path", "") else []
        query = scope.get("query_string", b"").decode("latin-1")
        if "%00" in query or "\x00" in query:
            fields += sorted({k for k, v in parse_qsl(query, keep_blank_values=True) if "\x00" in k or "\x00" in v})
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        checked = (not fields and declared.isdigit() and 0 < int(declared) <= NUL_CHECKED_BODY_BYTES
                   and b"json" in headers.get(b"content-type", b""))
        if checked:
            messages: list[Message] = []
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            body = b"".join(m.get("body", b"") for m in messages)
            if b"\\u0000" in body:
                try:
                    fields += list(_nul_fields(json.loads(body)))
                except ValueError:
                    pass  # not JSON: the route's own parsing answers
            receive = _replay(messages, receive)
        if fields:
            answer = error_response(422, f"invalid request: {fields[0]}: {_NUL_PROBLEM}", field=fields[0],
                                    errors=[Problem(field=f, problem=_NUL_PROBLEM) for f in fields])
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out the already-read messages first."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _document_validation_errors(app: FastAPI) -> None:
    """Make the OpenAPI say what a 422 really is: ``ErrorBody``, not FastAPI's default
    ``HTTPValidationError`` (its ``detail`` is a list; ours is text with ``errors`` beside it)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        defined = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, sub in defined.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components.setdefault("ErrorBody", defined)
        body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                answer = operation.get("responses", {}).get("422")
                if answer is not None:
                    answer["content"] = body
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the error body for these statuses."""
    return {s: {"model": ErrorBody} for s in statuses}
