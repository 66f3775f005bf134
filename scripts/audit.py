"""``make audit``: the locked dependencies (uv.lock) against the vulnerability advisories.

Exports the lock file as pinned requirements (``uv export``), runs pip-audit on them, and
says plainly which of three things happened, with its exit code:

- 0: every locked package was looked up and none has a known vulnerability;
- 1: vulnerabilities were found (listed: package, version, advisory, fixed versions);
- 2: the advisory database could not be reached, or some packages could not be looked up.

pip-audit alone exits 0 with "No known vulnerabilities found" when it could not look a
package up (a PyPI mirror without advisories answers "Dependency not found on PyPI"), so an
offline run would read as clean. Here a package that was not looked up is never clean. The
CI workflow (.github/workflows/audit.yml) runs this where the network is open.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "could not reach the advisory database"
NETWORK_ERRORS = ("ConnectionError", "Max retries exceeded", "NameResolutionError",
                  "Temporary failure in name resolution", "timed out", "ServiceError",
                  "Could not resolve host", "Network is unreachable")


@dataclass(frozen=True)
class Verdict:
    code: int
    message: str


def verdict(returncode: int, report: str, errors: str) -> Verdict:
    """What one pip-audit run (``--format json``) means: clean, vulnerable or not audited."""
    try:
        dependencies = json.loads(report)["dependencies"] if report.strip() else None
    except (ValueError, KeyError, TypeError):
        dependencies = None
    if dependencies is None:
        if any(marker in errors for marker in NETWORK_ERRORS):
            return Verdict(2, f"{UNREACHABLE}: {_last_line(errors)}")
        return Verdict(2, f"pip-audit failed (exit {returncode}) without a report: "
                          f"{_last_line(errors)}")
    skipped = [d for d in dependencies if d.get("skip_reason")]
    if skipped and len(skipped) == len(dependencies):
        return Verdict(2, f"{UNREACHABLE}: none of the {len(dependencies)} locked packages "
                          f"could be looked up (e.g. {skipped[0]['name']}: "
                          f"{skipped[0]['skip_reason']})")
    vulnerable = [d for d in dependencies if d.get("vulns")]
    lines = [f"{d['name']} {d['version']}: {v['id']}"
             + (f" (fixed in {', '.join(v['fix_versions'])})" if v.get("fix_versions") else
                " (no fixed version yet)")
             for d in vulnerable for v in d["vulns"]]
    if skipped:
        names = ", ".join(f"{d['name']}" for d in skipped[:5])
        lines.append(f"{len(skipped)} of {len(dependencies)} packages could not be looked up "
                     f"and are not audited: {names}{' ...' if len(skipped) > 5 else ''}")
    if vulnerable:
        return Verdict(1, f"{len(lines) - bool(skipped)} known vulnerabilities in "
                          f"{len(vulnerable)} locked packages:\n  " + "\n  ".join(lines))
    if skipped:
        return Verdict(2, lines[-1])
    return Verdict(0, f"No known vulnerabilities in the {len(dependencies)} locked packages.")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def export_lock(target: Path) -> None:
    """The lock file's packages, pinned, without the project itself."""
    subprocess.run(["uv", "export", "--frozen", "--no-hashes", "--no-emit-project",
                    "--format", "requirements-txt", "--output-file", str(target)],
                   cwd=ROOT, check=True, capture_output=True, text=True)


def main(requirements: Path | None = None) -> int:
    with tempfile.TemporaryDirectory() as folder:
        if requirements is None:
            requirements = Path(folder) / "requirements.txt"
            export_lock(requirements)
        run = subprocess.run(
            [sys.executable, "-m", "pip_audit", "--requirement", str(requirements),
             "--no-deps", "--disable-pip", "--progress-spinner", "off", "--format", "json"],
            capture_output=True, text=True)
    result = verdict(run.returncode, run.stdout, run.stderr)
    stream = sys.stdout if result.code == 0 else sys.stderr
    stream.write(result.message + "\n")
    return result.code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
