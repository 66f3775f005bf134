"""The risk API fuzzed from its own OpenAPI schema (schemathesis), over a real socket, and the
hostile inputs a fuzzer rarely builds: huge and deeply nested bodies, NaN, odd account ids.

Every answer must be documented (status, content type, body schema) and none may be a 5xx.
bench/fuzz_api.py runs the same fuzzing far longer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from homes import served_home
from hypothesis import HealthCheck, settings

from conftest import serve, stop

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from fuzz_api import CHECKS, WRONG_CREDENTIALS, aim, without_keys

pytestmark = pytest.mark.e2e

if not hasattr(pytest.Function, "_nodeid"):
    # schemathesis 4.32's fixture-loaded schemas rename the test node through ``_nodeid``,
    # which pytest 9 no longer has; keep the plain node id (only the report's label differs).
    pytest.Function._nodeid = property(  # type: ignore[attr-defined]
        lambda node: node.nodeid, lambda node, value: None)

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home, keys = served_home(tmp_path_factory, "fuzz")
    process, base = serve(home, poll_seconds=0, env={"CHURNLENS_WHATIF_RATE_PER_MINUTE": "0"})
    accounts = httpx.get(f"{base}/v1/accounts", params={"limit": 1000},
                         headers={"X-API-Key": keys["read"]}).json()["accounts"]
    yield {"home": home, "base": base, "keys": keys, "process": process,
           "ids": [a["account_id"] for a in accounts]}
    stop(process)
    errors = process.stderr.read() if process.stderr else ""  # nothing failed inside either
    assert "Traceback" not in errors, errors[-3000:]


@pytest.fixture(scope="module")
def api_schema(server: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_url(f"{server['base']}/openapi.json")


@schema.parametrize()
@FUZZ
def test_fuzz_with_an_admin_key(case: Any, server: dict[str, Any]) -> None:
    aim(case, server["ids"])
    case.headers = without_keys(case)
    case.call_and_validate(headers={"X-API-Key": server["keys"]["admin"]},
                           checks=CHECKS, timeout=30)


@schema.parametrize()
@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_without_a_valid_key(case: Any, server: dict[str, Any]) -> None:
    """No key, an unknown one, or a malformed Authorization: every API route answers 401
    before reading anything else; the operations routes answer as usual."""
    generated = without_keys(case)
    for credentials in WRONG_CREDENTIALS:
        case.headers = {**generated, **credentials}
        response = case.call_and_validate(checks=CHECKS, timeout=30)
        if case.path.startswith("/v1/"):
            assert response.status_code == 401, (credentials, response.text)
            assert "key" in response.json()["detail"].lower()


def _post(server: dict[str, Any], path: str, content: bytes, scope: str = "admin",
          **headers: str) -> httpx.Response:
    return httpx.post(server["base"] + path, content=content, timeout=30,
                      headers={"X-API-Key": server["keys"][scope],
                               "Content-Type": "application/json", **headers})


def test_an_oversized_body_is_refused_with_413_before_it_is_parsed(
        server: dict[str, Any]) -> None:
    ids = json.dumps({"account_ids": [f"acc_{i:09d}" for i in range(350_000)]}).encode()
    assert len(ids) > 5_000_000
    declared = _post(server, "/v1/risk", ids)
    assert declared.status_code == 413
    assert "at most 1,048,576" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for start in range(0, len(ids), 65536):
            yield ids[start:start + 65536]

    streamed = httpx.post(server["base"] + "/v1/what-if", content=chunks(), timeout=30,
                          headers={"X-API-Key": server["keys"]["admin"],
                                   "Content-Type": "application/json"})
    assert streamed.status_code == 413 and "at most" in streamed.json()["detail"]
    anonymous = httpx.post(server["base"] + "/v1/risk", content=ids, timeout=30)
    assert anonymous.status_code == 401  # no key: refused before the body is read
    assert httpx.get(server["base"] + "/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/v1/risk", "/v1/what-if"])
def test_deeply_nested_json_is_a_4xx_that_says_so(server: dict[str, Any], path: str) -> None:
    deep = b'{"account_ids": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    response = _post(server, path, deep)
    assert response.status_code in (400, 422), response.text
    assert "body" in response.json()["detail"]


@pytest.mark.parametrize("account_id", [
    "é" * 3000, "😀 acc", "acc\u0000id", "a" * 8000, "../../etc/passwd", "%00", "\u202e\u0646",
])
def test_odd_account_ids_are_not_found_never_a_server_error(
        server: dict[str, Any], account_id: str) -> None:
    headers = {"X-API-Key": server["keys"]["admin"]}
    one = httpx.get(f"{server['base']}/v1/accounts/{quote(account_id, safe='')}/risk",
                    headers=headers, timeout=30)
    assert one.status_code in (404, 422), one.text
    if one.status_code == 404 and account_id.startswith("a" * 100):
        assert "8,000 characters" in one.json()["detail"]  # not repeated back in full
    what_if = httpx.post(f"{server['base']}/v1/what-if", headers=headers, timeout=30,
                         json={"account_id": account_id, "features": {}})
    assert what_if.status_code == 404 and "unknown account" in what_if.json()["detail"]
    batch = httpx.post(f"{server['base']}/v1/risk", headers=headers, timeout=30,
                       json={"account_ids": [account_id]})
    assert batch.status_code == 200 and batch.json()["not_found"] == [account_id]


@pytest.mark.parametrize(("value", "says"), [
    (b"NaN", "finite number"), (b"Infinity", "finite number"), (b"-Infinity", "finite number"),
    (b"1e400", "finite number"), (b"1e308", "between"), (b"-2e12", "between"),
])
@pytest.mark.parametrize("feature", ["days_to_renewal", "seat_utilisation_30d", "mrr"])
def test_non_finite_or_absurd_what_if_values_are_422_with_a_message(
        server: dict[str, Any], feature: str, value: bytes, says: str) -> None:
    body = (b'{"account_id": "' + server["ids"][0].encode() + b'", "features": {"'
            + feature.encode() + b'": ' + value + b"}}")
    response = _post(server, "/v1/what-if", body)
    assert response.status_code == 422, response.text
    assert feature in response.json()["detail"] and says in response.json()["detail"]


@pytest.mark.parametrize("cursor", ["²", "٣x", "-1", "1e3", "9" * 40])
def test_a_cursor_this_api_never_gave_out_is_422_or_past_the_end(
        server: dict[str, Any], cursor: str) -> None:
    response = httpx.get(f"{server['base']}/v1/accounts", params={"cursor": cursor},
                         headers={"X-API-Key": server["keys"]["read"]})
    if cursor.isascii() and cursor.isdigit():
        assert response.status_code == 404 and "past the end" in response.json()["detail"]
    else:
        assert response.status_code == 422 and "cursor" in response.json()["detail"]
