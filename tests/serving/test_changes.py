"""What changed since the last score: the movers sum to the change, in the table, the API
and the pages' data."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from homes import served_home, trained_home

from churnlens.features.registry import REGISTRY, load_all
from churnlens.serving import score as scoring
from churnlens.serving.changes import previous_partition, previous_snapshot, summary
from churnlens.serving.playbooks import load_playbooks
from churnlens.settings import load_settings
from conftest import serve, stop


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    home = trained_home(tmp_path_factory)
    settings = load_settings(home=home)
    frame, as_of = scoring.latest_snapshot(settings)
    previous = previous_snapshot(settings.layout.features, as_of, frame["account_id"])
    assert previous is not None
    table = scoring.score_frame(scoring.champion(settings), frame, settings,
                                load_playbooks(None), previous=previous)
    return home, table


def test_the_movers_sum_to_the_change_in_probability(scored: tuple[Path, pd.DataFrame]) -> None:
    home, table = scored
    settings = load_settings(home=home)
    bundle = scoring.champion(settings)
    _, as_of = scoring.latest_snapshot(settings)
    path, previous_as_of = previous_partition(settings.layout.features, as_of)  # type: ignore[misc]
    then = scoring.score_probabilities(bundle, pd.read_parquet(path), settings)
    then = then.set_index("account_id")
    before = then["churn_probability"]

    known = table[table["change_json"].notna()]
    assert 0.5 * len(table) < len(known) < len(table)  # most accounts were there, a few are new
    expected = 100 * (known["churn_probability"] - known["account_id"].map(before))
    np.testing.assert_allclose(known["churn_change"], expected, atol=1e-9)
    # levers and context apart, each list closed by its rest: together they sum to the change
    levers = known["change_json"].map(lambda text: sum(d["points"] for d in json.loads(text)))
    context = known["change_context_json"].map(
        lambda text: sum(d["points"] for d in json.loads(text)))
    np.testing.assert_allclose(levers + context, known["churn_change"], atol=1e-9)
    load_all()
    for text, role in (("change_json", "lever"), ("change_context_json", "context")):
        named = [d for t in known[text] for d in json.loads(t) if d["feature"] is not None]
        assert named and {REGISTRY[d["feature"]].role for d in named} == {role}
    # the health change is the health score's change, exactly: the health of the risk a CSM
    # sees (renewal risk where there is a renewal date) now and then
    health_before = known["account_id"].map(then["health_score"])
    np.testing.assert_allclose(known["health_change"],
                               np.round(known["health_score"] - health_before, 1), atol=1e-9)
    risk_change = 100 * (known["risk"] - known["account_id"].map(then["risk"]))
    moved = known[risk_change.abs() >= 1.0]
    assert len(moved) and (moved["health_change"] != 0).all()  # never 'held' while risk moved
    assert (known["previous_as_of"] == previous_as_of).all()
    # new accounts have no change, not a made-up one
    new = table[table["change_json"].isna()]
    assert new["churn_change"].isna().all() and new["change_summary"].isna().all()


def test_each_mover_changed_value_and_reads_as_a_sentence(
        scored: tuple[Path, pd.DataFrame]) -> None:
    _, table = scored
    load_all()
    worst = table.loc[table["health_change"].idxmin()]
    assert worst["health_change"] < 0 and worst["change_summary"].startswith("Health fell")
    movers = json.loads(worst["change_json"])
    named = [m for m in movers if m["feature"] is not None]
    assert named and movers[-1]["feature"] is None  # the rest, so the list sums to the change
    for mover in named:
        assert mover["before"] != mover["after"]
        was = REGISTRY[mover["feature"]].shown(mover["before"])
        assert mover["sentence"].endswith(f"(was {was})")
    assert worst["change_1_sentence"] == named[0]["sentence"]


def test_summary_names_the_movers_in_the_direction_of_the_change() -> None:
    up = {"feature": "tickets_30d", "points": 6.0, "sentence": "4 tickets (was 0)"}
    down = {"feature": "mrr", "points": -1.0, "sentence": "MRR 900 (was 800)"}
    assert summary(5.0, -14.0, [up, down]) == \
        "Health fell 14.0 points (churn risk +5.0 points): 4 tickets (was 0)."
    renewal = {"feature": "days_to_renewal", "points": 3.0, "sentence": "Renewal in 20 days"}
    assert summary(2.5, -1.5, [down], [renewal]) == ("Health fell 1.5 points (churn risk +2.5 "
                                                     "points): MRR 900 (was 800); context: "
                                                     "Renewal in 20 days.")
    assert summary(0.2, 0.0, [up]) == "Little changed since the last score."


def test_the_api_answers_with_the_change(tmp_path_factory: pytest.TempPathFactory) -> None:
    home, keys = served_home(tmp_path_factory, "changes")
    table = pd.read_parquet(next((home / "scores").glob("*.parquet")))
    assert "change_json" in table
    worst = table.loc[table["health_change"].idxmin(), "account_id"]
    riskiest = scoring.sort_riskiest(table)["account_id"].iloc[0]
    process, base = serve(home)
    try:
        answer = httpx.get(f"{base}/v1/accounts/{worst}/risk",
                           headers={"X-API-Key": keys["read"]}, timeout=30).json()
        risky = httpx.get(f"{base}/v1/accounts/{riskiest}/risk",
                          headers={"X-API-Key": keys["read"]}, timeout=30).json()
        improvement = risky["improvements"][0]
        what_if = httpx.post(f"{base}/v1/what-if", headers={"X-API-Key": keys["whatif"]},
                             json={"account_id": riskiest,
                                   "features": improvement["changes"]}, timeout=30).json()
    finally:
        stop(process)
    change = answer["change"]
    assert change["health_points"] < 0 and change["summary"].startswith("Health fell")
    assert sum(d["points"] for d in change["drivers"] + change["context"]) == pytest.approx(
        change["churn_points"])
    # the riskiest account: drivers are levers, renewal timing is context, and its first
    # improvement is what a what-if with the same change answers
    load_all()
    assert all(REGISTRY[d["feature"]].is_lever for d in risky["drivers"])
    assert "days_to_renewal" in {d["feature"] for d in risky["context"]}
    assert what_if["churn_probability"] == pytest.approx(
        improvement["improved_churn_probability"], abs=1e-9)
    assert what_if["churn_probability"] < risky["churn_probability"]
