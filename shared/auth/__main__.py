"""``python -m shared.auth token --role ROLE --sub SUB [--team T] [--customer-id C] [--hours H]``."""

import sys

from shared.auth.cli import main

sys.exit(main())
