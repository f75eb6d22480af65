"""The communication log: messages, call notes and meeting notes on a case."""

from __future__ import annotations

from datetime import datetime

from services.negotiation.auth import Principal
from services.negotiation.handlers.common import (
    actor,
    check_version,
    load_case,
    mark,
    require_staff_action,
)
from services.negotiation.handlers.ports import Store
from services.negotiation.models import Message, Workspace


async def log_message(
    case_id: str, *, body: str, direction: str, channel: str, p: Principal,
    expected_version: int | None, repo: Store, now: datetime,
) -> Workspace:
    """Add a message, call note or meeting note to the communication log."""
    ws = await load_case(case_id, p, repo=repo)
    if p.role == "customer":
        direction, channel = "inbound", "in_app"
    else:
        await require_staff_action(ws, p, repo=repo, needs_open=False)
    check_version(ws, expected_version)
    ws.messages.append(Message(
        message_id=f"M{len(ws.messages) + 1:04d}", direction=direction, channel=channel,
        body=body, author=actor(p), at=now,
    ))
    mark(ws, now, f"message ({channel}, {direction})", by=p.sub)
    return await repo.save(ws, ws.version, [])
