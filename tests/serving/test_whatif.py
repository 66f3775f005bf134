"""The what-if, through the API and through the account page's form: one function behind both,
the same checks, and the key's scope and budget checked before any work. The real app in
process (FastAPI's TestClient) over a copy of the shared trained home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from homes import served_home

from churnlens.serving.app import create_app
from churnlens.settings import Settings


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return served_home(tmp_path_factory, "whatif")


def client_for(home: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(home=home, **settings)), follow_redirects=False)


@pytest.fixture(scope="module")
def client(home: tuple[Path, dict[str, str]]) -> Iterator[TestClient]:
    with client_for(home[0], whatif_rate_per_minute=0) as client:
        yield client


@pytest.fixture(scope="module")
def account(client: TestClient, home: tuple[Path, dict[str, str]]) -> str:
    page = client.get("/v1/accounts", params={"limit": 1},
                      headers={"X-API-Key": home[1]["read"]})
    return str(page.json()["accounts"][0]["account_id"])


def ask(client: TestClient, key: str, account: str, features: dict[str, Any]
        ) -> Any:
    return client.post("/v1/what-if", json={"account_id": account, "features": features},
                       headers={"X-API-Key": key})


def test_the_page_and_the_api_answer_a_what_if_alike(
        client: TestClient, home: tuple[Path, dict[str, str]], account: str) -> None:
    """MRR and days to renewal are read beside the model input too (the segment, the revenue,
    the playbook): a page that changed only the model input answered differently."""
    changes = {"mrr": 5000.0, "days_to_renewal": 20.0}
    api = ask(client, home[1]["whatif"], account, changes)
    assert api.status_code == 200, api.text
    assert api.json()["arr"] == pytest.approx(12 * 5000.0)
    client.post("/login", data={"key": home[1]["whatif"]})
    page = client.post(f"/accounts/{account}/what-if",
                       data={name: str(value) for name, value in changes.items()})
    assert page.status_code == 200, page.text
    assert page.context["changed"] == changes  # type: ignore[attr-defined]
    assert page.context["what_if_result"] == api.json()  # type: ignore[attr-defined]
