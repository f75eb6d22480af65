"""The fault suite in small, inside ``make test``: ``bench.faults`` with 1,000 complaints.

Runs ``python -m bench.faults`` as a user would, on servers of its own (ports 17xxx, its own
stack directory), with 2 workers per service: every complaint delivered twice, hostile
messages mixed in, every worker SIGKILLed once, the broker and the database killed -9 and
restarted. The suite audits from the topics and the stores and exits non-zero on any loss,
duplicate, hostile message let through or dead worker; this test asserts that it passed and
that its audit says what it should.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1200)
def test_a_thousand_complaints_survive_kills_redelivery_and_hostile_input(tmp_path: Path) -> None:
    if os.environ.get("PARLEY_TEST_KAFKA_BOOTSTRAP"):
        pytest.skip("the fault suite kills its servers: it runs only on a stack of its own")
    port_base = os.environ.get("PARLEY_TEST_FAULTS_PORT_BASE", "17000")
    cmd = [sys.executable, "-m", "bench.faults", "--complaints", "1000", "--hostile", "100",
           "--oversized", "1", "--kills", "1", "--conflicts", "10", "--cap-minutes", "15",
           "--port-base", port_base, "--stack-dir", str(REPO / ".parley" / "faults-test-stack")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1150)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    results = sorted((REPO / "bench" / "results").glob("faults-small-*.json"))[-1]
    audit = json.loads(results.read_text())
    assert audit["lost"] == 0 and audit["in_two_cases"] == 0 and audit["registered_under_two_event_ids"] == 0
    assert audit["stored_complaints"] == 1000 and audit["cases_without_finding"] == 0
    assert audit["hostile_dead_lettered"] == audit["hostile"] == 100  # the oversized one among them
    assert audit["conflicts_dead_lettered"] == 10 and audit["dead_workers"] == []
    assert audit["worker_kills"] == 4 and audit["broker_kills"] == 1 and audit["db_kills"] == 1
