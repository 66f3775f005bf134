"""What the server tells a caller without being asked for it: /metrics behind a key scope when
one is configured, no absolute path of the server's machine in any answer, and API docs that
load nothing from another site. The real app in process over an empty home (nothing served)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from churnlens.serving.api.deps import without_paths
from churnlens.serving.app import create_app
from churnlens.serving.keys import KeyStore
from churnlens.settings import Settings


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def client_for(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), follow_redirects=False)


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    with client_for(Settings(home=home)) as client:
        yield client


def test_metrics_need_the_configured_scope(home: Path) -> None:
    keys = KeyStore(home / "api_keys.json")
    read, admin = keys.create("reader", "read")[1], keys.create("ops", "admin")[1]
    with client_for(Settings(home=home, metrics_scope="admin")) as client:
        assert client.get("/metrics").status_code == 401
        refused = client.get("/metrics", headers={"X-API-Key": read})
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
        scraped = client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
        assert scraped.status_code == 200 and "churnlens_requests_total" in scraped.text
    with client_for(Settings(home=home)) as client:  # the default: open, as documented
        assert client.get("/metrics").status_code == 200


def test_no_answer_shows_an_absolute_path(home: Path, client: TestClient) -> None:
    admin = KeyStore(home / "api_keys.json").create("ops", "admin")[1]
    client.post("/login", data={"key": admin})
    answers = [client.get("/readyz"), client.get("/", headers={"Accept": "text/html"}),
               client.post("/v1/admin/reload", headers={"X-API-Key": admin})]
    assert [a.status_code for a in answers] == [503, 503, 409]
    assert "HOME/models" in answers[0].json()["problem"]
    for answer in answers:
        assert str(home) not in answer.text and str(home.parent) not in answer.text


def test_without_paths_keeps_api_paths_and_text() -> None:
    home = Path("/srv/churn/home")
    assert without_paths("no champion under /srv/churn/home/models: run train", home) == (
        "no champion under HOME/models: run train")
    assert without_paths("POST /v1/admin/reload, see https://x.example/a/b", home) == (
        "POST /v1/admin/reload, see https://x.example/a/b")
    assert without_paths("cannot read /usr/lib/os-release.", home) == (
        "cannot read os-release.")


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_load_nothing_from_another_site(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources)
    assert "<script>" not in page.text  # nothing inline: the policy forbids it
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "http" not in policy
    for source in sources:
        if source.startswith("/static/"):
            asset = client.get(source)
            assert asset.status_code == 200 and len(asset.content) > 100, source
    assert client.get("/static/docs/README.md").status_code == 404
