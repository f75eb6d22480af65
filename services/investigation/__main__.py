"""``python -m services.investigation worker`` | ``python -m services.investigation seed``."""

import asyncio
import sys

from services.investigation.app import create_worker, prepare
from shared.service import run

if __name__ == "__main__":
    if sys.argv[1:2] == ["seed"]:
        from services.investigation.seed import main

        sys.exit(main(sys.argv[2:]))
    if sys.argv[1:2] == ["worker"]:
        asyncio.run(prepare())
    sys.exit(run("investigation", worker=create_worker))
