"""``python -m services.intake worker`` | ``python -m services.intake api --port 8001``."""

from __future__ import annotations

import sys

from services.intake.app import create_api, worker_factory
from services.intake.settings import get_settings
from shared.service import run

if __name__ == "__main__":
    sys.exit(
        run(
            "intake",
            worker=lambda: worker_factory(get_settings()),
            api=lambda: create_api(get_settings()),
            default_port=8001,
        )
    )
