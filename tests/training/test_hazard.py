"""The churn-month hazard model and the segment review: hand-made frames for the logic, and one
small generated company trained end to end for the figures the report promises."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from browser import chromium, sign_in
from churnlens.features.registry import REGISTRY, load_all
from churnlens.serving.playbooks import load_playbooks
from churnlens.serving.score import latest_snapshot, score_frame, score_probabilities
from churnlens.serving.state import ScoreTable
from churnlens.settings import load_settings
from churnlens.training import hazard
from churnlens.training.bundle import load_bundle
from churnlens.training.coldstart import fit_cold_start
from churnlens.training.evaluation import segment_review
from churnlens.training.matrix import load_snapshots
from churnlens.training.splits import choose_split
from conftest import churnlens, serve, stop

# --------------------------------------------------------------------------- person-period


def _snapshots() -> pd.DataFrame:
    """Four snapshots: churn on day 0 (month 1), day 45 (month 2), day 89 (month 3), none."""
    return pd.DataFrame({
        "account_id": ["a", "b", "c", "d"],
        "churned": [True, True, True, False],
        "churn_day": pd.array([0, 45, 89, None], dtype="Int32"),
        "mrr": [10.0, 20.0, 30.0, 40.0],
    })


def test_person_period_has_one_row_per_month_at_risk() -> None:
    rows = hazard.person_period(_snapshots(), horizon_days=90)
    assert list(zip(rows["account_id"], rows[hazard.PERIOD], rows[hazard.EVENT],
                    strict=True)) == [
        ("a", 1, 1),
        ("b", 1, 0), ("b", 2, 1),
        ("c", 1, 0), ("c", 2, 0), ("c", 3, 1),
        ("d", 1, 0), ("d", 2, 0), ("d", 3, 0),
    ]
    assert rows[hazard.SNAPSHOT].tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3]
    assert rows["mrr"].tolist() == [10.0, 20.0, 20.0, 30.0, 30.0, 30.0, 40.0, 40.0, 40.0]
    # every churner has exactly one event, in its churn month
    assert rows[hazard.EVENT].sum() == 3
    assert hazard.churn_period(_snapshots(), 90).tolist() == [1, 2, 3, 0]


def test_a_churn_without_a_day_is_refused() -> None:
    frame = _snapshots()
    frame.loc[1, "churn_day"] = None
    with pytest.raises(ValueError, match="1 churned snapshots have no churn_day"):
        hazard.person_period(frame, horizon_days=90)


def test_a_shorter_last_month_and_a_longer_horizon() -> None:
    assert hazard.periods_of(90) == 3 and hazard.periods_of(100) == 4
    assert hazard.periods_of(30) == 1
    frame = pd.DataFrame({"churned": [True], "churn_day": [95]})
    assert hazard.churn_period(frame, 100).tolist() == [4]


# --------------------------------------------------------------------------- curves


def _fitted(rows: int = 600, seed: int = 3) -> tuple[hazard.HazardModel, pd.DataFrame]:
    """A small hazard model on made-up snapshots whose churn month follows the renewal."""
    rng = np.random.default_rng(seed)
    renewal = rng.integers(0, 365, rows)
    risk = rng.normal(size=rows)
    churn = (renewal < 90) & (rng.random(rows) < 1 / (1 + np.exp(-risk)))
    frame = pd.DataFrame({"days_to_renewal": renewal.astype(float), "risk": risk,
                          "churned": churn,
                          "churn_day": pd.array(np.where(churn, renewal, 0), dtype="Int32")})
    frame.loc[~churn, "churn_day"] = None
    rows_pp = hazard.person_period(frame, 90)
    x = hazard.with_period(rows_pp[["days_to_renewal", "risk"]], rows_pp[hazard.PERIOD])
    booster = lgb.train({"objective": "binary", "num_leaves": 4, "verbosity": -1,
                         "min_child_samples": 5, "seed": 1}, lgb.Dataset(
                             x, label=rows_pp[hazard.EVENT]), num_boost_round=30)
    return hazard.HazardModel(booster=booster, periods=3), frame


def test_the_curve_is_a_cumulative_probability() -> None:
    model, frame = _fitted()
    curve = hazard.predict_curve(model, frame[["days_to_renewal", "risk"]])
    assert curve.shape == (len(frame), 3)
    assert ((curve >= 0) & (curve <= 1)).all()
    assert (np.diff(curve, axis=1) >= -1e-12).all()
    # the renewal drives the month: accounts renewing in month 1 are mostly at risk in month 1
    early = frame["days_to_renewal"].to_numpy() < 30
    assert curve[early, 0].mean() > 3 * curve[~early, 0].mean()


def test_cumulative_from_any_hazards_is_monotone_and_bounded() -> None:
    hazards = np.random.default_rng(0).uniform(-0.2, 1.2, (50, 4))
    curve = hazard.cumulative(hazards)
    assert ((curve >= 0) & (curve <= 1)).all() and (np.diff(curve, axis=1) >= 0).all()
    assert np.allclose(hazard.cumulative(np.array([[0.1, 0.2, 0.5]])),
                       [[0.1, 1 - 0.9 * 0.8, 1 - 0.9 * 0.8 * 0.5]])


def test_churn_before_renewal_reads_the_month_of_the_renewal() -> None:
    curve = np.array([[0.1, 0.2, 0.3]] * 5)
    before, beyond = hazard.churn_before_renewal(curve, np.array([0, 29, 30, 89, 200.0]))
    assert before.tolist() == [0.1, 0.1, 0.2, 0.3, 0.3]
    assert beyond.tolist() == [False, False, False, False, True]
    _, unknown = hazard.churn_before_renewal(curve[:1], np.array([np.nan]))
    assert unknown.tolist() == [True]


# --------------------------------------------------------------------------- metrics


def test_concordance_rewards_the_right_order_at_the_right_month() -> None:
    month = np.array([1, 2, 0, 0])
    right = np.array([[0.9, 0.95, 0.97], [0.2, 0.8, 0.9], [0.1, 0.2, 0.3], [0.1, 0.1, 0.2]])
    assert hazard.concordance_td(right, month) == 1.0
    assert hazard.concordance_td(1 - right[:, ::-1], month) < 0.5
    # one curve for everyone ranks nobody
    same = np.tile([0.1, 0.2, 0.3], (4, 1))
    assert hazard.concordance_td(same, month) == 0.5
    assert hazard.concordance_at(same, month, 3) == 0.5
    # month 1 only: account 0 against the three still there after month 1
    assert hazard.concordance_at(right, month, 1) == 1.0
    assert np.isnan(hazard.concordance_td(same, np.zeros(4, dtype=int)))


def test_integrated_brier_by_hand() -> None:
    month = np.array([1, 0])
    curve = np.array([[0.5, 0.5, 0.5], [0.0, 0.0, 0.5]])
    # month 1..3: account 0 churned (target 1), account 1 did not (target 0)
    expected = np.mean([(0.25 + 0) / 2, (0.25 + 0) / 2, (0.25 + 0.25) / 2])
    assert hazard.integrated_brier(curve, month) == pytest.approx(expected)
    assert hazard.kaplan_meier(np.array([1, 2, 0, 0]), 3).tolist() == pytest.approx(
        [0.25, 0.5, 0.5])
    assert hazard.spread_curve(np.array([0.271]), 3)[0] == pytest.approx([0.1, 0.19, 0.271])


# --------------------------------------------------------------------------- segments


def test_a_segment_ranked_at_random_is_flagged_and_the_others_are_not() -> None:
    rng = np.random.default_rng(11)
    rows = 3000
    region = rng.choice(["APAC", "EMEA", "NA"], rows)
    p = rng.beta(1, 8, rows)
    y = (rng.random(rows) < p).astype(np.int8)
    shuffled = p.copy()
    apac = region == "APAC"
    shuffled[apac] = rng.permutation(p[apac])  # same calibration-in-the-large, no ranking
    frame = pd.DataFrame({"account_id": np.arange(rows), "region": region, "mrr": 100.0})
    review = segment_review(frame, {"churn": (y, shuffled)}, 1e9, 1e8)
    assert len(review["flags"]) == 1, review["flags"]
    assert review["flags"][0].startswith("Churn model, region APAC: AUC 0.")
    assert f"(n={int(apac.sum())})" in review["flags"][0]
    by = review["churn"]["by"]["region"]
    assert by["APAC"]["flags"] and not by["EMEA"]["flags"] and not by["NA"]["flags"]
    assert by["NA"]["reviewed"] and by["NA"]["rows"] == int((region == "NA").sum())
    assert review["worst_auc_gap"]["churn"] > 0.1


def test_a_miscalibrated_segment_is_flagged_and_a_small_one_is_not_reviewed() -> None:
    rng = np.random.default_rng(5)
    rows = 4000
    draw = rng.random(rows)
    plan = np.where(draw < 0.03, "tiny", np.where(draw < 0.2, "starter", "growth"))
    p = rng.beta(1, 8, rows)
    y = (rng.random(rows) < p).astype(np.int8)
    off = p.copy()
    # a segment a sixth of the rows, over-predicted by 60%: the overall error stays small
    off[plan == "starter"] = np.clip(p[plan == "starter"] * 1.6, 0, 1)
    off[plan == "tiny"] = rng.permutation(p[plan == "tiny"])
    frame = pd.DataFrame({"account_id": np.arange(rows), "plan": plan, "mrr": 100.0})
    review = segment_review(frame, {"churn": (y, off)}, 1e9, 1e8)
    assert [f.split(":")[0] for f in review["flags"]] == ["Churn model, plan starter"]
    assert "observed, over-predicting by" in review["flags"][0]
    assert not review["churn"]["by"]["plan"]["tiny"]["reviewed"]


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("hazard")
    churnlens(home, "synth", "--accounts", "700", "--months", "24", "--seed", "5",
              "--rollouts", "8")
    churnlens(home, "features")
    # cold start always: on this company the full model predicts new accounts better, so
    # auto would leave it out (see the test of the choice below)
    out = churnlens(home, "train", "--json",
                    env={"CHURNLENS_BOOTSTRAP": "0", "CHURNLENS_COLD_START": "always"})
    return {"home": home, "report": json.loads(out.stdout)}


@pytest.mark.e2e
def test_the_hazard_model_beats_the_covariate_free_curve_out_of_time(
        trained: dict[str, Any]) -> None:
    figures = trained["report"]["hazard"]
    ours, km = figures["validation"], figures["baselines"]["kaplan_meier"]
    assert 0.75 < ours["c_td"] <= 1 and all(c > 0.7 for c in ours["c_by_month"])
    assert km["c_td"] == 0.5
    assert ours["ibs"] < km["ibs"]
    assert figures["periods"] == 3 and sum(figures["churners_by_month"]) > 20
    # the same labels: by the horizon, the hazard and the churn model agree on average
    check = figures["horizon_check"]
    assert abs(check["hazard_mean"] - check["churn_model_mean"]) < 0.03
    assert abs(check["hazard_mean"] - check["observed_rate"]) < 0.03
    assert 0 < figures["before_renewal"]["mean_probability"] < check["hazard_mean"]
    # what is served: the hazard's timing at the churn model's level, also out of time
    served = figures["served"]
    assert 0.75 < served["c_td"] <= 1 and served["ibs"] < km["ibs"]
    assert served["mean_by_month"][-1] == pytest.approx(check["churn_model_mean"])


@pytest.mark.e2e
def test_the_bundle_carries_the_hazard_and_older_bundles_still_load(
        trained: dict[str, Any], tmp_path: Path) -> None:
    from churnlens.features.pipeline import read_snapshots

    folder = trained["home"] / "models" / "v1"
    bundle = load_bundle(folder)
    assert bundle.hazard is not None
    rows = read_snapshots(trained["home"] / "features").to_pandas().head(50)
    curve = bundle.hazard.curve(bundle.space.matrix(rows))
    assert curve.shape == (50, 3)
    assert ((curve >= 0) & (curve <= 1)).all() and (np.diff(curve, axis=1) >= 0).all()

    older = tmp_path / "older"
    shutil.copytree(folder, older)
    manifest = json.loads((older / "manifest.json").read_text())
    for name in ("hazard.lgb.txt", "hazard.json"):
        (older / name).unlink()
        del manifest["files"][name]
    (older / "manifest.json").write_text(json.dumps(manifest))
    assert load_bundle(older).hazard is None
    # scoring with it still works: the timing columns are empty, not made up
    table = score_probabilities(load_bundle(older), rows,
                                load_settings(home=trained["home"]))
    assert table["churn_by_month_1"].isna().all() and table["timing_summary"].isna().all()


@pytest.mark.e2e
def test_the_revenue_forecast_holds_its_interval_on_past_quarters(
        trained: dict[str, Any]) -> None:
    home = trained["home"]
    out = churnlens(home, "forecast", "--quarters", "10").stdout
    assert "mean absolute error" in out and "inside the 90% interval" in out
    report = json.loads((home / "reports" / "forecast.json").read_text())
    summary = report["backtest"]["summary"]
    for measure in ("grr", "nrr"):
        portfolio = summary[f"{measure}_portfolio"]
        assert portfolio["quarters"] == 10
        assert portfolio["coverage"] >= 0.8, summary  # the interval claims 90%
        assert portfolio["mean_absolute_error"] < 0.05
        # per segment it is reported too (fewer accounts each: wider, and noisier)
        assert summary[f"{measure}_segments"]["quarters"] > 10
    checks = report["backtest"]["checks"]
    assert len({c["start"] for c in checks}) == 10
    # the next quarter: the portfolio and each segment, GRR below NRR
    ahead = report["forecast"]["portfolio"]["forecast"]
    assert ahead["grr"]["low"] < ahead["grr"]["expected"] < ahead["grr"]["high"]
    assert ahead["grr"]["expected"] <= 1.0  # gross retention never gains
    assert ahead["grr"]["expected"] < ahead["nrr"]["expected"]
    assert {"tech-touch"} <= set(report["forecast"])


@pytest.mark.e2e
def test_new_accounts_are_answered_by_the_cold_start_model(trained: dict[str, Any]) -> None:
    report = trained["report"]["cold_start"]
    figures = report["validation"]  # out of time, against the full model on the same rows
    assert figures["positives"] > 0 and 0.5 < figures["cold_start"]["roc_auc"] <= 1
    assert report["chosen"] and report["reason"] == "cold_start is set to always"
    settings = load_settings(home=trained["home"])
    bundle = load_bundle(trained["home"] / "models" / "v1")
    cold = bundle.cold_start
    assert cold is not None and list(cold.space.features) == report["features"]
    load_all()
    assert {REGISTRY[name].pillar for name in cold.space.features} == {"onboarding"}

    frame, _ = latest_snapshot(settings)
    table = score_frame(bundle, frame, settings, load_playbooks(None)).set_index("account_id")
    new = frame.set_index("account_id")["tenure_days"] < 90
    assert 0 < new.sum() < len(new)
    assert (table.loc[new.index[new], "churn_model"] == "cold-start").all()
    assert (table.loc[new.index[~new], "churn_model"] == "full").all()
    young = frame[frame["tenure_days"] < 90]
    np.testing.assert_allclose(table.loc[young["account_id"], "churn_probability"],
                               cold.model.probability(cold.space.matrix(young)), atol=1e-12)
    # explained by its own features: every point on the onboarding pillar
    points = table.loc[young["account_id"]]
    for pillar in ("adoption", "support", "satisfaction", "commercial"):
        assert (points[f"{pillar}_points"] == 0).all()
    assert (points["failing_pillar"].isin(["onboarding"]) | points["failing_pillar"].isna()).all()
    answer = ScoreTable(table.reset_index()).answer(str(young["account_id"].iloc[0]))
    assert answer["churn_model"] == "cold-start"
    assert all(d["pillar"] == "onboarding" for d in answer["drivers"])


@pytest.mark.e2e
def test_the_pages_show_the_cold_start_model_and_the_segment_review(
        trained: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    home = trained["home"]
    frame, _ = latest_snapshot(load_settings(home=home))
    young = str(frame.loc[frame["tenure_days"] < 90, "account_id"].iloc[0])
    older = str(frame.loc[frame["tenure_days"] >= 365, "account_id"].iloc[0])
    key = churnlens(home, "keys", "create", "--name", "csm", "--scope", "read"
                    ).stdout.strip().splitlines()[-1]
    process, base = serve(home)
    try:
        with chromium() as browser:
            sign_in(browser, base, key)
            browser.get(f"{base}/accounts/{young}")
            note = browser.find_element(By.ID, "churn-model").text
            assert "New account" in note and "cold-start model" in note
            assert "onboarding" in note
            # its drivers are onboarding features: the other pillars show no points
            assert "onboarding" in browser.find_element(By.ID, "drivers").text.lower()
            browser.implicitly_wait(0)
            browser.get(f"{base}/accounts/{older}")
            assert browser.find_element(By.ID, "drivers").text
            assert not browser.find_elements(By.ID, "churn-model")
            # the segment review of part 5, on the model page
            browser.get(f"{base}/model")
            segments = browser.find_element(By.ID, "segments").text
            assert "all validation snapshots" in segments and "touch tech-touch" in segments
    finally:
        stop(process)


@pytest.mark.e2e
def test_auto_keeps_the_cold_start_model_only_when_it_predicts_new_accounts_better(
        trained: dict[str, Any]) -> None:
    frame, _ = load_snapshots(trained["home"] / "features")
    labelled = frame[frame["labelled"].astype(bool)]
    split = choose_split(sorted(set(labelled["as_of"])), validation=3, calibration=3,
                         tuning=3).as_dict()
    parts = {name: labelled[labelled["as_of"].astype(str).isin(dates)]
             for name, dates in split.items()}
    bundle = load_bundle(trained["home"] / "models" / "v1")
    model, report = fit_cold_start(parts, bundle.space, 7, 1, bundle.models["churn"], "auto")
    figures = report["validation"]
    better = figures["cold_start"]["brier"] < figures["full_model"]["brier"]
    assert report["chosen"] is better and (model is not None) is better
    assert fit_cold_start(parts, bundle.space, 7, 1, bundle.models["churn"], "never") == (
        None, {"skipped": "cold_start is set to never"})


@pytest.mark.e2e
def test_the_report_reviews_segments(trained: dict[str, Any]) -> None:
    segments = trained["report"]["segments"]
    assert {"plan", "region", "industry", "touch"} <= set(segments["columns"])
    assert isinstance(segments["flags"], list)
    churn = segments["churn"]
    assert churn["overall"]["roc_auc"] > 0.75
    reviewed = [f for levels in churn["by"].values() for f in levels.values() if f["reviewed"]]
    assert reviewed and all(f["rows"] >= 200 and f["positives"] >= 10 for f in reviewed)
    assert (trained["home"] / "reports" / "runs" / trained["report"]["run_id"]
            / "segments.json").is_file()
