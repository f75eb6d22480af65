"""``parley stack up|down|status``: the local Kafka + FerretDB (deploy/local/stack.py)."""

# ruff: noqa: B008 - typer declares options as argument defaults
from __future__ import annotations

import subprocess
import sys

import typer

from deploy.cli.common import REPO

app = typer.Typer(help="The local servers: Kafka, PostgreSQL and FerretDB (deploy/local/stack.py).",
                  no_args_is_help=True)

STACK = REPO / "deploy" / "local" / "stack.py"


def stack(*args: str) -> int:
    """Run deploy/local/stack.py with ``args``, its output shown as it comes; its exit status."""
    return subprocess.call([sys.executable, str(STACK), *args], cwd=REPO)


@app.command("up")
def up(servers: list[str] = typer.Argument(None, help="kafka, postgresql or ferretdb (default: all)")) -> None:
    """Install what is missing (first time: a few minutes), start the servers, wait until they answer."""
    code = stack("install") or stack("start", *(servers or []))
    if code == 0:
        typer.echo("Next: `parley services up` starts every service.")
    raise typer.Exit(code)


@app.command("down")
def down(servers: list[str] = typer.Argument(None, help="kafka, postgresql or ferretdb (default: all)")) -> None:
    """Stop the servers (their data is kept for the next `parley stack up`)."""
    raise typer.Exit(stack("stop", *(servers or [])))


@app.command("status")
def status(servers: list[str] = typer.Argument(None, help="kafka, postgresql or ferretdb (default: all)")) -> None:
    """Say what runs; exit status 1 if anything asked for is down."""
    code = stack("status", *(servers or []))
    if code == 1:
        typer.echo("Something is down: `parley stack up` starts it.", err=True)
    raise typer.Exit(code)
