"""Long fuzzing of the risk API from its own OpenAPI schema (schemathesis), over a socket.

Every operation gets ``--examples`` schema-valid and as many schema-invalid cases, each sent
with an admin key, and a share of them without a valid key (none, unknown, malformed). About
half of the generated account ids are swapped for real ones, so the code behind the 404 runs
too. Each answer goes through the checks of tests/serving/test_fuzz_api.py: no 5xx, status
code, content type, headers and body as documented. Printed: requests, 5xx and schema
violations, by operation and in total; exit status 1 on any 5xx or violation.

    uv run python bench/fuzz_api.py                       # ~10 min on 2 cores
    uv run python bench/fuzz_api.py --examples 100 --home /tmp/load-home
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import BENCH, cli, start_server, stop_server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
"""What every answer must pass: no 5xx, and documented status, content type, headers, body."""
KEY_HEADERS = ("authorization", "x-api-key")
WRONG_CREDENTIALS: list[dict[str, str]] = [
    {}, {"X-API-Key": "cl_" + "w" * 43}, {"Authorization": "Bearer cl_wrong"},
    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}]
"""No key, an unknown one, and malformed Authorization headers."""


def aim(case: Any, ids: list[str]) -> None:
    """Point about half the generated cases at a real account: random ids only ever reach the
    404, and the what-if and batch code behind it is where values are used. Which half, and
    which account, follow from the generated id, so a failing example replays the same."""

    def real(generated: str) -> str:
        digest = zlib.crc32(generated.encode("utf-8", "surrogatepass"))
        return ids[digest // 2 % len(ids)] if digest % 2 else generated

    if isinstance((case.path_parameters or {}).get("account_id"), str):
        case.path_parameters["account_id"] = real(case.path_parameters["account_id"])
    if isinstance(case.body, dict):
        if isinstance(case.body.get("account_id"), str):
            case.body["account_id"] = real(case.body["account_id"])
        named = case.body.get("account_ids")
        if isinstance(named, list) and named and isinstance(named[0], str):
            named[0] = real(named[0])


def without_keys(case: Any) -> dict[str, str]:
    """The generated headers less any credentials (the caller chooses those)."""
    return {k: v for k, v in (case.headers or {}).items() if k.lower() not in KEY_HEADERS}


def failure_names(error: BaseException) -> list[str]:
    """The names of the failed checks in what ``validate_response`` raised."""
    inner = getattr(error, "exceptions", None)
    if inner:
        return [name for sub in inner for name in failure_names(sub)]
    return [getattr(error, "title", None) or type(error).__name__]


def fuzz(base: str, admin_key: str, ids: list[str], examples: int) -> dict[str, Any]:
    """Fuzz every operation; counts by operation and in total."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    totals: Counter[str] = Counter()
    violations: Counter[str] = Counter()
    by_operation: dict[str, Counter[str]] = {}
    examples_5xx: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        counts = by_operation.setdefault(operation.label, Counter())

        def send(case: Any, headers: dict[str, str], counts: Counter[str] = counts,
                 label: str = operation.label) -> None:
            case.headers = {**without_keys(case), **headers}
            response = case.call(timeout=30)
            counts["requests"] += 1
            counts[f"status {response.status_code // 100}xx"] += 1
            if response.status_code >= 500:
                counts["5xx"] += 1
                if len(examples_5xx) < 10:
                    examples_5xx.append(case.as_curl_command())
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, FailureGroup) as error:
                for name in failure_names(error):
                    counts["violations"] += 1
                    violations[f"{label}: {name}"] += 1

        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                aim(case, ids)
                send(case, {"X-API-Key": admin_key})
                which = zlib.crc32(repr(case.body).encode()) % (3 * len(WRONG_CREDENTIALS))
                if which < len(WRONG_CREDENTIALS):  # a third of cases again, without a key
                    send(case, WRONG_CREDENTIALS[which])

            with contextlib.suppress(Unsatisfiable):  # nothing to make invalid: no parameters
                run()
        totals.update(counts)
    return {"requests": totals["requests"], "5xx": totals["5xx"],
            "schema_violations": totals["violations"],
            "by_operation": {label: dict(c) for label, c in by_operation.items()},
            "violations": dict(violations), "examples_5xx": examples_5xx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000,
                        help="cases per operation and generation mode")
    parser.add_argument("--home", type=Path, help="a trained home (default: train one)")
    args = parser.parse_args()

    home = args.home
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="churnlens-bench-fuzz-")) / "home"
        for step in (["synth", "--accounts", "300", "--months", "16", "--seed", "9",
                      "--rollouts", "2"], ["features"], ["train"], ["score", "--top", "0"]):
            cli(home, *step)
    from churnlens.serving.keys import KeyStore

    _, key = KeyStore(home / "api_keys.json").create("fuzz", "admin")
    process, base = start_server(home, workers=1, poll_seconds=0)
    try:
        ids = [a["account_id"] for a in httpx.get(
            f"{base}/v1/accounts", params={"limit": 1000},
            headers={"X-API-Key": key}).json()["accounts"]]
        started = time.perf_counter()
        report = fuzz(base, key, ids, args.examples)
        report["seconds"] = round(time.perf_counter() - started, 1)
    finally:
        stop_server(process)
    logged = (home / "serve.log").read_text(errors="replace")
    report["tracebacks_in_server_log"] = logged.count("Traceback")
    print(json.dumps({k: v for k, v in report.items() if k != "by_operation"}, indent=2))
    for label, counts in report["by_operation"].items():
        print(f"{label:45} {counts.get('requests', 0):6} requests  {counts.get('5xx', 0):3} 5xx"
              f"  {counts.get('violations', 0):3} violations")
    (BENCH / "results").mkdir(exist_ok=True)
    (BENCH / "results" / "fuzz_api.json").write_text(json.dumps(report, indent=2))
    clean = report["5xx"] == 0 and report["schema_violations"] == 0 and not report[
        "tracebacks_in_server_log"]
    print("PASS" if clean else "FAIL")
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    main()
