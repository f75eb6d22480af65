"""``python -m services.intake worker`` | ``python -m services.intake api --port 8001``."""

import sys

from services.intake.app import SPEC
from shared.service import run

if __name__ == "__main__":
    sys.exit(run(SPEC))
