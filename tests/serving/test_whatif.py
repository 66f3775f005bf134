"""The what-if, through the API and through the account page's form: one function behind both,
the same checks, and the key's scope and budget checked before any work. The real app in
process (FastAPI's TestClient) over a copy of the shared trained home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from homes import served_home, settle

from churnlens.features.registry import REGISTRY
from churnlens.serving import whatif
from churnlens.serving.api.routes import pages as page_routes
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
        settle()


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
    # the API adds the scores' freshness block, which the page shows once in its banner
    answered = {k: v for k, v in api.json().items() if k != "scores"}
    assert page.context["what_if_result"] == answered  # type: ignore[attr-defined]


@pytest.mark.parametrize(("features", "says"), [
    ({"seats": -100000}, "seats must be between 0 and 1e+12, not -100000"),
    ({"days_to_renewal": -99999}, "days_to_renewal must be between 0 and 1e+12, not -99999"),
    ({"last_nps": -50}, "last_nps must be between 0 and 10, not -50"),
    ({"seat_utilisation_30d": 0.5, "detractor_share_180d": 1.5},
     "detractor_share_180d must be between 0 and 1, not 1.5"),
    ({"mrr": True}, "mrr is a number between 0 and 1e+12, not true"),
    ({"seats": "12"}, 'seats is a number between 0 and 1e+12, not "12"'),
    ({"has_csm": 0.5}, "has_csm is a flag, 0 or 1, not 0.5"),
    ({"no_such_feature": 1}, "not features of model v1: ['no_such_feature']; its features "
     "are mrr, "),
])
def test_a_value_no_account_could_have_is_a_422_naming_the_range(
        client: TestClient, home: tuple[Path, dict[str, str]], account: str,
        features: dict[str, Any], says: str) -> None:
    response = ask(client, home[1]["whatif"], account, features)
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]


def test_the_page_shows_the_same_refusal_by_the_fields_label(
        client: TestClient, home: tuple[Path, dict[str, str]], account: str) -> None:
    client.post("/login", data={"key": home[1]["whatif"]})
    page = client.post(f"/accounts/{account}/what-if",
                       data={"last_nps": "-50", "seats": "many", "mrr": "100"})
    assert page.status_code == 422
    errors = page.context["what_if_errors"]  # type: ignore[attr-defined]
    assert sorted(errors) == sorted([
        f"{REGISTRY['seats'].description}: 'many' is not a number",
        f"{REGISTRY['last_nps'].description}: must be between 0 and 10, not -50"])
    assert page.context["changed"] == {"mrr": 100.0}  # type: ignore[attr-defined]
    assert "must be between 0 and 10, not -50" in page.text


def test_scope_and_budget_are_checked_before_any_work(
        home: tuple[Path, dict[str, str]], account: str, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """A refused what-if costs nothing: no scoring, no page built (the page what-if used to
    build the whole account page, ~50 ms, before it looked at the key). The calls are counted
    on the real functions."""
    calls: list[str] = []

    def counted(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(whatif, "score_rows", counted("score", whatif.score_rows))
    monkeypatch.setattr(page_routes, "account_context",
                        counted("page", page_routes.account_context))
    keys = home[1]
    with client_for(home[0], whatif_rate_per_minute=1) as client:
        assert ask(client, keys["read"], account, {"mrr": 1.0}).status_code == 403
        client.post("/login", data={"key": keys["read"]})
        assert client.post(f"/accounts/{account}/what-if", data={"mrr": "1"}
                           ).status_code == 403
        assert calls == []

        assert ask(client, keys["whatif"], account, {"mrr": 1.0}).status_code == 200
        assert calls == ["score"]
        spent = ask(client, keys["whatif"], account, {"mrr": True})  # the budget comes first
        assert spent.status_code == 429 and "Retry-After" in spent.headers
        client.cookies.clear()
        client.post("/login", data={"key": keys["whatif"]})
        page = client.post(f"/accounts/{account}/what-if", data={"mrr": "1"})
        assert page.status_code == 429 and "1 what-if answers in a minute" in page.text
        assert calls == ["score"]
        settle()
