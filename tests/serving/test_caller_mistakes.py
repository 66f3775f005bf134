"""Caller mistakes answered in words: a query parameter the route does not take, a filter value
that is none of the portfolio's, a body that is not JSON, a page past the end. Each used to
answer an empty 200 or a code's words ("29: JSON decode error", "page 99 of 18"). The real app
in process (FastAPI's TestClient) over a copy of the shared trained home."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from homes import served_home, settle

from churnlens.serving.app import create_app
from churnlens.serving.pages import PAGE_SIZE
from churnlens.settings import Settings

PAGE = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home, keys = served_home(tmp_path_factory, "mistakes")
    with TestClient(create_app(Settings(home=home)), follow_redirects=False) as client:
        read = {"X-API-Key": keys["read"]}
        accounts = client.get("/v1/accounts", params={"limit": 1000}, headers=read).json()
        yield {"client": client, "read": read, "keys": keys,
               "accounts": [a["account_id"] for a in accounts["accounts"]]}
        settle()


def _api(site: dict[str, Any], path: str, **params: str) -> Any:
    return site["client"].get(path, params=params, headers=site["read"])


def _page(site: dict[str, Any], path: str, **params: str) -> Any:
    client: TestClient = site["client"]
    client.post("/login", data={"key": site["keys"]["read"]})
    return client.get(path, params=params, headers=PAGE)


def _problem(page: Any) -> str:
    """The sentence a refusal page shows (unescaped, as a reader sees it)."""
    found = re.search(r'<section class="card narrow" id="empty">.*?<p>(.*?)</p>', page.text,
                      re.S)
    assert found, page.text[:500]
    return found.group(1).replace("&#39;", "'").replace("&amp;", "&")


def test_an_unknown_query_parameter_is_refused_with_those_the_route_takes(
        site: dict[str, Any]) -> None:
    answer = _api(site, "/v1/accounts", min_churn="0.5", changed_since="2024")
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        "unknown query parameters 'changed_since', 'min_churn' for GET /v1/accounts; "
        "it takes 'csm', 'cursor', 'limit', 'playbook', 'segment', 'sort', 'tier'")
    # a value of a parameter it takes that is none of its values: those listed
    assert _api(site, "/v1/accounts", sort="churn").status_code == 422
    # a key put in the address by mistake: named, its value never repeated
    risk = _api(site, f"/v1/accounts/{site['accounts'][0]}/risk",
                api_key=site["keys"]["read"])
    assert risk.status_code == 422 and "'api_key'" in risk.json()["detail"]
    assert site["keys"]["read"] not in risk.text
    page = _page(site, "/", min_churn="0.5")
    assert page.status_code == 422
    assert "'min_churn', which this page does not take" in _problem(page)
    assert "'sort'" in _problem(page)  # the page sorts; the API does not


def test_a_filter_value_that_is_none_of_the_portfolios_lists_the_valid_ones(
        site: dict[str, Any]) -> None:
    tier = _api(site, "/v1/accounts", tier="HIGH")
    assert tier.status_code == 422
    assert "'high', 'medium' or 'low'" in tier.json()["detail"]
    nobody = _api(site, "/v1/accounts", csm="Nobody Atall")
    assert nobody.status_code == 422
    detail = nobody.json()["detail"]
    assert detail.startswith("csm 'Nobody Atall' is none of this portfolio's: '")
    csm = detail.split(": ", 1)[1].split("'")[1]  # the first CSM it lists is a real one
    assert _api(site, "/v1/accounts", csm=csm).status_code == 200
    segment = _api(site, "/v1/accounts", segment="enterprise")
    assert segment.status_code == 422 and "'high-touch'" in segment.json()["detail"]

    for params, says in (({"tier": "HIGH"}, "tier 'HIGH' is none of this portfolio's: "
                          "'high', 'medium', 'low'"),
                         ({"csm": "Nobody Atall"}, "csm 'Nobody Atall' is none of"),
                         ({"sort": "name"},
                          "sort 'name' is none of 'arr_at_risk', 'arr', 'drop', 'renewal'")):
        page = _page(site, "/", **params)
        assert page.status_code == 422 and says in _problem(page), params


@pytest.mark.parametrize(("body", "status", "says"), [
    (b'{"account_ids": ["a" "b"]}', 400,
     "the body is not valid JSON: expecting ',' delimiter at line 1, column 22"),
    (b'{"account_ids": [\n  "a",\n]}', 400,
     "the body is not valid JSON: expecting value at line 3, column 1"),
    (b'{"account_ids": ["\xff"]}', 400, "the body is not valid JSON: it is not UTF-8 text"),
    (b"", 422, "the body is missing: send a JSON object"),
])
def test_a_body_that_is_not_json_says_what_is_wrong_and_where(
        site: dict[str, Any], body: bytes, status: int, says: str) -> None:
    answer = site["client"].post("/v1/risk", content=body,
                                 headers={**site["read"], "Content-Type": "application/json"})
    assert answer.status_code == status
    assert answer.json()["detail"] == says or answer.json()["detail"].startswith(says)


def test_a_page_past_the_end_says_so(site: dict[str, Any]) -> None:
    count = len(site["accounts"])
    last = -(-count // PAGE_SIZE)
    assert last >= 2, "the trained home should hold more than one page"
    assert _page(site, "/", page=str(last)).status_code == 200
    beyond = _page(site, "/", page=str(last + 1))
    assert beyond.status_code == 404
    assert _problem(beyond) == (f"Page {last + 1} is past the last page, {last} "
                                f"({count:,} accounts match).")

    assert _api(site, "/v1/accounts", cursor=str(count - 1)).json()["next_cursor"] is None
    past = _api(site, "/v1/accounts", cursor=str(count))
    assert past.status_code == 404
    assert past.json()["detail"] == (f"cursor '{count}' is past the end: {count:,} accounts "
                                     "match these filters")
