"""`make audit` and its CI workflow: the lock file against the advisories, and an offline run
that says so instead of reading as clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from audit import UNREACHABLE, verdict  # noqa: E402


def test_the_workflow_is_valid_yaml_that_audits_the_lock_file() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "audit.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "uv.lock" in triggers["push"]["paths"] and "schedule" in triggers
    steps = workflow["jobs"]["pip-audit"]["steps"]
    assert any("pip-audit==" in step.get("run", "") for step in steps)
    assert any(step.get("run") == "python scripts/audit.py" for step in steps)
    assert "make audit" not in str(steps)  # CI needs no venv: the script alone
    assert "audit:" in (ROOT / "Makefile").read_text()


def _report(*dependencies: dict[str, object]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_clean_vulnerable_and_not_looked_up_are_told_apart() -> None:
    clean = verdict(0, _report({"name": "numpy", "version": "2.4.6", "vulns": []}), "")
    assert clean.code == 0 and "No known vulnerabilities in the 1" in clean.message
    found = verdict(1, _report(
        {"name": "numpy", "version": "2.4.6", "vulns": []},
        {"name": "requests", "version": "2.19.0",
         "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}]}), "")
    assert found.code == 1
    assert "requests 2.19.0: PYSEC-2018-28 (fixed in 2.20.0)" in found.message
    # what pip-audit itself calls "No known vulnerabilities found", exit 0, offline
    offline = verdict(0, _report({"name": "requests", "skip_reason": "Dependency not found "
                                  "on PyPI and could not be audited: requests (2.19.0)"}), "")
    assert offline.code == 2 and offline.message.startswith(UNREACHABLE)
    partly = verdict(0, _report({"name": "numpy", "version": "2.4.6", "vulns": []},
                                {"name": "odd", "skip_reason": "not found"}), "")
    assert partly.code == 2 and "1 of 2 packages could not be looked up" in partly.message
    down = verdict(1, "", "requests.exceptions.ConnectionError: Max retries exceeded")
    assert down.code == 2 and down.message.startswith(UNREACHABLE)


def test_the_script_audits_a_pinned_requirement_for_real(tmp_path: Path) -> None:
    """The real pip-audit on a release with published advisories: 1 where the advisory
    database answers, 2 with the plain sentence where it cannot be reached; never 0."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests==2.19.0\n")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "audit.py"),
                          str(requirements)], capture_output=True, text=True, timeout=300)
    if run.returncode == 2:
        assert UNREACHABLE in run.stderr, run.stderr
    else:
        assert run.returncode == 1, run.stdout + run.stderr
        assert "requests 2.19.0" in run.stderr

