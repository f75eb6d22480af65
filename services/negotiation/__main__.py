"""Run negotiation: ``python -m services.negotiation worker | api --port 8003 | token ...``.

``token`` mints a development bearer token, e.g.
``python -m services.negotiation token --role agent --sub a1 --team t1`` (an alias of
``python -m shared.auth token``: one token works on every API).
"""

from __future__ import annotations

import sys


def token_command(argv: list[str]) -> int:
    """Mint a development bearer token and print it (``python -m shared.auth token`` with
    negotiation's settings, which may still name an older PARLEY_NEGOTIATION_JWT_SECRET)."""
    from services.negotiation.settings import get_settings
    from shared.auth.cli import token_command as mint_command

    settings = get_settings()
    return mint_command(argv, auth=settings.auth, environment=settings.environment,
                        prog="python -m services.negotiation token")


def main(argv: list[str] | None = None) -> int:
    """Run the service spec's command line (worker, api, token)."""
    from services.negotiation.app import SPEC
    from shared.service import run

    return run(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
