"""Build follow-up's faust worker and FastAPI app from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import faust
from fastapi import FastAPI

from services.followup import agents
from services.followup.api import problem_handlers, router
from services.followup.repository import Repository
from services.followup.settings import Settings, get_settings
from shared.kafka import Publisher, make_faust_app
from shared.mongo import make_client, service_database
from shared.service import prepare_service

SERVICE = "followup"


async def prepare(settings: Settings | None = None) -> None:
    """Create the topics and indexes follow-up relies on (idempotent)."""
    await prepare_service(settings or get_settings(), SERVICE, lambda db: Repository(db).ensure_indexes())


def create_worker(settings: Settings | None = None) -> faust.App:
    """Return the faust app with follow-up's agents registered."""
    settings = settings or get_settings()
    app = make_faust_app(SERVICE, settings)
    client = make_client(settings.mongo)
    agents.register(app, settings, repo=Repository(service_database(client, settings.mongo, SERVICE)))
    return app


def create_api(settings: Settings | None = None) -> FastAPI:
    """Return the follow-up API."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_client(settings.mongo)
        app.state.repo = Repository(service_database(client, settings.mongo, SERVICE))
        app.state.publisher = Publisher(settings.kafka, client_id="parley-followup-api")
        await app.state.publisher.start()
        try:
            yield
        finally:
            await app.state.publisher.stop()
            await client.close()

    app = FastAPI(
        title="Parley follow-up",
        description="施行与监督、回访 — carry out agreed settlements and call the customer back.",
        lifespan=lifespan,
        exception_handlers=problem_handlers(),  # type: ignore[arg-type]
    )
    app.include_router(router)
    return app
