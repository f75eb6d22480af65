"""``python -m services.followup worker | api --port 8004``."""

import sys

from services.followup.app import SPEC
from shared.service import run

if __name__ == "__main__":
    sys.exit(run(SPEC))
