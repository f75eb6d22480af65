"""``python -m services.supervision worker | api --port 8005``."""

import sys

from services.supervision.app import SPEC
from shared.service import run

if __name__ == "__main__":
    sys.exit(run(SPEC))
