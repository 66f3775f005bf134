"""The RFM peers beside every training report: fitted on the right columns, judged fairly."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnlens.training import baselines


def _snapshots(rows: int, seed: int, money: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """Churn driven by recency (and, once money counts, by spend), with noise."""
    rng = np.random.default_rng(seed)
    recency = rng.exponential(30, rows)
    spend = rng.exponential(100, rows)
    frame = pd.DataFrame({
        "days_since_last_activity": recency, "tenure_days": rng.integers(30, 900, rows),
        "events_30d": rng.poisson(5, rows), "events_180d": rng.poisson(30, rows),
        "events_365d": rng.poisson(60, rows), "active_days_365d": rng.poisson(20, rows),
        "typical_gap_days_365d": rng.exponential(10, rows),
        "spend_90d": spend if money else np.nan, "spend_365d": spend * 3 if money else np.nan})
    logit = (recency - 30) / 15 - (np.log1p(spend) - 4 if money else 0)
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return frame, churned.astype(int)


def test_peers_rank_by_recency_and_use_money_only_when_it_exists() -> None:
    train, y_train = _snapshots(3000, 1, money=True)
    val, y_val = _snapshots(1000, 2, money=True)
    peers = {p.key: p for p in baselines.fit_peers(train, y_train, val, y_val, seed=0, threads=1)}
    assert set(peers) == {"recency", "rfm_logistic", "rfm_lightgbm"}
    assert peers["recency"].roc_auc is not None and peers["recency"].roc_auc > 0.7
    # spend matters here: the RFM peers see it and beat recency alone
    assert peers["rfm_logistic"].roc_auc > peers["recency"].roc_auc  # type: ignore[operator]
    assert "spend_365d" in peers["rfm_logistic"].columns
    assert peers["rfm_logistic"].name == "RFM logistic"

    train, y_train = _snapshots(3000, 1, money=False)
    val, y_val = _snapshots(1000, 2, money=False)
    without = {p.key: p for p in baselines.fit_peers(train, y_train, val, y_val, 0, 1)}
    assert "spend_365d" not in without["rfm_lightgbm"].columns
    assert without["rfm_lightgbm"].name == "RF (no money event) LightGBM"


def test_the_report_says_when_the_model_does_not_beat_its_best_peer() -> None:
    train, y_train = _snapshots(2000, 3, money=False)
    val, y_val = _snapshots(800, 4, money=False)
    peers = baselines.fit_peers(train, y_train, val, y_val, 0, 1)
    best = max(p.roc_auc for p in peers if p.roc_auc is not None)
    losing = baselines.comparison(best - 0.01, peers)
    assert losing["model_beats_best"] is False
    assert "does not beat" in (baselines.warning(losing) or "")
    winning = baselines.comparison(best + 0.01, peers)
    assert winning["model_beats_best"] is True and baselines.warning(winning) is None
    assert set(baselines.metrics(winning)) >= {"baseline_recency_roc_auc",
                                               "baseline_rfm_lightgbm_pr_auc"}


def test_one_class_validation_gives_no_figure_instead_of_nan() -> None:
    train, y_train = _snapshots(500, 5, money=False)
    val, _ = _snapshots(100, 6, money=False)
    peers = baselines.fit_peers(train, y_train, val, np.zeros(100, dtype=int), 0, 1)
    assert peers and all(p.roc_auc is None and p.pr_auc is None for p in peers)
    section = baselines.comparison(None, peers)
    assert section["model_beats_best"] is None and baselines.warning(section) is None


def test_no_usage_recency_means_no_peers() -> None:
    frame = pd.DataFrame({"tenure_days": [10, 20, 30, 40]})
    assert baselines.fit_peers(frame, np.array([0, 1, 0, 1]), frame, np.array([0, 1, 0, 1]),
                               0, 1) == []
