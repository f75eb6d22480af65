"""``python -m shared.auth token ...``: mint a development bearer token for any API.

    python -m shared.auth token --role agent --sub a1 --team t1 [--hours 8]
    python -m shared.auth token --role customer --sub c1 --customer-id c1

It signs with the same settings the APIs verify with (``PARLEY_AUTH_*``). In production it
refuses: tokens there come from the identity provider. RS256 needs ``--private-key``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

from shared.auth.tokens import ROLES, TEAM_SCOPED, mint
from shared.settings import AuthSettings, CommonSettings


def token_command(argv: list[str], *, auth: AuthSettings | None = None, environment: str | None = None,
                  prog: str = "python -m shared.auth token") -> int:
    """Mint a development bearer token and print it."""
    parser = argparse.ArgumentParser(prog=prog, description="Mint a development bearer token.")
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--sub", required=True, help="the caller's id")
    parser.add_argument("--team", help="team (required of agents and team leads)")
    parser.add_argument("--customer-id", help="customer id (required of customers)")
    parser.add_argument("--hours", type=float, default=8, help="validity in hours (default 8)")
    parser.add_argument("--private-key", type=Path, help="RS256: the PEM private key to sign with")
    parser.add_argument("--kid", help="RS256: the key id to put in the header")
    args = parser.parse_args(argv)
    if args.role == "customer" and not args.customer_id:
        parser.error("--customer-id is required for a customer token")
    if args.role in TEAM_SCOPED and not args.team:
        parser.error(f"--team is required for {args.role} tokens")
    if not 0 < args.hours <= 24 * 31:
        parser.error("--hours must be more than 0 and at most 744 (31 days)")
    if environment is None or auth is None:
        common = CommonSettings()
        environment = environment or common.environment
        auth = auth or common.auth
    if environment == "production":
        parser.error("development tokens are not minted in production; the identity provider issues tokens")
    key = args.private_key.read_text(encoding="ascii") if args.private_key else None
    if auth.algorithm == "RS256" and key is None:
        parser.error("PARLEY_AUTH_ALGORITHM is RS256: give --private-key")
    token = mint(auth, sub=args.sub, role=args.role, team=args.team, customer_id=args.customer_id,
                 ttl=timedelta(hours=args.hours), signing_key=key, kid=args.kid)
    sys.stdout.write(token + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``token ...`` (the one verb)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["token"]:
        sys.stderr.write("usage: python -m shared.auth token --role ROLE --sub SUB "
                         "[--team T] [--customer-id C] [--hours H]\n")
        return 2
    return token_command(argv[1:])
