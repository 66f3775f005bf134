"""Stale scores: a newer snapshot could be scored from the raw history, or the score table is
older than ``max_score_age_days``; historical data scored today is fresh. The rule on plain
dates, then the real app in process on a copy of the shared trained company: every answer
that carries scores, /readyz, the metrics and the pages say so."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from homes import served_home

from churnlens.features.kpis import compute_report
from churnlens.features.snapshots import grid_dates
from churnlens.features.store import MANIFEST, SNAPSHOTS, recover
from churnlens.raw.history import load_history
from churnlens.serving.app import create_app
from churnlens.serving.freshness import judge
from churnlens.settings import Settings

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
SAME_SITE = {"Origin": "http://testserver"}


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("grid", ["monthly", "weekly"])
@pytest.mark.parametrize("end", [date(2024, 5, 1), date(2024, 5, 17), date(2024, 6, 30)])
def test_scores_of_the_newest_snapshot_the_history_allows_are_fresh_the_one_before_stale(
        grid: str, end: date) -> None:
    """The rule agrees with the feature pipeline's grid: the newest date it would build from
    a history ending before ``end`` is fresh, the one before is a step behind."""
    *_, before, newest = grid_dates(date(2023, 1, 1), end, grid)
    fresh = judge(newest, NOW, end, grid, max_age_days=2, now=NOW)
    assert not fresh.stale and fresh.history_last_day == end - timedelta(days=1)
    behind = judge(before, NOW, end, grid, max_age_days=2, now=NOW)
    assert behind.stale and len(behind.reasons) == 1
    assert f"runs to {end - timedelta(days=1)}" in behind.reasons[0]
    assert f"a snapshot of {newest} could be scored" in behind.reasons[0]


def test_historical_data_scored_today_is_fresh() -> None:
    """A history of 2024 scored today: nothing newer can be made from it, whatever the date."""
    scores = judge(date(2024, 5, 1), NOW - timedelta(hours=3), date(2024, 5, 1), "monthly",
                   max_age_days=2, now=NOW)
    assert not scores.stale and scores.answer()["reasons"] == []
    assert scores.answer()["remedy"] is None and scores.age_days == pytest.approx(0.125)


def test_a_table_written_longer_ago_than_the_setting_is_stale() -> None:
    written = NOW - timedelta(days=3, hours=2)
    old = judge(date(2024, 5, 1), written, date(2024, 5, 1), "monthly", max_age_days=2,
                now=NOW)
    assert old.stale and old.age_days == pytest.approx(3 + 2 / 24)
    assert old.reasons == ("the score table was written 3 days ago, more than the 2 days "
                           "the setting max_score_age_days allows",)
    assert old.answer()["remedy"] == "churnlens features && churnlens score"
    assert not judge(date(2024, 5, 1), written, date(2024, 5, 1), "monthly", max_age_days=4,
                     now=NOW).stale
    assert not judge(date(2024, 5, 1), written, date(2024, 5, 1), "monthly", max_age_days=0,
                     now=NOW).stale  # 0: never stale by age
    # while the server builds the table the scores are as new as they can be
    assert judge(date(2024, 5, 1), None, None, "monthly", max_age_days=2, now=NOW).age_days == 0


# --------------------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The shared trained company (features, champion, score table), read only here, with
    its KPI report written once: each app then reads it instead of computing the KPIs in a
    thread that would still be inside DuckDB when the test process exits (which aborts)."""
    home, keys = served_home(tmp_path_factory, "freshness")
    settings = Settings(home=home)
    compute_report(settings, load_history(settings))
    return home, keys


@pytest.fixture
def home(company: tuple[Path, dict[str, str]], tmp_path: Path) -> Path:
    """A copy of it each test may change; its feature store's ``snapshots`` a link to the
    live build, as ``churnlens features`` leaves it."""
    copy = tmp_path / "home"
    shutil.copytree(company[0], copy)
    recover(copy / "features")
    return copy


@pytest.fixture
def keys(company: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return company[1]


def _client(home: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(home=home, **settings)), follow_redirects=False)


def _score_table(home: Path) -> Path:
    (table,) = (home / "scores").glob("*.parquet")
    return table


def _age_table(home: Path, days: float) -> None:
    when = time.time() - days * 86400
    os.utime(_score_table(home), (when, when))


def _manifest(build: Path) -> dict[str, Any]:
    return json.loads((build / f".{MANIFEST}").read_text())  # type: ignore[no-any-return]


def _until(client: TestClient, status: str) -> dict[str, Any]:
    """/readyz once it says ``status`` (the watcher polls every 0.2 s)."""
    deadline = time.monotonic() + 30
    while (ready := client.get("/readyz").json())["status"] != status:
        assert time.monotonic() < deadline, ready
        time.sleep(0.2)
    return ready


@pytest.mark.e2e
def test_historical_scores_written_today_are_ready_and_show_no_banner(
        home: Path, keys: dict[str, str]) -> None:
    with _client(home, reload_poll_seconds=0) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert ready.json()["scores"]["stale"] is False
        portfolio = client.get("/v1/accounts", headers={"X-API-Key": keys["read"]}).json()
        assert portfolio["scores"]["stale"] is False
        client.post("/login", data={"key": keys["read"]}, headers=SAME_SITE)
        page = client.get("/")
        assert page.status_code == 200 and "stale-scores" not in page.text
        assert 'churnlens_scores_stale 0.0' in client.get("/metrics").text


@pytest.mark.e2e
def test_an_old_score_table_is_marked_stale_in_every_answer_page_and_metric(
        home: Path, keys: dict[str, str]) -> None:
    _age_table(home, 5)
    with _client(home, reload_poll_seconds=0) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200  # degraded, still serving: the only scores there are
        assert ready.json()["ready"] is True and ready.json()["status"] == "degraded"
        assert ready.json()["scores"]["age_days"] == pytest.approx(5, abs=0.01)
        assert "written 5 days ago" in ready.json()["scores"]["reasons"][0]

        read = {"X-API-Key": keys["read"]}
        portfolio = client.get("/v1/accounts", params={"limit": 2}, headers=read).json()
        account = portfolio["accounts"][0]["account_id"]
        one = client.get(f"/v1/accounts/{account}/risk", headers=read).json()
        batch = client.post("/v1/risk", json={"account_ids": [account]}, headers=read).json()
        what_if = client.post("/v1/what-if", json={"account_id": account, "features": {}},
                              headers={"X-API-Key": keys["whatif"]}).json()
        for answer in (portfolio, one, batch, what_if):
            assert answer["scores"]["stale"] is True, answer
            assert answer["scores"]["remedy"] == "churnlens features && churnlens score"
        assert one["churn_probability"] == batch["results"][0]["churn_probability"]

        metrics = client.get("/metrics").text
        age = next(line for line in metrics.splitlines()
                   if line.startswith("churnlens_scores_age_days "))
        assert float(age.split()[1]) == pytest.approx(5, abs=0.01)
        assert "churnlens_scores_stale 1.0" in metrics

        client.post("/login", data={"key": keys["read"]}, headers=SAME_SITE)
        for path in ("/", f"/accounts/{account}", "/model"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert 'id="stale-scores"' in page.text, path
            assert "scored 5 days ago" in page.text
            assert "churnlens features &amp;&amp; churnlens score" in page.text
        assert "stale-scores" not in client.get("/login").text  # nothing shown signed out


@pytest.mark.e2e
def test_scores_a_grid_step_behind_the_raw_history_are_stale(home: Path) -> None:
    """``churnlens features`` wrote a build whose history runs a month past the served
    snapshot: the watcher reads its manifest at once, so the scores are stale until a newer
    snapshot is served."""
    features = home / "features"
    with _client(home, reload_poll_seconds=0.2) as client:
        served = _until(client, "ready")["as_of"]
        live = features / os.readlink(features / SNAPSHOTS)
        build = features / ".snapshots-later"
        shutil.copytree(live, build)
        manifest = _manifest(build)
        manifest["history_end"] = (date.fromisoformat(served) + timedelta(days=45)).isoformat()
        (build / f".{MANIFEST}").write_text(json.dumps(manifest))
        link = features / ".snapshots.link-test"
        os.symlink(build.name, link)
        os.replace(link, features / SNAPSHOTS)

        ready = _until(client, "degraded")
        assert ready["as_of"] == served and ready["scores"]["stale"] is True
        (reason,) = ready["scores"]["reasons"]
        next_month = date.fromisoformat(served).month % 12 + 1
        assert "a snapshot of" in reason and f"-{next_month:02d}-01 could be scored" in reason


@pytest.mark.e2e
def test_a_score_table_rewritten_by_the_nightly_score_is_fresh_again(home: Path) -> None:
    _age_table(home, 3)
    with _client(home, reload_poll_seconds=0.2) as client:
        assert client.get("/readyz").json()["status"] == "degraded"
        table = _score_table(home)  # `churnlens score` writes beside it, renames into place
        shutil.copyfile(table, table.with_name(".rewritten.tmp"))
        os.replace(table.with_name(".rewritten.tmp"), table)
        ready = _until(client, "ready")
        assert ready["scores"]["age_days"] < 0.01 and ready["score_table"] == "score table"
