"""Build investigation's faust worker from settings, with the categoriser wired in."""

from __future__ import annotations

import logging

import faust

from services.investigation import agents
from services.investigation.handlers import Categoriser
from services.investigation.repository import RecordsRepository, Repository
from services.investigation.settings import Settings, get_settings
from shared.kafka import ensure_topics, make_faust_app
from shared.mongo import make_client, service_database

SERVICE = "investigation"
log = logging.getLogger(__name__)


def load_categoriser(settings: Settings) -> Categoriser:
    """The trained classifier (``services.investigation.classifier``; trained on first use if missing)."""
    from services.investigation import classifier

    model = classifier.load_or_train()

    def categorise(text: str) -> tuple[str, float]:
        [(code, confidence)] = model.predict([text])
        return code, float(confidence)

    return categorise


async def prepare(settings: Settings | None = None) -> None:
    """Create topics and indexes, and seed the reference records when empty (idempotent)."""
    settings = settings or get_settings()
    await ensure_topics(settings.kafka)
    client = make_client(settings.mongo)
    try:
        db = service_database(client, settings.mongo, SERVICE)
        await Repository(db).ensure_indexes()
        records = RecordsRepository(db)
        await records.ensure_indexes()
        if settings.seed_on_start:
            await records.seed_reference(settings)
    finally:
        await client.close()


def create_worker(settings: Settings | None = None, categorise: Categoriser | None = None) -> faust.App:
    """Return the faust app with investigation's agent and sweep registered."""
    settings = settings or get_settings()
    app = make_faust_app(SERVICE, settings)
    client = make_client(settings.mongo)
    db = service_database(client, settings.mongo, SERVICE)
    agents.register(app, settings, repo=Repository(db), records=RecordsRepository(db),
                    categorise=categorise or load_categoriser(settings))
    return app
