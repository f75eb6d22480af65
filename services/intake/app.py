"""Build intake's faust worker and FastAPI app from settings (no work at import time)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import faust
from fastapi import FastAPI

from services.intake import agents, handlers
from services.intake.repository import IntakeRepository
from services.intake.settings import Settings
from shared.kafka import ensure_topics
from shared.kafka.faust_app import make_faust_app
from shared.mongo import make_client, service_database

log = logging.getLogger(__name__)

SERVICE = "intake"


async def prepare(settings: Settings) -> None:
    """Create the topics and indexes intake needs (idempotent); run before serving."""
    await ensure_topics(settings.kafka)
    client: Any = make_client(settings.mongo)
    try:
        await IntakeRepository(service_database(client, settings.mongo, SERVICE)).ensure_indexes()
    finally:
        await client.close()


def create_worker(settings: Settings) -> faust.App:
    """Return the faust app running intake's agents."""
    datadir = Path(settings.datadir) / f"{settings.kafka.topic_prefix}parley-{SERVICE}"
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = make_faust_app(SERVICE, settings, datadir=datadir, broker_commit_interval=1.0)
    client: Any = make_client(settings.mongo)
    repo = IntakeRepository(service_database(client, settings.mongo, SERVICE))
    agents.register(app, settings, agents.Deps(repo=repo, locks=handlers.CustomerLocks()))

    @app.on_before_shutdown.connect
    async def _close_mongo(sender: faust.App, **_: Any) -> None:
        await client.close()

    return app


def worker_factory(settings: Settings) -> faust.App:
    """Prepare topics and indexes, then build the worker (for ``shared.service.run``)."""
    asyncio.run(prepare(settings))
    return create_worker(settings)


def create_api(settings: Settings) -> FastAPI:
    """Return intake's FastAPI app."""
    from services.intake.api import build_api

    return build_api(settings)
