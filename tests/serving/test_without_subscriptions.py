"""A home built as a purchase history would be: accounts and usage events only (no
subscriptions, tickets or surveys), no industry or region, inactivity churn. Every page and
route answers, with what the data cannot give shown as absent, never as zero or a 500."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnlens.serving.pages import NONE
from conftest import FAST_TRAIN, churnlens, serve, stop

pytestmark = pytest.mark.e2e


def _blank(path: Path, columns: tuple[str, ...]) -> None:
    table = pq.read_table(path)
    for column in columns:
        table = table.set_column(table.schema.get_field_index(column), column,
                                 pa.nulls(len(table), pa.string()))
    pq.write_table(table, path)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("inactivity") / "home"
    churnlens(home, "synth", "--accounts", "150", "--months", "16", "--seed", "9",
              "--rollouts", "2")
    for name in ("subscriptions", "tickets", "surveys", "truth"):
        (home / "raw" / f"{name}.parquet").unlink()
    _blank(home / "raw" / "accounts.parquet", ("industry", "region"))
    churnlens(home, "features", "--churn-definition", "inactivity")
    churnlens(home, "train", env=FAST_TRAIN)
    churnlens(home, "score", "--top", "0")
    return home


@pytest.fixture(scope="module")
def site(home: Path) -> Iterator[dict[str, Any]]:
    key = churnlens(home, "keys", "create", "--name", "csm").stdout.strip().splitlines()[-1]
    process, base = serve(home)
    api = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60)
    deadline = time.monotonic() + 120
    while (kpis := api.get("/v1/kpis")).status_code == 503:
        assert time.monotonic() < deadline, kpis.text
        time.sleep(0.5)
    try:
        yield {"base": base, "key": key, "api": api, "kpis": kpis}
    finally:
        stop(process)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<svg.*?</svg>", "", html, flags=re.S))
                    .split())


def test_every_page_and_route_answers_with_what_is_absent_shown_as_absent(
        site: dict[str, Any]) -> None:
    api: httpx.Client = site["api"]
    kpis = site["kpis"]
    assert kpis.status_code == 200, kpis.text
    assert kpis.json()["absent"]["grr"] == "needs the subscriptions table"
    assert all(m["grr"] is None and m["nps"] is None for m in kpis.json()["months"])
    assert any(m["dau_mau"] for m in kpis.json()["months"])

    portfolio = api.get("/v1/accounts", params={"limit": 3})
    assert portfolio.status_code == 200, portfolio.text
    assert portfolio.json()["revenue"] is None  # no ARR at all: absent, not 0 of 0
    account = portfolio.json()["accounts"][0]["account_id"]
    risk = api.get(f"/v1/accounts/{account}/risk")
    assert risk.status_code == 200 and risk.json()["arr"] is None

    pages = httpx.Client(base_url=site["base"], timeout=60, follow_redirects=True,
                         headers={"Accept": "text/html"})
    assert pages.post("/login", data={"key": site["key"], "next": "/"}).status_code == 200
    shown = {}
    for path in ("/", "/?sort=drop", "/?sort=renewal", f"/accounts/{account}", "/model"):
        answer = pages.get(path)
        assert answer.status_code == 200, (path, answer.text[-2000:])
        shown[path] = answer.text
        assert "nan" not in _text(answer.text).lower().split(), path
    assert 'id="revenue"' not in shown["/"]  # no "ARR at risk: 0 of 0"
    assert f"GRR {NONE} " in _text(shown["/"])  # the KPI card shows none, not 0.0%
    assert 'id="no-arr"' in shown["/model"]


def test_forecast_says_that_there_is_no_revenue_without_subscriptions(home: Path) -> None:
    refused = churnlens(home, "forecast", check=False)
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 2, said
    assert said.startswith("Cannot forecast: no ARR to forecast")
    assert "subscriptions" in said and "retrain" not in said
