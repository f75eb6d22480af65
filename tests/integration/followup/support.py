"""Follow-up's worker and API as real processes, for the tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.settings import CommonSettings
from tests.integration.negotiation.support import free_port
from tests.support.processes import WORKER_READY, running_service, service_env


@contextmanager
def followup_stack(settings: CommonSettings, tmp: Path, **extra: str) -> Iterator[str]:
    """Run follow-up's worker and API (environment ``extra`` on top of the test's); yield the
    API's base URL. Logs: ``fu-worker.log`` and ``fu-api.log`` in ``tmp``."""
    port = free_port()
    env = service_env(settings, **extra)
    base = f"http://127.0.0.1:{port}"
    with running_service("services.followup", ["worker"], env, tmp / "fu-worker.log", ready_text=WORKER_READY,
                         timeout=150), \
         running_service("services.followup", ["api", "--port", str(port)], env, tmp / "fu-api.log",
                         ready_url=f"{base}/health", timeout=120):
        yield base
