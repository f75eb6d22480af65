"""``parley token``: a development bearer token (shared.auth), and the CLI's own staff token."""

# ruff: noqa: B008 - typer declares options as argument defaults
from __future__ import annotations

import os
from datetime import timedelta
from enum import Enum
from pathlib import Path

import typer

from deploy.cli.common import CliError, fail
from shared.auth.tokens import ROLES, TEAM_SCOPED

RoleName = Enum("RoleName", {r: r for r in ROLES}, type=str)  # type: ignore[misc]

#: Who the CLI is when it reads the APIs itself: an auditor (staff, read-only).
CLI_ROLE = "auditor"


def token(
    role: RoleName = typer.Option(..., "--role", help="the caller's role", case_sensitive=False),
    sub: str = typer.Option(..., "--sub", help="the caller's id"),
    team: str | None = typer.Option(None, "--team", help="team (required of agents and team leads)"),
    customer_id: str | None = typer.Option(None, "--customer-id", help="customer id (required of customers)"),
    hours: float = typer.Option(8.0, "--hours", help="validity in hours (more than 0, at most 744)"),
    private_key: Path | None = typer.Option(None, "--private-key", help="RS256: the PEM private key to sign with"),
    kid: str | None = typer.Option(None, "--kid", help="RS256: the key id to put in the header"),
) -> None:
    """Mint a development bearer token for any API (signed with PARLEY_AUTH_*, as the APIs verify)."""
    from shared.auth.tokens import mint
    from shared.settings import CommonSettings

    role_name = role.value
    if role_name == "customer" and not customer_id:
        fail("--customer-id is required for a customer token", 2)
    if role_name in TEAM_SCOPED and not team:
        fail(f"--team is required for {role_name} tokens", 2)
    if not 0 < hours <= 24 * 31:
        fail("--hours must be more than 0 and at most 744 (31 days)", 2)
    common = CommonSettings()
    if common.environment == "production":
        fail("development tokens are not minted in production; the identity provider issues tokens", 2)
    key = private_key.read_text(encoding="ascii") if private_key else None
    if common.auth.algorithm == "RS256" and key is None:
        fail("PARLEY_AUTH_ALGORITHM is RS256: give --private-key", 2)
    typer.echo(mint(common.auth, sub=sub, role=role_name, team=team, customer_id=customer_id,
                    ttl=timedelta(hours=hours), signing_key=key, kid=kid))


def cli_token() -> str:
    """The token the CLI sends: ``PARLEY_TOKEN`` when set, else a short-lived development
    auditor token (staff, read-only) minted with the local PARLEY_AUTH_* settings."""
    given = os.environ.get("PARLEY_TOKEN")
    if given:
        return given.strip()
    from shared.auth.tokens import mint
    from shared.settings import CommonSettings

    common = CommonSettings()
    if common.environment == "production" or common.auth.algorithm != "HS256":
        raise CliError("this deployment does not take development tokens: set PARLEY_TOKEN to a "
                       "staff token from your identity provider")
    user = os.environ.get("USER") or "someone"
    return mint(common.auth, sub=f"cli:{user}"[:64], role=CLI_ROLE, ttl=timedelta(minutes=10))
