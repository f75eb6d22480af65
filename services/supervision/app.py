"""Build supervision's faust worker and FastAPI app from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import faust
from fastapi import FastAPI

from services.supervision import agents
from services.supervision.api import router
from services.supervision.repository import Repository
from services.supervision.settings import Settings, get_settings
from shared.kafka import make_faust_app
from shared.mongo import make_client, service_database
from shared.service import prepare_service

SERVICE = "supervision"


async def prepare(settings: Settings | None = None) -> None:
    """Create the topics and indexes supervision relies on (idempotent)."""
    await prepare_service(settings or get_settings(), SERVICE, lambda db: Repository(db).ensure_indexes())


def create_worker(settings: Settings | None = None) -> faust.App:
    """Return the faust app with supervision's agents registered."""
    settings = settings or get_settings()
    app = make_faust_app(SERVICE, settings)
    client = make_client(settings.mongo)
    agents.register(app, settings, repo=Repository(service_database(client, settings.mongo, SERVICE)))
    return app


def create_api(settings: Settings | None = None) -> FastAPI:
    """Return the supervision API."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_client(settings.mongo)
        app.state.repo = Repository(service_database(client, settings.mongo, SERVICE))
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(
        title="Parley supervision",
        description="案件时限、告警与死信 — deadlines, alerts and dead letters across every stream.",
        lifespan=lifespan,
    )
    app.include_router(router)
    return app
