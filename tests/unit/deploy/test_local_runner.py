"""The local runner's ``--workers N`` (issue 10): names, pid and log files, the worker index
each process gets, and ``stop`` / ``status`` reaching every worker however many were started."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.local import services as runner


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(runner, "RUN_DIR", tmp_path)
    return tmp_path


def test_one_worker_per_service_keeps_the_old_names() -> None:
    assert [p.name for p in runner.procs(1)] == [p.name for p in runner.PROCS]
    assert "intake-worker" in {p.name for p in runner.procs(1)}


def test_n_workers_per_service_each_with_its_own_name_files_and_index(run_dir: Path) -> None:
    procs = runner.procs(3)
    workers = [p for p in procs if p.service == "intake" and p.mode == "worker"]
    assert [p.name for p in workers] == ["intake-worker", "intake-worker-2", "intake-worker-3"]
    assert [p.env["PARLEY_WORKER_INDEX"] for p in workers] == ["1", "2", "3"]
    assert len({p.pidfile for p in procs}) == len({p.logfile for p in procs}) == len(procs)
    assert workers[2].pidfile == run_dir / "intake-worker-3.pid"
    assert workers[2].args[-1] == "worker"
    apis = [p for p in procs if p.mode == "api"]
    assert len(apis) == len([p for p in runner.PROCS if p.mode == "api"])  # APIs stay single
    assert len(procs) == len(runner.PROCS) + 2 * len([p for p in runner.PROCS if p.mode == "worker"])


def test_workers_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLEY_WORKERS", raising=False)
    assert runner.default_workers() == 1
    monkeypatch.setenv("PARLEY_WORKERS", "2")
    assert runner.default_workers() == 2
    with pytest.raises(SystemExit):
        runner.main(["status", "--workers", "0"])


def _fake(service: str) -> subprocess.Popen[bytes]:
    """A sleeping process whose command line names ``services.<service>`` as a worker's does."""
    # SIGTERM back to its default before exec: a disposition of "ignore" set earlier in the
    # test session is inherited across exec, and a SIGTERM that arrives while the child is
    # still starting (before it could reset it itself) would be dropped
    def default_sigterm() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", f"services.{service}"],
                            preexec_fn=default_sigterm)  # noqa: PLW1509 - a test's own child


def test_stop_and_status_reach_every_worker_whatever_n_they_were_started_with(
    run_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    started = {name: _fake(name.split("-")[0]) for name in ("intake-worker", "intake-worker-3")}
    try:
        for name, proc in started.items():
            (run_dir / f"{name}.pid").write_text(str(proc.pid))
        (run_dir / "other-worker-2.pid").write_text("1")  # not a service: left alone
        runner.status(workers=1)
        shown = capsys.readouterr().out
        assert "intake-worker-3" in shown and "other" not in shown
        assert runner.stop(timeout=10) == 0
        for proc in started.values():
            assert proc.wait(timeout=10) is not None
        out = capsys.readouterr().out
        assert "intake-worker stopped" in out and "intake-worker-3 stopped" in out
        assert not (run_dir / "intake-worker-3.pid").exists()
    finally:
        for proc in started.values():
            proc.kill()
