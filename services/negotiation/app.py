"""Build negotiation's faust worker and FastAPI app from settings (nothing at import time)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import faust
from fastapi import FastAPI

from services.negotiation import agents, api, fairness
from services.negotiation.repository import Repository
from services.negotiation.settings import Settings
from shared.kafka import Publisher, ensure_topics, make_faust_app
from shared.mongo import make_client, service_database

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Topics negotiation reads or writes (with their dead-letter topics).
TOPICS = [
    "complaint.registered", "investigation.completed", "negotiation.started", "negotiation.failed",
    "settlement.proposed", "settlement.approved", "settlement.agreed", "settlement.rejected",
    "case.escalated", "customer.notified",
]


def topic_names() -> list[str]:
    """Return the logical topics this service touches, with their dead-letter topics."""
    return TOPICS + [f"{t}.dlq" for t in TOPICS]


def create_worker(settings: Settings) -> faust.App:
    """Return the faust worker: opens workspaces, relays outboxes, watches deadlines."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # faust runs on this loop after topics are made
    loop.run_until_complete(ensure_topics(settings.kafka, topic_names()))
    app = make_faust_app("negotiation", settings)
    agents.register(app, settings, agents.WorkerDeps(settings))
    return app


def shared_data_dir(settings: Settings) -> Path:
    """Return the folder of the shared data sets."""
    return Path(settings.shared_data) if settings.shared_data else REPO_ROOT.parent / "shared" / "data"


async def seed_fairness(repo: Repository, settings: Settings) -> int:
    """Seed the fairness reference set once (deterministic)."""
    path = shared_data_dir(settings) / "cfpb-2023-sample.jsonl.gz"
    if path.exists():
        rates = await asyncio.to_thread(fairness.cfpb_relief_rates, path)
    else:
        log.warning("CFPB sample not found; seeding with the fallback relief rates")
        rates = fairness.FALLBACK_RELIEF
    docs = list(fairness.seed_reference(rates, settings.fairness_seed_per_cell))
    return await repo.seed_refs(docs)


def create_api(settings: Settings) -> FastAPI:
    """Return the FastAPI app (agents' API and customer API)."""
    deps = api.Deps(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_client(settings.mongo)
        repo = Repository(service_database(client, settings.mongo, "negotiation"))
        await repo.ensure_indexes()
        seeded = await seed_fairness(repo, settings)
        if seeded:
            log.info("seeded %d reference settlements", seeded)
        await ensure_topics(settings.kafka, topic_names())
        publisher = Publisher(settings.kafka, client_id="parley-negotiation-api")
        await publisher.start()
        deps.repo, deps.send = repo, publisher.send
        try:
            yield
        finally:
            await publisher.stop()
            await client.close()

    app = FastAPI(
        title="Parley negotiation",
        version="1.0.0",
        description=(
            "协商沟通与解决方案制定 — the agents' API (workspaces, communication log, typed offers "
            "within authority, fairness check, approval chain, agreement, escalation with a dossier) "
            "and the customer API under /customer (status, next step, deadline and open offers in "
            "plain words; zh-CN by default, `Accept-Language: en` for English). Every endpoint but "
            "/health needs a bearer JWT."
        ),
        lifespan=lifespan,
    )
    app.state.deps = deps
    api.install(app)
    return app
