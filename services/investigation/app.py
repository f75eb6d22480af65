"""Investigation's service spec: registered complaints in, findings out; a sweep for paused cases.

Everything else (worker, preparation, health, error mapping, outbox relay) is built from
this spec by ``shared.service``, the same way for every service.

- ``complaint.registered``, in batches → ``handlers.on_registered_batch`` (one read of the
  cases, one records load, one classifier call and one bulk write per batch);
- a timer finishes paused cases whose external appraisal is done (``handlers.sweep_paused``);
- outbox collection ``investigations``;
- the API (``api.py``): the investigator review queue (``review.py``).

Adapters chosen here: the trained classifier as the ``Categoriser`` and the simulated core
systems over the records kept in MongoDB as the ``RecordsStore`` (``ports.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.investigation import handlers, review
from services.investigation.ports import Categoriser
from services.investigation.records import SimulatedCoreSystems
from services.investigation.repository import RecordsRepository, Repository
from services.investigation.settings import Settings, get_settings
from shared.audit import append_pairs
from shared.contracts.envelope import Envelope, utcnow
from shared.contracts.intake import ComplaintRegistered
from shared.outbox import Written
from shared.service import Runtime, ServiceSpec, Subscription, Timer

SERVICE = "investigation"
log = logging.getLogger(__name__)


def load_categoriser(settings: Settings | None = None) -> Categoriser:
    """The trained classifier (``services.investigation.classifier``; trained on first use if missing)."""
    from services.investigation import classifier

    model = classifier.load_or_train()

    def categorise(texts: Sequence[str]) -> list[tuple[str, float]]:
        return [(code, float(confidence)) for code, confidence in model.predict(list(texts))]

    return categorise


@dataclass
class Deps:
    """Investigation's stores, its categoriser (loaded on first use) and settings."""

    repo: Repository
    records_db: RecordsRepository
    records: SimulatedCoreSystems
    settings: Settings
    _categorise: Categoriser | None = field(default=None, repr=False)

    def categorise(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """Classify texts with the trained model (loaded once, on first use)."""
        if self._categorise is None:
            self._categorise = load_categoriser(self.settings)
        return self._categorise(texts)


def build_deps(rt: Runtime[Settings]) -> Deps:
    """Make investigation's dependencies from the runtime."""
    records_db = RecordsRepository(rt.db)
    return Deps(Repository(rt.db), records_db, SimulatedCoreSystems(records_db), rt.settings)


async def on_registered(deps: Deps, events: list[Envelope[ComplaintRegistered]]) -> list[Written]:
    """Investigate a batch of registered complaints (what it found goes on the audit chain)."""
    written = await handlers.on_registered_batch(
        events, repo=deps.repo, records=deps.records, categorise=deps.categorise,
        settings=deps.settings, now=utcnow(),
    )
    await _audit_findings(deps, "investigated", written)
    return written


async def finish_paused(deps: Deps) -> list[Written]:
    """Finish the paused cases whose appraisal is done."""
    written = await handlers.sweep_paused(
        repo=deps.repo, records=deps.records, categorise=deps.categorise,
        settings=deps.settings, now=utcnow(),
    )
    await _audit_findings(deps, "resumed", written)
    return written


#: Who the audit chain names for what the worker decides on its own.
WORKER = "investigation-worker"


def findings_of(written: list[Written]) -> list[tuple[str, str]]:
    """(case id, event type) of each event a batch newly wrote: its findings and pauses.
    A redelivered complaint whose case was stored carries no new events and is not counted."""
    out: list[tuple[str, str]] = []
    for w in written:
        if w.doc_id is None or not w.pending:
            continue
        out.extend((str(w.doc_id), str(item.get("topic"))) for item in w.pending.values()
                   if isinstance(item, dict))
    return sorted(set(out))


async def _audit_findings(deps: Deps, action: str, written: list[Written]) -> None:
    """One chain record per batch (per part, for a large one): the cases and the events written.
    The finding itself is in the case's document and its event; the chain says that and when."""
    await append_pairs(deps.repo.investigations.database, who=WORKER, action=action,
                       pairs=findings_of(written), names=("case_ids", "events"))


async def _indexes(deps: Deps) -> None:
    await deps.repo.ensure_indexes()
    await review.ensure_indexes(deps.repo.investigations)
    await deps.records_db.ensure_indexes()


async def _seed(deps: Deps, settings: Settings) -> None:
    if settings.seed_on_start:
        await deps.records_db.seed_reference(settings)


def _seed_command(argv: list[str]) -> int:
    from services.investigation.seed import main

    return main(argv)


SPEC: ServiceSpec[Settings, Deps] = ServiceSpec(
    name=SERVICE,
    settings=get_settings,
    deps=build_deps,
    indexes=_indexes,
    seed=_seed,
    subscriptions=[
        Subscription("registered", ("complaint.registered",), on_registered, batch_size=200),
    ],
    timers=[Timer("paused", lambda s: s.sweep_interval_s, finish_paused)],
    outboxes=["investigations"],
    sweep_interval_s=lambda s: s.sweep_interval_s,
    commands={"seed": _seed_command},
    api="services.investigation.api",
    api_title="Parley investigation 初步调查与核实",
    api_description="调查员复核 — the investigator review queue: low-confidence findings, evidence, "
    "revised findings with a reason.",
    default_port=8002,
)


async def prepare(settings: Settings | None = None) -> None:
    """Create topics and indexes, and seed the reference records (``shared.service.prepare``)."""
    from shared.service import prepare as prepare_spec

    await prepare_spec(SPEC, settings or get_settings())
