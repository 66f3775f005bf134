"""Churn by month and before the renewal: in the score table, the API and what-if, consistent
with the churn probability shown beside them."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from homes import served_home

from churnlens.serving import score as scoring
from churnlens.serving.timing import BY_MONTH, timing_sentence
from churnlens.settings import load_settings
from churnlens.training.hazard import churn_before_renewal, scaled_curve
from conftest import serve, stop


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return served_home(tmp_path_factory, "timing")


def _table(home: Path) -> pd.DataFrame:
    return pd.read_parquet(next((home / "scores").glob("*.parquet")))


def test_the_curve_ends_at_the_churn_probability_and_never_falls(
        served: tuple[Path, dict[str, str]]) -> None:
    table = _table(served[0])
    curve = table[list(BY_MONTH)].to_numpy()
    assert np.isfinite(curve).all() and ((curve >= 0) & (curve <= 1)).all()
    assert (np.diff(curve, axis=1) >= -1e-12).all()
    np.testing.assert_allclose(curve[:, -1], table["churn_probability"], atol=1e-12)
    assert (curve[:, 0] < curve[:, -1]).mean() > 0.9  # timing, not one number three times


def test_before_renewal_reads_the_month_that_holds_the_renewal(
        served: tuple[Path, dict[str, str]]) -> None:
    table = _table(served[0])
    days = table["days_to_renewal"].to_numpy(float)
    known = ~np.isnan(days)
    assert known.mean() > 0.9
    month = np.minimum(days[known] // 30 + 1, 3).astype(int)
    curve = table.loc[known, list(BY_MONTH)].to_numpy()
    expected = curve[np.arange(len(curve)), month - 1]
    np.testing.assert_allclose(table.loc[known, "churn_before_renewal"], expected, atol=1e-12)
    beyond = table.loc[known, "renewal_beyond_horizon"].astype(bool).to_numpy()
    np.testing.assert_array_equal(beyond, days[known] >= 90)
    assert table.loc[~known, "churn_before_renewal"].isna().all()
    within = table[known & ~table["renewal_beyond_horizon"].fillna(True).to_numpy(bool)]
    assert within["timing_summary"].str.contains("chance it churns before its renewal").all()


def test_the_served_curve_matches_the_hazard_model_of_the_bundle(
        served: tuple[Path, dict[str, str]]) -> None:
    settings = load_settings(home=served[0])
    bundle = scoring.champion(settings)
    frame, _ = scoring.latest_snapshot(settings)
    assert bundle.hazard is not None
    x = bundle.space.matrix(frame)
    from_frame = bundle.hazard.curve(x)
    from_array = bundle.hazard.curve_of_array(bundle.space.array(frame), bundle.space.features)
    np.testing.assert_allclose(from_array, from_frame, atol=1e-12)
    table = _table(served[0]).set_index("account_id").loc[frame["account_id"]]
    np.testing.assert_allclose(
        table[list(BY_MONTH)].to_numpy(),
        scaled_curve(from_frame, bundle.models["churn"].probability(x)), atol=1e-12)


def test_the_api_and_what_if_answer_with_the_timing(
        served: tuple[Path, dict[str, str]]) -> None:
    home, keys = served
    table = _table(home)
    soon = table[table["days_to_renewal"] < 30].iloc[0]
    process, base = serve(home)
    try:
        answer = httpx.get(f"{base}/v1/accounts/{soon['account_id']}/risk",
                           headers={"X-API-Key": keys["read"]}, timeout=30).json()
        timing = answer["timing"]
        assert timing["by_month"][-1] == pytest.approx(answer["churn_probability"])
        assert timing["before_renewal"] == pytest.approx(timing["by_month"][0])
        assert timing["renewal_beyond_horizon"] is False
        assert timing["days_to_renewal"] == soon["days_to_renewal"]
        assert timing["summary"] == soon["timing_summary"]

        # the renewal moved beyond the horizon: the answer says the figure is a lower bound
        later = httpx.post(f"{base}/v1/what-if", headers={"X-API-Key": keys["whatif"]},
                           json={"account_id": soon["account_id"],
                                 "features": {"days_to_renewal": 200}}, timeout=30).json()
    finally:
        stop(process)
    moved = later["timing"]
    assert moved["renewal_beyond_horizon"] is True and moved["days_to_renewal"] == 200
    assert moved["before_renewal"] == pytest.approx(moved["by_month"][-1])
    assert moved["by_month"][-1] == pytest.approx(later["churn_probability"])
    assert "beyond the 90-day horizon: at least" in moved["summary"]


def test_sentences_for_each_kind_of_renewal() -> None:
    curve = [0.08, 0.18, 0.31]
    assert timing_sentence(curve, 0.18, 40, False, 30, 90) == (
        "18% chance it churns before its renewal in 40 days. "
        "Within 30 days 8%, 60 days 18%, 90 days 31%.")
    assert timing_sentence(curve, 0.31, 200, True, 30, 90).startswith(
        "Renewal in 200 days, beyond the 90-day horizon: at least 31% chance")
    assert timing_sentence(curve, float("nan"), float("nan"), False, 30, 90).startswith(
        "No renewal date known.")
    assert timing_sentence(curve, 0.08, 0, False, 30, 90).startswith(
        "8% chance it churns before its renewal today.")


def test_scaling_keeps_the_shape_and_takes_the_level_of_the_churn_model() -> None:
    rng = np.random.default_rng(3)
    hazard = rng.uniform(0, 0.3, size=(500, 3))
    curve = 1 - np.cumprod(1 - hazard, axis=1)
    p = rng.uniform(0, 1, size=500)
    scaled = scaled_curve(curve, p)
    np.testing.assert_allclose(scaled[:, -1], p, atol=1e-12)
    assert (np.diff(scaled, axis=1) >= -1e-12).all()
    np.testing.assert_allclose(scaled[:, 0] / scaled[:, -1], curve[:, 0] / curve[:, -1],
                               rtol=1e-9)
    before, beyond = churn_before_renewal(scaled[:5], np.array([0, 35, 89, 90, np.nan]))
    np.testing.assert_allclose(before[:3], [scaled[0, 0], scaled[1, 1], scaled[2, 2]])
    assert beyond.tolist() == [False, False, False, True, True]
