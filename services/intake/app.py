"""Intake's service spec: what it consumes, what it stores, its timers and its API.

Everything else (worker, API app, preparation, health, error mapping, outbox relay) is
built from this spec by ``shared.service``, the same way for every service.

- ``complaint.received`` (channel JSON, key = channel complaint id), in batches →
  ``handlers.register_batch``; bad input goes to ``complaint.received.dlq``.
- ``case.closed`` → ``handlers.close_case``, so later complaints about the matter are
  recognised as repeats.
- outbox collection ``complaints``: registration events are published after each batch,
  and a sweep publishes what a crashed worker left behind.
- timers: ``retention`` (``handlers.erase_expired_originals``: originals of cases closed more
  than ``PARLEY_INTAKE_RETENTION_DAYS`` ago are erased) and ``rotation`` (originals still
  under an old key are re-encrypted under ``PARLEY_CRYPTO_ACTIVE_KEY``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.intake import handlers
from services.intake.models import ComplaintSubmission, decode_submission
from services.intake.repository import CaseNumbers, IntakeRepository
from services.intake.settings import Settings, get_settings
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.errors import InvalidMessage
from shared.kafka.consume import Incoming
from shared.outbox import Written
from shared.service import Runtime, ServiceSpec, Subscription, Timer

SERVICE = "intake"


@dataclass
class Deps:
    """What intake's handlers need: its store and settings (one per process)."""

    repo: IntakeRepository
    settings: Settings
    numbers: CaseNumbers


def build_deps(rt: Runtime[Settings]) -> Deps:
    """Make intake's dependencies from the runtime (one case-number allocator per process).

    The key ring comes from the settings; production refuses the development ring here, so
    neither the worker nor the API starts without real keys.
    """
    repo = IntakeRepository(rt.db, keyring=rt.settings.crypto.keyring(rt.settings.environment))
    return Deps(repo, rt.settings, CaseNumbers(repo))


def _decode_submission(message: Incoming) -> Any:
    return decode_submission(message.value)


async def on_received(deps: Deps, submissions: list[ComplaintSubmission]) -> list[Written]:
    """Register a batch of channel complaints; their events are published after the batch."""
    return await handlers.register_batch(
        submissions, repo=deps.repo, settings=deps.settings, numbers=deps.numbers
    )


async def erase_expired(deps: Deps) -> None:
    """Timer: erase the originals whose retention period after closing has ended."""
    await handlers.erase_expired_originals(repo=deps.repo, settings=deps.settings)


async def rotate_keys(deps: Deps) -> None:
    """Timer: re-encrypt originals still under an old key, in small batches."""
    await deps.repo.rotate_personal_data()


async def on_closed(deps: Deps, events: list[Envelope[CaseClosed]]) -> None:
    """Mark cases closed (idempotent); a case intake never registered is bad input."""
    for event in events:
        if not await handlers.close_case(event, repo=deps.repo):
            if await deps.repo.find_case(event.case_id) is None:
                raise InvalidMessage("case_id is not a case intake registered")


SPEC: ServiceSpec[Settings, Deps] = ServiceSpec(
    name=SERVICE,
    settings=get_settings,
    deps=build_deps,
    indexes=lambda deps: deps.repo.ensure_indexes(),
    subscriptions=[
        Subscription("register", ("complaint.received",), on_received,
                     decode=_decode_submission, batch_size=lambda s: s.register_batch_size,
                     within_s=0.05),
        Subscription("case-closed", ("case.closed",), on_closed, batch_size=100),
    ],
    timers=[
        Timer("retention", lambda s: s.retention_sweep_interval_s, erase_expired),
        Timer("rotation", lambda s: s.rotation_interval_s, rotate_keys),
    ],
    outboxes=["complaints"],
    sweep_interval_s=lambda s: s.relay_interval_s,
    api="services.intake.api",
    api_title="Parley intake 投诉受理",
    api_description=(
        "投诉受理 — channels without Kafka submit complaints here (`POST /complaints`); the "
        "worker registers every complaint by one path. Staff read cases and registrations."
    ),
    default_port=8001,
)
