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
- audit chain (``shared.audit``, issue 11), who ``intake-worker``, role ``system``: one record
  per registration batch that registered anything (``registered``: the complaint keys and
  their case ids, several records only when a large batch overflows one record's details),
  one per case closed (``case_closed``) and one per retention sweep that erased anything
  (``originals_erased``: how many, which cases). A failed append is logged, never raised:
  the change it records stands.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from services.intake import handlers
from services.intake.models import ComplaintSubmission, decode_submission
from services.intake.repository import CaseNumbers, IntakeRepository
from services.intake.settings import Settings, get_settings
from shared.audit import append_pairs, append_quietly, in_parts
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.errors import InvalidMessage
from shared.kafka.consume import Incoming
from shared.outbox import Written
from shared.service import Runtime, ServiceSpec, Subscription, Timer

SERVICE = "intake"

#: Who the audit chain names for what the worker does on its own.
WORKER = "intake-worker"

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    """Register a batch of channel complaints; their events are published after the batch.

    What the batch newly registered goes on the audit chain (also when a conflicting
    duplicate in it is refused after the rest was registered).
    """
    try:
        written = await handlers.register_batch(
            submissions, repo=deps.repo, settings=deps.settings, numbers=deps.numbers
        )
    except handlers.ConflictingDuplicate as exc:
        await _audit_registered(deps, exc.result)
        raise
    await _audit_registered(deps, written)
    return written


def registered_pairs(written: list[Written]) -> list[tuple[str, str]]:
    """(complaint key, case id) of each complaint a batch newly registered.

    A new record's ``Written`` carries its events (``pending``, keyed by case id); a
    redelivered complaint found registered carries none and is not counted again.
    """
    pairs: list[tuple[str, str]] = []
    for w in written:
        if w.doc_id is None or not w.pending:
            continue
        case_ids = {str(item.get("key")) for item in w.pending.values() if isinstance(item, Mapping)}
        pairs.extend((str(w.doc_id), case_id) for case_id in sorted(case_ids))
    return pairs


#: ``shared.audit.in_parts`` (kept under this name for intake's callers)
audit_parts = in_parts


async def _audit_registered(deps: Deps, written: list[Written]) -> None:
    await append_pairs(deps.repo.db, who=WORKER, action="registered", pairs=registered_pairs(written),
                       names=("keys", "case_ids"))


async def _audit(deps: Deps, action: str, case_id: str | None, details: dict[str, Any]) -> None:
    """Put what the worker did on intake's audit chain (logged, not raised, when it fails)."""
    await append_quietly(deps.repo.db, who=WORKER, role="system", action=action, case_id=case_id,
                         details=details)


class _NotingErasures:
    """The repository as the retention sweep sees it, noting each case whose originals it erased."""

    def __init__(self, repo: IntakeRepository) -> None:
        self._repo = repo
        self.case_ids: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    async def originals_erased(self, case_id: str, **kwargs: Any) -> None:
        await self._repo.originals_erased(case_id, **kwargs)
        self.case_ids.append(case_id)


async def erase_expired(deps: Deps) -> None:
    """Timer: erase the originals whose retention period after closing has ended (audited
    when anything was erased)."""
    noting = _NotingErasures(deps.repo)
    try:
        await handlers.erase_expired_originals(repo=cast(IntakeRepository, noting), settings=deps.settings)
    finally:
        if noting.case_ids:
            for part in audit_parts(noting.case_ids):
                await _audit(deps, "originals_erased", None, {"count": len(part), "case_ids": part})


async def rotate_keys(deps: Deps) -> None:
    """Timer: re-encrypt originals still under an old key, in small batches."""
    await deps.repo.rotate_personal_data()


async def on_closed(deps: Deps, events: list[Envelope[CaseClosed]]) -> None:
    """Mark cases closed (idempotent); a case intake never registered is bad input."""
    for event in events:
        if await handlers.close_case(event, repo=deps.repo):
            await _audit(deps, "case_closed", event.case_id,
                         {"outcome": event.payload.outcome, "event_id": str(event.event_id)})
        elif await deps.repo.find_case(event.case_id) is None:
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
