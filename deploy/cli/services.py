"""``parley services up|down|status``: every service's worker and API (deploy/local/services.py)."""

# ruff: noqa: B008 - typer declares options as argument defaults
from __future__ import annotations

import subprocess
import sys

import typer

from deploy.cli.common import REPO

app = typer.Typer(help="The service processes: each service's worker(s) and API (deploy/local/services.py).",
                  no_args_is_help=True)

WORKERS = typer.Option(None, "--workers", "-w", min=1, metavar="N",
                       help="worker processes per service in its one consumer group "
                       "(default: $PARLEY_WORKERS or 1)")


def services(command: str, workers: int | None = None) -> int:
    """Run ``python -m deploy.local.services COMMAND``, its output shown as it comes."""
    extra = ["--workers", str(workers)] if workers else []
    return subprocess.call([sys.executable, "-m", "deploy.local.services", command, *extra], cwd=REPO)


@app.command("up")
def up(workers: int | None = WORKERS) -> None:
    """Create the topics, start every worker and API, wait until each is ready."""
    code = services("start", workers)
    if code:
        typer.echo("A service did not start: its log is named above; is the stack up "
                   "(`parley stack status`)?", err=True)
    raise typer.Exit(code)


@app.command("down")
def down() -> None:
    """Stop every service process (all workers, however many were started)."""
    raise typer.Exit(services("stop"))


@app.command("status")
def status(workers: int | None = WORKERS) -> None:
    """Say which service processes run; exit status 1 if one is down."""
    code = services("status", workers)
    if code == 1:
        typer.echo("Something is down: `parley services up` starts it.", err=True)
    raise typer.Exit(code)
