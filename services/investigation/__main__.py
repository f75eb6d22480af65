"""``python -m services.investigation worker`` | ``python -m services.investigation seed``."""

import sys

from services.investigation.app import SPEC
from shared.service import run

if __name__ == "__main__":
    sys.exit(run(SPEC))
