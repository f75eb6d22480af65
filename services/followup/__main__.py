"""``python -m services.followup worker | api --port 8004``."""

import asyncio
import sys

from services.followup.app import create_api, create_worker, prepare
from shared.service import run

if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        asyncio.run(prepare())
    sys.exit(run("followup", worker=create_worker, api=create_api, default_port=8004))
