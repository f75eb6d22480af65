"""No head-of-line blocking: a ``case.closed`` behind a backlog of 2,000 complaints is applied
before the backlog drains (issue 8). Real worker process, real broker and database.

The backlog and the closure are published while the worker is down, so when it starts both
topics are full at once: the closure must not wait for the 2,000 registrations.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.intake.repository import IntakeRepository
from services.intake.settings import Settings
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from tests.integration.intake.realdata import real_complaints
from tests.integration.intake.support import encode, produce
from tests.support.eventually import eventually
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration

BACKLOG = 2000


async def test_case_closed_behind_a_backlog_is_applied_before_the_backlog_drains(
    intake_settings: Settings, repo: IntakeRepository, processes: Callable[..., ServiceProcess]
) -> None:
    [first, *backlog] = real_complaints(1 + BACKLOG * 6 // 10, BACKLOG * 4 // 10, prefix="HOL")
    worker = processes("worker", log_name="worker-1")
    await produce(intake_settings, "complaint.received",
                  [(first["channel_complaint_id"].encode(), encode(first))])
    key = f"{first['channel']}:{first['channel_complaint_id']}"
    record = await eventually(lambda: repo.find_complaint(key), timeout=120, what="the first registration")
    case_id = record["case_id"]
    worker.stop()

    await produce(intake_settings, "complaint.received",
                  [(c["channel_complaint_id"].encode(), encode(c)) for c in backlog])
    closed = Envelope.wrap(CaseClosed(case_number=record["case_number"], outcome="resolved"),
                           case_id=case_id, producer="followup")
    await produce(intake_settings, "case.closed", [(closed.key(), closed.to_bytes())])

    processes("worker", log_name="worker-2")

    async def closed_case() -> dict | None:  # type: ignore[type-arg]
        case = await repo.find_case(case_id)
        return case if case and case["status"] == "closed" else None

    await eventually(closed_case, timeout=120, interval=0.2, what="the case closed")
    registered_when_closed = await repo.complaints.count_documents({})
    assert registered_when_closed < 1 + BACKLOG, (
        f"the closure waited for the whole backlog ({registered_when_closed} registered)"
    )

