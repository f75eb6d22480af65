"""One service spec, from which every service's worker, API, preparation and CLI are built.

A service says *what* it is in a ``ServiceSpec``: its name, settings, how to build its
dependencies (repositories over its own database), its indexes and seeds, its Kafka
subscriptions (each with a decoder and a batch handler), its timers, the collections that
carry outboxes, and its API router. This module builds the rest the same way for all five
services:

- **preparation** — the catalogue topics, the indexes and any seed, idempotent, before the
  worker or the API serves;
- **the worker** — a faust app whose agents take records in batches
  (``stream.take_events(n, within)``), decode them, run the handler on the batch
  (``shared.kafka.consume.consume_batch``: bad records to ``<topic>.dlq``, a failing batch
  split so only the record at fault is dead-lettered), then publish what the batch wrote
  (``shared.outbox.publish_written``) before the batch is acknowledged; guarded timers (an
  exception is logged, never kills the worker); an outbox sweep for each outbox collection;
- **the API** — a FastAPI app with one lifespan (database client, publisher, dependencies),
  one ``/health``, one error mapping (``shared.http``), request latency and ``GET /metrics``
  (``shared.metrics``; a worker serves its metrics on ``PARLEY_METRICS_PORT`` when set);
- **the command line** — ``python -m services.<name> worker | api [--port N] | <command>``.

Nothing is built at import time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from shared import metrics, tracing
from shared.http import install_error_handlers
from shared.kafka.admin import ensure_topics
from shared.kafka.consume import Incoming, consume_batch, settle
from shared.kafka.dlq import DEAD_LETTER_COLLECTION, MongoDeadLetterStore
from shared.kafka.producer import Publisher
from shared.logging import install_context_filter, setup_logging
from shared.mongo import make_client, service_database
from shared.outbox import (
    LEDGER_COLLECTION,
    SWEEP_GRACE,
    SendFn,
    Written,
    batch_token,
    publish_written,
    relay_ledgers,
    relay_pending,
)
from shared.settings import CommonSettings
from shared.topics import decode

log = logging.getLogger(__name__)

D = TypeVar("D")  # a service's dependencies
S = TypeVar("S", bound=CommonSettings)


@dataclass
class Runtime(Generic[S]):
    """What a service's dependencies are built from: settings, its database, a sender."""

    settings: S
    client: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    send: SendFn
    mode: str  # "worker", "api" or "prepare"


def envelope_decoder(topic: str) -> Callable[[Incoming], Any]:
    """Decode an enveloped event of ``topic`` into its typed ``Envelope``."""

    def _decode(message: Incoming) -> Any:
        return decode(topic, message.value)

    return _decode


def by_topic(message: Incoming) -> Any:
    """Decode an enveloped event of the topic it came from (for multi-topic subscriptions)."""
    return decode(message.topic, message.value)


@dataclass(frozen=True)
class Subscription(Generic[D]):
    """Records of ``topics`` decoded by ``decode`` and handled in batches by ``handle``.

    ``handle(deps, items)`` gets the decoded items in Kafka order and returns the documents
    it wrote with events to publish (``Written``, a list of them, or None). It must be
    idempotent: Kafka redelivers. ``dead_letter=False`` logs failures instead (for readers
    of dead-letter topics, which must not dead-letter a dead letter).
    """

    name: str
    topics: tuple[str, ...]
    handle: Callable[[D, list[Any]], Awaitable[Any]]
    decode: Callable[[Incoming], Any] | None = None  # default: envelope of the record's topic
    batch_size: int | Callable[[Any], int] = 100  # or settings -> size
    within_s: float = 0.05
    dead_letter: bool = True


@dataclass(frozen=True)
class Timer(Generic[D]):
    """A periodic job; ``run(deps)`` returns what it wrote (published afterwards)."""

    name: str
    interval_s: Callable[[Any], float]  # settings -> seconds
    run: Callable[[D], Awaitable[Any]]


@dataclass(frozen=True)
class ServiceSpec(Generic[S, D]):
    """Everything that makes one service, in one place (see the module docstring)."""

    name: str
    settings: Callable[[], S]
    deps: Callable[[Runtime[S]], D]
    indexes: Callable[[D], Awaitable[object]]
    subscriptions: Sequence[Subscription[D]] = ()
    timers: Sequence[Timer[D]] = ()
    #: collections (names in the service's database) whose outboxes the sweep relays
    outboxes: Sequence[str] = ()
    sweep_interval_s: Callable[[Any], float] = lambda _settings: 5.0
    #: extra one-off preparation after the indexes (seeds); idempotent
    seed: Callable[[D, S], Awaitable[object]] | None = None
    #: the module of the service's HTTP face (imported only when the API is built); it has
    #: ``router`` (an APIRouter) or ``routers(settings)``, and may have
    #: ``install_api(app, settings)`` for middleware or OpenAPI additions. None: no API.
    api: str | None = None
    api_title: str = ""
    api_description: str = ""
    default_port: int = 8000
    #: extra command-line verbs: name -> main(argv) -> exit code
    commands: dict[str, Callable[[list[str]], int]] = field(default_factory=dict)


T = TypeVar("T")


async def each_by_key(items: Sequence[T], key: Callable[[T], Any],
                      handle: Callable[[T], Awaitable[Any]], *, limit: int = 8) -> list[Any]:
    """Handle ``items`` one at a time per key, in order, and different keys concurrently.

    For handlers that write one document per item (a case's timeline, a workspace): a batch
    costs about as many round trips as its busiest key, not as its length. ``limit`` bounds
    the keys in flight (below the process's database pool). Returns the results in the
    items' order.
    """
    groups: dict[Any, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    results: list[Any] = [None] * len(items)
    gate = asyncio.Semaphore(limit)

    async def run(indexes: list[int]) -> None:
        async with gate:
            for i in indexes:
                results[i] = await handle(items[i])

    await asyncio.gather(*(run(ix) for ix in groups.values()))
    return results


def _flatten(result: Any) -> list[Written]:
    if result is None:
        return []
    if isinstance(result, Written):
        return [result]
    out: list[Written] = []
    for item in result:
        out.extend(_flatten(item))
    return out


async def publish_results(result: Any, send: SendFn) -> int:
    """Publish what a handler returned it wrote (``Written``, lists of them, or None)."""
    return await publish_written(_flatten(result), send)


# ------------------------------------------------------------------ preparation


async def prepare(spec: ServiceSpec[S, D], settings: S) -> None:
    """Create the catalogue topics, the service's indexes and seeds (idempotent)."""
    await ensure_topics(settings.kafka)
    client = make_client(settings.mongo)
    try:

        async def no_send(topic: str, key: bytes, value: bytes) -> object:
            raise RuntimeError("nothing is published while preparing")

        runtime = Runtime(settings, client, service_database(client, settings.mongo, spec.name),
                          no_send, "prepare")
        deps = spec.deps(runtime)
        await spec.indexes(deps)
        for name in spec.outboxes:  # the batch clear and the sweep find outboxes by these
            await runtime.db[name].create_index([("outbox_batch", 1)], name="outbox_batch")
            await runtime.db[name].create_index([("ledger_batch", 1)], name="ledger_batch")
        if spec.outboxes:  # a batch's ledger entries are found and deleted by its token
            await runtime.db[LEDGER_COLLECTION].create_index([("token", 1)], name="token")
            try:
                await runtime.db[name].create_index([("outbox_pending", 1)], name="outbox_pending")
            except OperationFailure as exc:  # the service declared it under a name of its own
                if exc.code not in (85, 86):  # IndexOptionsConflict, IndexKeySpecsConflict
                    raise
        if spec.seed is not None:
            await spec.seed(deps, settings)
    finally:
        await client.close()


#: How long a starting worker waits for Kafka and the database before it gives up.
STARTUP_WAIT_S = 300.0


async def prepare_when_ready(spec: ServiceSpec[S, D], settings: S, *, wait_s: float = STARTUP_WAIT_S,
                             sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """``prepare``, retried while Kafka or the database does not answer yet.

    A worker started while the broker or the database is down (a restart during an outage,
    or the whole stack coming up at once) waits for them, saying so, instead of exiting; it
    gives up after ``wait_s`` seconds, and then exits non-zero for its supervisor to see.
    """
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
    from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

    waited, delay = 0.0, 1.0
    while True:
        try:
            await prepare(spec, settings)
            return
        except (KafkaConnectionError, KafkaTimeoutError, ConnectionFailure, ServerSelectionTimeoutError,
                OSError) as exc:
            if waited >= wait_s:
                raise
            log.warning("%s worker waiting for its servers (%s: %s); retrying in %.0f s",
                        spec.name, type(exc).__name__, str(exc)[:200], delay)
            await sleep(delay)
            waited += delay
            delay = min(delay * 2, 10.0)


# ------------------------------------------------------------------ worker


def build_worker(spec: ServiceSpec[S, D], settings: S, **faust_overrides: Any) -> Any:
    """Return the faust app running ``spec``'s subscriptions, timers and outbox sweeps."""
    from shared.kafka.faust_app import faust_dead_letter, faust_send, make_faust_app

    app = make_faust_app(spec.name, settings, **faust_overrides)
    send = faust_send(app, settings)
    prefix = settings.kafka.topic_prefix
    state: dict[str, Any] = {}

    def deps() -> D:
        # made on first use, inside the worker's event loop
        if "deps" not in state:
            client = make_client(settings.mongo)
            runtime = Runtime(settings, client, service_database(client, settings.mongo, spec.name),
                              send, "worker")
            state["client"], state["deps"], state["runtime"] = client, spec.deps(runtime), runtime
        return state["deps"]  # type: ignore[no-any-return]

    def dead_letter_bodies() -> Any:  # records too large for their dead-letter topic
        deps()
        return state["runtime"].db[DEAD_LETTER_COLLECTION]

    dead_letter = faust_dead_letter(app, settings, spec.name,
                                    store=MongoDeadLetterStore(dead_letter_bodies))

    async def published(result: Any) -> None:
        await publish_results(result, send)

    for sub in spec.subscriptions:
        _declare_agent(app, settings, spec, sub, deps, dead_letter, published, prefix)

    def run_timer(timer: Timer[D]) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            with batch_token():
                return await timer.run(deps())

        return run

    def closing() -> bool:
        return bool(state.get("closing"))

    for timer in spec.timers:
        _declare_timer(app, timer.name, timer.interval_s(settings), run_timer(timer), published, spec.name,
                       closing=closing)

    if spec.outboxes:

        async def sweep_outboxes() -> int:
            deps()  # the runtime is made with the dependencies
            runtime: Runtime[S] = state["runtime"]
            total = 0
            for name in spec.outboxes:
                total += await relay_pending(runtime.db[name], send, grace=SWEEP_GRACE)
            total += await relay_ledgers(runtime.db, send, grace=SWEEP_GRACE)
            return total

        _declare_timer(app, "outbox-sweep", spec.sweep_interval_s(settings), sweep_outboxes, None,
                       spec.name, closing=closing)

    async def _logging_context() -> None:
        install_context_filter()

    app.task(_logging_context)

    async def _close_mongo(sender: Any, **_: Any) -> None:
        state["closing"] = True  # a timer still running fails on the closed client: not an error
        client = state.get("client")
        if client is not None:
            await client.close()

    app.on_before_shutdown.connect(_close_mongo)  # type: ignore[arg-type]  # mode types the signal narrowly

    return app


def _declare_agent(app: Any, settings: CommonSettings, spec: ServiceSpec[Any, Any],
                   sub: Subscription[Any], deps: Callable[[], Any], dead_letter: Any,
                   published: Callable[[Any], Awaitable[None]], prefix: str) -> None:
    topic = app.topic(*[settings.kafka.topic(t) for t in sub.topics],
                      key_serializer="raw", value_serializer="raw")
    decoder = sub.decode or by_topic
    batch_size = sub.batch_size(settings) if callable(sub.batch_size) else sub.batch_size

    async def handle(items: list[Any]) -> Any:
        # documents this batch inserts share one outbox clear
        with batch_token(), metrics.handler_timer(spec.name, sub.name):
            return await sub.handle(deps(), items)

    async def agent(stream: Any) -> None:
        async for events in stream.take_events(batch_size, sub.within_s):
            messages = [Incoming.from_faust(e, e.message.topic.removeprefix(prefix)) for e in events]
            if sub.dead_letter:  # settled: handled or dead-lettered somewhere, or not acked
                with tracing.consuming(spec.name, messages):
                    await settle(events, functools.partial(consume_batch, messages, decoder, handle,
                                                           dead_letter=dead_letter, on_result=published))
                continue
            for message in messages:  # a reader of dead letters: log, never dead-letter
                try:
                    with tracing.consuming(spec.name, [message]):
                        await published(await handle([decoder(message)]))
                    metrics.consumed(spec.name, message.topic, "handled")
                except Exception:  # noqa: BLE001 - the record stays in Kafka; logged once here
                    log.exception("could not handle a record from %s", message.topic)
                    metrics.consumed(spec.name, message.topic, "failed")

    agent.__name__ = sub.name.replace(".", "_").replace("-", "_")
    app.agent(topic, name=f"{spec.name}.{sub.name}")(agent)


def _declare_timer(app: Any, name: str, interval: float, run: Callable[[], Awaitable[Any]],
                   published: Callable[[Any], Awaitable[None]] | None, service: str = "", *,
                   closing: Callable[[], bool] = lambda: False) -> None:
    async def timer() -> None:
        try:
            with tracing.timer(service, name):  # a span per run; what it publishes links to it
                result = await run()
                if published is not None:
                    await published(result)
        except Exception:  # noqa: BLE001 - a timer runs again; one failure must not stop the worker
            if closing():  # the worker is stopping and closed its database client under the run
                log.info("timer %s stopped with the worker", name)
                return
            log.exception("timer %s failed; it runs again in %.1fs", name, interval)

    timer.__name__ = f"timer_{name}".replace(".", "_").replace("-", "_")
    timer.__qualname__ = timer.__name__
    app.timer(interval=interval, name=f"{name}")(timer)


# ------------------------------------------------------------------ API


def build_api(spec: ServiceSpec[S, D], settings: S) -> Any:
    """Return the FastAPI app of ``spec``: one lifespan, one /health, one error mapping."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await prepare(spec, settings)
        client = make_client(settings.mongo)
        publisher = Publisher(settings.kafka, client_id=f"parley-{spec.name}-api")
        await publisher.start()
        runtime = Runtime(settings, client, service_database(client, settings.mongo, spec.name),
                          publisher.send, "api")
        app.state.runtime = runtime
        app.state.publisher = publisher
        app.state.settings = settings
        app.state.deps = spec.deps(runtime)
        try:
            yield
        finally:
            await publisher.stop()
            await client.close()

    app = FastAPI(title=spec.api_title or f"Parley {spec.name}",
                  description=spec.api_description, lifespan=lifespan)
    install_error_handlers(app)
    metrics.install_http_metrics(app, spec.name)
    tracing.instrument_api(app)  # a span per request when PARLEY_TRACE_EXPORTER is not none

    @app.get("/health", tags=["ops"], summary="Whether this API and its database answer",
             response_model=None)
    async def health(request: Request) -> JSONResponse:
        """Answer 200 when the database answers a ping, 503 otherwise (no token needed)."""
        try:
            await asyncio.wait_for(request.app.state.runtime.db.command("ping"), timeout=2.0)
        except Exception:  # noqa: BLE001 - any failure means "not healthy"
            return JSONResponse({"status": "unavailable", "service": spec.name, "database": "down"},
                                status_code=503)
        return JSONResponse({"status": "ok", "service": spec.name, "database": "ok"})

    if spec.api is not None:
        module = importlib.import_module(spec.api)
        routers = module.routers(settings) if hasattr(module, "routers") else [module.router]
        for router in routers:
            app.include_router(router)
        if hasattr(module, "install_api"):
            module.install_api(app, settings)
    return app


# ------------------------------------------------------------------ command line


def run(spec: ServiceSpec[Any, Any], argv: list[str] | None = None) -> int:
    """Parse the command line and run the worker, the API or one of ``spec.commands``."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in spec.commands:
        return spec.commands[argv[0]](argv[1:])
    parser = argparse.ArgumentParser(prog=f"python -m services.{spec.name}")
    sub = parser.add_subparsers(dest="mode", required=True)
    if spec.subscriptions or spec.timers or spec.outboxes:
        w = sub.add_parser("worker", help="run the Kafka agents and timers (faust worker)")
        w.add_argument("-l", "--loglevel", default="info")
    if spec.api is not None:
        a = sub.add_parser("api", help="serve the HTTP API (uvicorn)")
        a.add_argument("--host", default="127.0.0.1")
        a.add_argument("--port", type=int, default=spec.default_port)
        a.add_argument("-l", "--loglevel", default="info")
    for name in spec.commands:
        sub.add_parser(name, help=f"{name} (see its own --help)", add_help=False)
    args = parser.parse_args(argv)
    settings = spec.settings()
    try:
        tracing.setup(spec.name)  # PARLEY_TRACE_EXPORTER: none (default), console, file or otlp
    except ValueError as exc:  # an unknown exporter, or otlp without its package
        parser.exit(2, f"{parser.prog}: {exc}\n")

    if args.mode == "worker":
        import faust

        asyncio.run(prepare_when_ready(spec, settings))
        metrics.serve_worker_metrics(settings.metrics_port, worker_index=settings.worker_index)
        faust.Worker(build_worker(spec, settings), loglevel=args.loglevel.upper()).execute_from_commandline()
        return 0

    import uvicorn

    setup_logging(args.loglevel)
    uvicorn.run(build_api(spec, settings), host=args.host, port=args.port, log_config=None)
    return 0
