"""Run a service process: ``python -m services.<name> worker`` or ``... api --port N``.

A service's ``__main__`` hands this its factories; nothing is built at import time. The
worker is a faust worker (the service's Kafka agents); the API is a FastAPI app under
uvicorn. Both log through ``shared.logging`` (case ids on every line, personal data masked).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shared.kafka.admin import ensure_topics
from shared.logging import install_context_filter, setup_logging
from shared.mongo import make_client, service_database
from shared.settings import CommonSettings

log = logging.getLogger(__name__)


def run(
    service: str,
    *,
    worker: Callable[[], Any] | None = None,
    api: Callable[[], Any] | None = None,
    default_port: int = 8000,
    argv: list[str] | None = None,
) -> int:
    """Parse the command line and run the worker or the API of ``service``."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    sub = parser.add_subparsers(dest="mode", required=True)
    if worker is not None:
        w = sub.add_parser("worker", help="run the Kafka agents (faust worker)")
        w.add_argument("-l", "--loglevel", default="info")
    if api is not None:
        a = sub.add_parser("api", help="serve the HTTP API (uvicorn)")
        a.add_argument("--host", default="127.0.0.1")
        a.add_argument("--port", type=int, default=default_port)
        a.add_argument("-l", "--loglevel", default="info")
    args = parser.parse_args(argv)

    if args.mode == "worker":
        import faust

        app = worker()  # type: ignore[misc]

        @app.task
        async def _logging_context() -> None:
            install_context_filter()

        faust.Worker(app, loglevel=args.loglevel.upper()).execute_from_commandline()
        return 0

    import uvicorn

    setup_logging(args.loglevel)
    uvicorn.run(api(), host=args.host, port=args.port, log_config=None)  # type: ignore[misc]
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run a service: python -m services.<name> worker|api")


async def prepare_service(
    settings: CommonSettings,
    service: str,
    ensure_indexes: Callable[[AsyncDatabase[dict[str, Any]]], Awaitable[object]],
) -> None:
    """Create the catalogue topics and the service's indexes before its worker starts."""
    await ensure_topics(settings.kafka)
    client = make_client(settings.mongo)
    try:
        await ensure_indexes(service_database(client, settings.mongo, service))
    finally:
        await client.close()
