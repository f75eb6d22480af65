"""Intake's HTTP face: ``POST /complaints`` for channels without Kafka, and the read side.

``POST /complaints`` validates the same ``ComplaintSubmission`` the worker reads and
publishes it to ``complaint.received`` (key = channel complaint id), so every complaint is
registered by one path, the worker. It then waits briefly (``api_register_wait_s``) for the
registration and answers 202 with the case number, or 202 with a status URL when the worker
has not finished yet. A body whose ``Content-Type`` is not ``application/json`` gets 415
before it is read; bad input gets 422 with one entry per field; a body above
``max_body_bytes`` gets 413 before it is read whole.

Every route needs a bearer token (``shared.auth``, ``docs/security.md``): submitting takes a
``channel`` or a staff role that acts (auditors only read); the status of a submission is for
the channel that polls it and staff; the case reads are staff-only (they show masked
personal data, and a customer follows their case in negotiation's customer API). No or a bad
token is 401, another role 403, both before the body is read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from services.intake.handlers import complaint_id_for
from services.intake.models import (
    Accepted,
    CaseComplaint,
    CasePage,
    CaseView,
    ComplaintSubmission,
    Registration,
    decode_submission,
)
from services.intake.repository import Doc, IntakeRepository
from services.intake.settings import Settings
from shared import tracing
from shared.auth import READ_ONLY, STAFF, Principal, Role, install_auth, require
from shared.contracts.common import Channel
from shared.errors import InvalidMessage, NotFound
from shared.http import Problem, error_response

log = logging.getLogger(__name__)

RECEIVED = "complaint.received"


class BodyTooLarge(Exception):
    """The request body is larger than ``max_body_bytes``."""


def _problem(status: int, errors: list[dict[str, str]], message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message, "errors": errors})


def install_api(app: FastAPI, settings: Settings) -> None:
    """Check the token settings (production refuses unsafe ones) and add intake's OpenAPI body
    schema for ``POST /complaints`` to the spec-built app."""
    install_auth(app, settings)
    generate = app.openapi  # the shared one (error bodies documented)
    app.openapi = lambda: _openapi(app, generate)  # type: ignore[method-assign]


def _openapi(app: FastAPI, generate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI document, with ``ComplaintSubmission`` as the body of ``POST /complaints``.

    The route reads the raw body itself (size cap, byte-level errors), so FastAPI cannot
    infer the schema; it is added here with its nested models as components.
    """
    if app.openapi_schema:
        return app.openapi_schema
    schema = generate()
    submission = ComplaintSubmission.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(submission.pop("$defs", {}))
    components["ComplaintSubmission"] = submission
    schema["paths"]["/complaints"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ComplaintSubmission"}}},
    }
    app.openapi_schema = schema
    return schema


router = APIRouter()

#: who may submit a complaint: the channels, and staff who take one in (not read-only staff)
SUBMITTERS: tuple[Role, ...] = ("channel", *sorted(STAFF - READ_ONLY))
#: who may read a submission's status: the channel polling it, and staff
STATUS_READERS: tuple[Role, ...] = ("channel", *sorted(STAFF))

Submitter = Annotated[Principal, Depends(require(*SUBMITTERS))]
StatusReader = Annotated[Principal, Depends(require(*STATUS_READERS))]
Staff = Annotated[Principal, Depends(require(*sorted(STAFF)))]


def repo_of(request: Request) -> IntakeRepository:
    """The app's repository."""
    repo: IntakeRepository = request.app.state.deps.repo
    return repo


def settings_of(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` header says JSON: ``application/json``, with an optional
    ``charset`` that must be UTF-8 (JSON's only encoding here)."""
    if not content_type:
        return False
    media, *params = (part.strip().lower() for part in content_type.split(";"))
    if media != "application/json":
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing more than ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/complaints",
    status_code=202,
    response_model=Accepted,
    responses={413: {"description": "body too large"}, 415: {"description": "body is not application/json"},
               422: {"description": "invalid field(s)"}},
)
async def submit_complaint(request: Request, p: Submitter) -> JSONResponse:
    """Accept a complaint from a channel without Kafka; the worker registers it."""
    settings = settings_of(request)
    if not is_json(request.headers.get("content-type")):
        problem = "must be application/json (UTF-8)"
        return error_response(415, "request body must be application/json", field="content-type",
                              errors=[Problem(field="content-type", problem=problem)])
    try:
        raw = await read_body(request, settings.max_body_bytes)
    except BodyTooLarge:
        return _problem(413, [{"field": "(body)", "problem": f"larger than {settings.max_body_bytes} bytes"}],
                        "request body too large")
    try:
        submission = decode_submission(raw)
    except InvalidMessage as exc:
        errors = exc.errors or [{"field": "(body)", "problem": exc.reason}]
        return _problem(422, errors, "invalid complaint")
    key = submission.channel_complaint_id.encode()
    value = submission.model_dump_json(exclude_none=True).encode()
    # the complaint's trace (shared.tracing) begins here: its id is the one intake derives
    trace = tracing.record_headers(RECEIVED, complaint_id_for(submission.key()), f"received:{submission.key()}")
    await request.app.state.publisher.send_raw(RECEIVED, value, key=key, headers=trace)
    status_url = f"/complaints/{submission.channel.value}/{submission.channel_complaint_id}"
    registration = await _wait_for_registration(
        repo_of(request), submission.key(), settings.api_register_wait_s
    )
    accepted = Accepted(
        status="registered" if registration else "accepted",
        channel=submission.channel, channel_complaint_id=submission.channel_complaint_id,
        status_url=status_url,
        case_id=registration.case_id if registration else None,
        case_number=registration.case_number if registration else None,
        deadline_at=registration.deadline_at if registration else None,
    )
    return JSONResponse(status_code=202, content=jsonable_encoder(accepted),
                        headers={"Location": status_url})


async def _wait_for_registration(repo: IntakeRepository, key: str, wait_s: float) -> Registration | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        doc = await repo.find_complaint(key)
        if doc is not None:
            return _registration_of(doc)
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(0.1)


def _registration_of(doc: Doc) -> Registration:
    return Registration(
        complaint_id=doc["complaint_id"], channel=doc["channel"],
        channel_complaint_id=doc["channel_complaint_id"], case_id=doc["case_id"],
        case_number=doc["case_number"], outcome=doc["role"], deadline_at=doc["deadline_at"],
        priority=doc["priority"], clock_restarted=doc.get("clock_restarted", False),
    )


@router.get("/complaints/{channel}/{channel_complaint_id}", response_model=Registration)
async def complaint_status(
    channel: Channel, channel_complaint_id: str, p: StatusReader,
    repo: Annotated[IntakeRepository, Depends(repo_of)],
) -> Registration:
    """Return how a channel complaint was registered (404 while not yet registered)."""
    doc = await repo.find_complaint(f"{channel.value}:{channel_complaint_id}")
    if doc is None:
        raise NotFound("complaint not registered (yet)")
    return _registration_of(doc)


def case_view(doc: Doc) -> CaseView:
    """Turn a case document into its (masked) view."""
    return CaseView(
        case_id=doc["_id"], case_number=doc["case_number"], status=doc["status"],
        customer_id=doc["customer_id"], customer_name_masked=doc.get("customer_name_masked", ""),
        customer_phone_masked=doc.get("customer_phone_masked", ""),
        customer_id_number_masked=doc.get("customer_id_number_masked", ""),
        channel=doc["channel"], channels=doc.get("channels", [doc["channel"]]),
        product=doc["product"], language=doc["language"], matter_ref=doc.get("matter_ref"),
        received_at=doc["received_at"], registered_at=doc["registered_at"],
        deadline_at=doc["deadline_at"], priority=doc["priority"],
        priority_reasons=doc.get("priority_reasons", []),
        amount_disputed=doc.get("amount_disputed"), is_repeat=doc.get("is_repeat", False),
        linked_case_ids=doc.get("linked_case_ids", []),
        complaints=[CaseComplaint(**c) for c in doc.get("complaints", [])],
        timeline=doc.get("timeline", []), closed_at=doc.get("closed_at"), outcome=doc.get("outcome"),
    )


@router.get("/cases/{case_ref}", response_model=CaseView)
async def get_case(case_ref: str, p: Staff, repo: Annotated[IntakeRepository, Depends(repo_of)]) -> CaseView:
    """Return a case by id (or by case number, ``TS-…``)."""
    if len(case_ref) > 64:
        raise NotFound("no such case")
    doc = await repo.find_case(case_ref) or await repo.find_case_by_number(case_ref)
    if doc is None:
        raise NotFound("no such case")
    return case_view(doc)


@router.get("/cases", response_model=CasePage)
async def search_cases(
    request: Request,
    p: Staff,
    repo: Annotated[IntakeRepository, Depends(repo_of)],
    customer_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")] = None,
    status: Annotated[str | None, Query(pattern=r"^(open|closed)$")] = None,
    channel: Channel | None = None,
    received_from: AwareDatetime | None = None,
    received_to: AwareDatetime | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1)] = 20,
) -> CasePage:
    """Search cases by customer, status, channel and receipt date range; newest first."""
    limit = settings_of(request).page_size_max
    if page_size > limit:
        raise RequestValidationError(
            [{"loc": ("query", "page_size"), "msg": f"must be at most {limit}", "type": "value_error"}]
        )
    query: Doc = {}
    if customer_id:
        query["customer_id"] = customer_id
    if status:
        query["status"] = status
    if channel:
        query["channels"] = channel.value
    date_range: dict[str, datetime] = {}
    if received_from:
        date_range["$gte"] = received_from
    if received_to:
        date_range["$lt"] = received_to
    if date_range:
        query["received_at"] = date_range
    items, total = await repo.search_cases(query, skip=(page - 1) * page_size, limit=page_size)
    return CasePage(items=[case_view(d) for d in items], total=total, page=page, page_size=page_size)

