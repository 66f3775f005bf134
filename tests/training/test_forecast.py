"""The GRR/NRR forecast: outcome ratios read from snapshots, the analytic interval against a
simulation, and its coverage when the probabilities are right."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from churnlens.training.forecast import (
    Refit,
    RevenueModel,
    actual,
    backtest,
    end_dates,
    expected_expansion_arr,
    forecast,
    retention_interval,
    revenue_outcomes,
)

MODEL = RevenueModel(ratios={"churned": [0.0, 0.0, 0.0, 0.5],
                             "expanded": [1.2, 1.5, 1.3],
                             "neither": [1.0, 1.0, 0.9, 1.0]}, horizon_days=90)


def _snapshots() -> pd.DataFrame:
    rows = []
    for as_of, account, mrr, churned, expanded in [
        (date(2024, 1, 1), "a", 100.0, True, False),   # gone by April
        (date(2024, 1, 1), "b", 100.0, False, True),   # 150 in April
        (date(2024, 1, 1), "c", 200.0, False, False),  # 180 in April (a downgrade)
        (date(2024, 1, 1), "d", 0.0, False, False),    # no ARR: not in the cohort
        (date(2024, 2, 1), "b", 120.0, False, True),   # its end (May) was never built
        (date(2024, 4, 1), "b", 150.0, None, None),
        (date(2024, 4, 1), "c", 180.0, None, None),
    ]:
        rows.append({"as_of": as_of, "account_id": account, "mrr": mrr, "churned": churned,
                     "expanded": expanded})
    return pd.DataFrame(rows)


def test_outcomes_read_arr_at_the_snapshot_a_horizon_later() -> None:
    assert end_dates([date(2024, 1, 1), date(2024, 2, 1), date(2024, 4, 1)], 90) == {
        date(2024, 1, 1): date(2024, 4, 1)}  # 91 days later: within the tolerance
    outcomes = revenue_outcomes(_snapshots(), 90).set_index("account_id")
    assert list(outcomes.index) == ["a", "b", "c"]
    assert outcomes.loc["a", "outcome"] == "churned" and outcomes.loc["a", "ratio"] == 0.0
    assert outcomes.loc["b", "outcome"] == "expanded" and outcomes.loc["b", "ratio"] == 1.5
    assert outcomes.loc["c", "outcome"] == "neither" and outcomes.loc["c", "ratio"] == 0.9
    real = actual(outcomes)
    assert real["nrr"] == pytest.approx((0 + 1200 * 1.5 + 2400 * 0.9) / 4800)
    assert real["grr"] == pytest.approx((0 + 1200 + 2400 * 0.9) / 4800)


def test_the_analytic_forecast_matches_a_simulation() -> None:
    rng = np.random.default_rng(11)
    n = 400
    arr = rng.lognormal(10, 1, n)
    churn, expansion = rng.uniform(0, 0.3, n), rng.uniform(0, 0.2, n)
    predicted = forecast(arr, churn, expansion, MODEL, level=0.9)
    draws = 4000
    u = rng.uniform(size=(draws, n))
    outcome = np.where(u < churn, 0, np.where(u < churn + expansion, 1, 2))
    ratio = np.empty((draws, n))
    for k, name in enumerate(("churned", "expanded", "neither")):
        pool = np.asarray(MODEL.ratios[name])
        ratio[outcome == k] = rng.choice(pool, size=int((outcome == k).sum()))
    nrr = (ratio * arr).sum(axis=1) / arr.sum()
    grr = (np.minimum(ratio, 1) * arr).sum(axis=1) / arr.sum()
    for measure, simulated in (("nrr", nrr), ("grr", grr)):
        guess = predicted[measure]
        assert guess["expected"] == pytest.approx(simulated.mean(),  # 4 standard errors
                                                  abs=4 * simulated.std() / np.sqrt(draws))
        assert guess["sd"] == pytest.approx(simulated.std(), rel=0.05)
        inside = ((simulated >= guess["low"]) & (simulated <= guess["high"])).mean()
        assert 0.87 < inside < 0.93
    assert predicted["churned_arr"] == pytest.approx((arr * churn).sum())


def test_a_time_effect_widens_the_interval_and_nothing_else() -> None:
    arr, churn, expansion = np.full(50, 1000.0), np.full(50, 0.1), np.full(50, 0.1)
    plain = forecast(arr, churn, expansion, MODEL)
    shaky = forecast(arr, churn, expansion, RevenueModel(
        ratios=MODEL.ratios, horizon_days=90, extra_sd={"grr": 0.03, "nrr": 0.0}))
    assert shaky["grr"]["expected"] == plain["grr"]["expected"]
    assert shaky["grr"]["sd"] == pytest.approx(np.hypot(plain["grr"]["sd"], 0.03))
    assert shaky["nrr"] == plain["nrr"]


def test_expected_expansion_arr_and_an_empty_portfolio() -> None:
    gained = expected_expansion_arr(np.array([1000.0, 0.0]), np.array([0.5, 0.9]), MODEL)
    np.testing.assert_allclose(gained, [1000 * 0.5 * (np.mean([1.2, 1.5, 1.3]) - 1), 0.0])
    empty = forecast(np.array([np.nan, 0.0]), np.array([0.1, 0.1]), np.array([0.1, 0.1]),
                     MODEL)
    assert empty["grr"] is None and empty["nrr"] is None and empty["accounts"] == 0
    assert RevenueModel.from_json(MODEL.to_json()) == MODEL


def test_a_history_too_short_to_backtest_says_what_it_lacks() -> None:
    refit = Refit(matrix=lambda frame: frame, params={})
    report = backtest(_snapshots(), refit, 90)
    assert report["checks"] == [] and report["summary"] == {}
    assert "needs 6 of them" in report["too_short"]
    assert "1 snapshot dates whose horizon ended" in report["too_short"]
    assert "About 6 more snapshot dates" in report["too_short"]


def test_intervals_stay_inside_what_retention_can_be() -> None:
    """One account holds most of the ARR and may well churn: the normal interval of this
    portfolio ran from below 0 to above 100% gross retention. GRR stays in [0, 1] and NRR at
    or above 0, with the mean and standard deviation unchanged."""
    arr = np.array([100_000.0, 1_000.0, 1_000.0, 1_000.0])
    churn, expansion = np.array([0.5, 0.05, 0.05, 0.05]), np.array([0.0, 0.3, 0.3, 0.3])
    shaky = RevenueModel(ratios=MODEL.ratios, horizon_days=90,
                         extra_sd={"grr": 0.2, "nrr": 0.2})
    predicted = forecast(arr, churn, expansion, shaky, level=0.9)
    grr, nrr = predicted["grr"], predicted["nrr"]
    assert 0.0 <= grr["low"] < grr["expected"] < grr["high"] <= 1.0
    assert 0.0 <= nrr["low"] < nrr["expected"] < nrr["high"]
    assert grr["sd"] > 0.4  # so wide that expected ± 1.645 sd leaves [0, 1] on both sides
    # the simulated GRR of this portfolio (chance only) lies inside the interval 90% of the time
    rng = np.random.default_rng(3)
    plain = forecast(arr, churn, expansion, MODEL, level=0.9)["grr"]
    u = rng.uniform(size=(20_000, len(arr)))
    kept = np.where(u < churn, 0.0, 1.0)  # a churner keeps ~0, the rest ~all
    simulated = (kept * arr).sum(axis=1) / arr.sum()
    assert plain["low"] >= 0.0 and plain["high"] <= 1.0
    assert plain["low"] <= simulated.mean() <= plain["high"]


@pytest.mark.parametrize(("measure", "expected", "sd"), [
    ("grr", 0.9, 0.0), ("grr", 1.0, 0.05), ("grr", 0.0, 0.05), ("nrr", 0.0, 0.1)])
def test_a_retention_without_spread_or_on_its_bound_is_a_point(
        measure: str, expected: float, sd: float) -> None:
    assert retention_interval(measure, expected, sd) == (expected, expected)


def test_a_narrow_interval_is_the_normal_one() -> None:
    """Far from the bounds the beta and lognormal intervals are the normal one to within a
    fraction of a percent point: the change only matters where the normal one was wrong."""
    for measure, expected in (("grr", 0.85), ("nrr", 1.05)):
        low, high = retention_interval(measure, expected, 0.01, 0.9)
        assert low == pytest.approx(expected - 1.645 * 0.01, abs=0.001)
        assert high == pytest.approx(expected + 1.645 * 0.01, abs=0.001)
