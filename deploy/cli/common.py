"""What every command shares: the console, connection settings, errors that say what to do."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

REPO = Path(__file__).resolve().parents[2]


def var_dir() -> Path:
    """Where the CLI keeps what it must remember between runs (import ledgers, replay
    records): ``PARLEY_VAR_DIR``, default ``var/`` in the repository."""
    return Path(os.environ.get("PARLEY_VAR_DIR") or REPO / "var")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

T = TypeVar("T")


class CliError(Exception):
    """A problem the user has to fix; the message says what happened and what to do next."""


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; a ``CliError`` becomes a message and exit status 1."""
    try:
        return asyncio.run(coro)
    except CliError as exc:
        fail(str(exc))


def kafka_settings() -> Any:
    """``PARLEY_KAFKA_*`` settings (shared.settings)."""
    from shared.settings import KafkaSettings

    return KafkaSettings()


def mongo_settings() -> Any:
    """``PARLEY_MONGO_*`` settings (shared.settings)."""
    from shared.settings import MongoSettings

    return MongoSettings()


def kafka_down(bootstrap: str) -> CliError:
    return CliError(
        f"Kafka does not answer at {bootstrap} — start it with `parley stack up`, "
        "or point PARLEY_KAFKA_BOOTSTRAP at a running broker."
    )


def api_url(service: str) -> str:
    """The base URL of a service's API: ``PARLEY_<SERVICE>_URL``, else the local port of
    deploy/local/services.py (``PARLEY_<SERVICE>_PORT``)."""
    explicit = os.environ.get(f"PARLEY_{service.upper()}_URL")
    if explicit:
        return explicit.rstrip("/")
    from deploy.local.services import PROCS

    for proc in PROCS:
        if proc.service == service and proc.mode == "api":
            return f"http://127.0.0.1:{proc.port}"
    raise CliError(f"{service} has no API")


def python() -> str:
    return sys.executable
