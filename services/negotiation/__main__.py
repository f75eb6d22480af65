"""Run negotiation: ``python -m services.negotiation worker | api --port 8003 | token ...``.

``token`` mints a development bearer token, e.g.
``python -m services.negotiation token --role agent --sub a1 --team t1``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta


def token_command(argv: list[str]) -> int:
    """Mint a development bearer token and print it."""
    from services.negotiation.auth import ROLES, mint
    from services.negotiation.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m services.negotiation token")
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--sub", required=True, help="the caller's id")
    parser.add_argument("--team", help="team (agents and team leads)")
    parser.add_argument("--customer-id", help="customer id (customers)")
    parser.add_argument("--hours", type=float, default=8, help="validity in hours")
    args = parser.parse_args(argv)
    if args.role == "customer" and not args.customer_id:
        parser.error("--customer-id is required for a customer token")
    if args.role in ("agent", "team_lead") and not args.team:
        parser.error(f"--team is required for a {args.role} token")
    token = mint(get_settings(), sub=args.sub, role=args.role, team=args.team,
                 customer_id=args.customer_id, ttl=timedelta(hours=args.hours))
    sys.stdout.write(token + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the service spec's command line (worker, api, token)."""
    from services.negotiation.app import SPEC
    from shared.service import run

    return run(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
