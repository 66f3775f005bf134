"""Keys never logged, and the what-if budget per key, against a real server run the way a
deployment with access logs runs it (uvicorn's command line at level info)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from homes import served_home

from conftest import serve, stop

pytestmark = pytest.mark.e2e

WHATIF_PER_MINUTE = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home, keys = served_home(tmp_path_factory, "security")
    process, base = serve(home, poll_seconds=0, log_level="info",
                          env={"CHURNLENS_WHATIF_RATE_PER_MINUTE": str(WHATIF_PER_MINUTE)})
    account = httpx.get(f"{base}/v1/accounts", params={"limit": 1},
                        headers={"X-API-Key": keys["read"]}).json()["accounts"][0]["account_id"]
    yield {"home": home, "base": base, "keys": keys, "process": process, "account": account}
    stop(process)


def test_what_if_answers_429_with_retry_after_once_a_key_spent_its_minute(
        server: dict[str, Any]) -> None:
    body = {"account_id": server["account"], "features": {"seat_utilisation_30d": 0.5}}
    with httpx.Client(base_url=server["base"], timeout=30) as client:
        spend = [client.post("/v1/what-if", json=body,
                             headers={"X-API-Key": server["keys"]["whatif"]}).status_code
                 for _ in range(WHATIF_PER_MINUTE)]
        assert spend == [200] * WHATIF_PER_MINUTE
        refused = client.post("/v1/what-if", json=body,
                              headers={"X-API-Key": server["keys"]["whatif"]})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60 // WHATIF_PER_MINUTE
        assert f"more than {WHATIF_PER_MINUTE} what-if answers" in refused.json()["detail"]
        # the budget is per key and per what-if: the same key still reads, another key asks
        read = client.get(f"/v1/accounts/{server['account']}/risk",
                          headers={"X-API-Key": server["keys"]["whatif"]})
        assert read.status_code == 200
        other = client.post("/v1/what-if", json=body,
                            headers={"Authorization": f"Bearer {server['keys']['admin']}"})
        assert other.status_code == 200


def test_keys_never_reach_the_logs(server: dict[str, Any]) -> None:
    """Last in this module: it stops the server to read everything it wrote."""
    keys = server["keys"]
    account = server["account"]
    with httpx.Client(base_url=server["base"], timeout=30) as client:
        client.get(f"/v1/accounts/{account}/risk", headers={"X-API-Key": keys["read"]})
        client.get("/v1/accounts", headers={"Authorization": f"Bearer {keys['admin']}"})
        # a careless client putting its key where the access log writes it: path and query
        client.get(f"/v1/accounts/{account}/risk", params={"api_key": keys["read"]},
                   headers={"X-API-Key": keys["read"]})
        client.get(f"/v1/accounts/{keys['admin']}/risk", headers={"X-API-Key": keys["admin"]})
        client.get("/v1/accounts", params={"key": keys["whatif"]})  # refused: 401
        client.post("/v1/what-if", json={"account_id": account, "features": {}},
                    headers={"X-API-Key": keys["whatif"]})  # spent above: 429
        client.post("/login", data={"key": keys["whatif"]})
        client.post("/login", data={"key": keys["whatif"] + "x"})  # unknown: 401 page
    process = server["process"]
    stop(process)
    logged = process.stdout.read() + process.stderr.read()  # type: ignore[union-attr]
    assert '"GET /v1/accounts' in logged and "cl_***" in logged  # the access log was on
    for key in keys.values():
        assert key not in logged and key[3:] not in logged
    assert f"/v1/accounts/{account}/risk?api_key=cl_***" in logged
