"""``pip-audit`` on the installed environment: no known vulnerability in any dependency.

pip-audit asks PyPI's JSON API for each installed distribution's advisories
(``/pypi/NAME/VERSION/json``, which carries PyPI's OSV-fed ``vulnerabilities``); when that
service answers for none of them, it tries OSV's own API. The project itself (installed
editable) is not audited, only what it depends on. A dependency with an advisory fails the
test with the advisory's id and the versions that fix it: raise its lower bound in
pyproject.toml.

When neither service can be reached from this machine, the test is skipped and says which
service answered what: a skip here means "not audited", never "clean".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
NOT_ON_PYPI = "not found on PyPI"


def pip_audit(service: str, out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """Run pip-audit on this interpreter's environment; its JSON report, or None when it wrote none."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip_audit", "--local", "--skip-editable", "--progress-spinner", "off",
         "--vulnerability-service", service, "--timeout", "30", "--format", "json", "--output", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    report = json.loads(out.read_text()) if out.exists() and out.stat().st_size else None
    return proc, report


def audited(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The dependencies the service answered for (not skipped)."""
    return [d for d in report["dependencies"] if not d.get("skip_reason")]


def test_no_dependency_has_a_known_vulnerability(tmp_path: Path) -> None:
    tried: list[str] = []
    for service in ("pypi", "osv"):
        proc, report = pip_audit(service, tmp_path / f"{service}.json")
        if report is None:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            tried.append(f"{service}: pip-audit exited {proc.returncode} without a report: {last[:300]}")
            continue
        deps = audited(report)
        if not deps:
            skipped = [d["skip_reason"] for d in report["dependencies"]
                       if d.get("skip_reason") and "editable" not in d["skip_reason"]]
            why = f"all {len(skipped)} installed dependencies skipped"
            if skipped and all(NOT_ON_PYPI in s for s in skipped):
                why += " as 'not found on PyPI' (the per-version JSON API, /pypi/NAME/VERSION/json, answers 404)"
            tried.append(f"{service}: no dependency could be audited ({why})")
            continue
        vulnerable = [
            f"{d['name']} {d['version']}: " + ", ".join(
                f"{v['id']} (fixed in {', '.join(v.get('fix_versions') or ['no release yet'])})" for v in d["vulns"])
            for d in deps if d.get("vulns")
        ]
        assert not vulnerable, "known vulnerabilities (raise the bound in pyproject.toml):\n" + "\n".join(vulnerable)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return
    pytest.skip("pip-audit could not reach a vulnerability service from this machine, NOTHING WAS AUDITED: "
                + "; ".join(tried))
