"""Metrics, slices and calibrators: small cases whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from churnlens.training.calibration import Calibrator, fit_isotonic, fit_platt
from churnlens.training.metrics import (
    brier,
    ece,
    evaluate,
    finite,
    reportable,
    top_decile_lift,
    top_decile_recall,
)


def _honest(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 12, n)
    return (rng.random(n) < p).astype(np.int8), p


def test_ece_is_small_for_honest_probabilities_and_large_for_a_constant_guess() -> None:
    y, p = _honest(200_000, 1)
    assert ece(y, p) < 0.003
    assert ece(y, np.full(len(y), 0.5)) == pytest.approx(0.5 - y.mean(), abs=1e-9)


def test_top_decile_lift_and_recall() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0] * 10, dtype=np.int8)
    p = np.where(y == 1, 0.9, 0.1) + np.linspace(0, 0.01, len(y))
    # the riskiest 10 rows hold 10 of the 20 positives
    assert top_decile_recall(y, p) == pytest.approx(0.5)
    assert top_decile_lift(y, p) == pytest.approx(1.0 / 0.2)


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_data() -> None:
    widths = []
    for n in (2_000, 20_000):
        y, p = _honest(n, 2)
        groups = np.arange(n) // 4  # four snapshots per account
        figures = evaluate(y, p, groups, resamples=60, seed=0)
        assert figures["roc_auc_low"] <= figures["roc_auc"] <= figures["roc_auc_high"]
        widths.append(figures["roc_auc_high"] - figures["roc_auc_low"])
    assert widths[1] < widths[0]


@pytest.mark.parametrize("fit", [fit_platt, fit_isotonic])
def test_calibrators_repair_overconfident_scores(fit) -> None:  # type: ignore[no-untyped-def]
    y, p = _honest(50_000, 3)
    overconfident = np.clip(p * 3, 0, 0.999)
    calibrator = fit(overconfident[:25_000], y[:25_000])
    repaired = calibrator(overconfident[25_000:])
    assert ece(y[25_000:], repaired) < ece(y[25_000:], overconfident[25_000:]) / 3
    assert brier(y[25_000:], repaired) < brier(y[25_000:], overconfident[25_000:])
    again = Calibrator.from_json(calibrator.to_json())
    assert np.allclose(again(overconfident[:100]), calibrator(overconfident[:100]))


def test_tracking_store_defaults_to_sqlite_under_home_and_yields_to_the_environment(
        tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from churnlens.home import Home
    from churnlens.training.tracking import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = Home(tmp_path / "home")
    assert tracking_uri(home, None) == f"sqlite:///{(tmp_path / 'home' / 'mlflow.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking_uri(home, None) == "http://mlflow.internal:5000"
    assert tracking_uri(home, "sqlite:///elsewhere.db") == "sqlite:///elsewhere.db"


def test_train_before_features_says_what_to_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from conftest import churnlens

    result = churnlens(tmp_path / "home", "train", check=False)
    assert result.returncode == 2
    assert "run `churnlens features` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shifted_one() -> None:
    import pandas as pd

    from churnlens.training.drift import DRIFT_PSI, feature_psi, reference
    from churnlens.training.matrix import FeatureSpace

    rng = np.random.default_rng(4)
    space = FeatureSpace(features=("seats", "plan"), categories={"plan": ["a", "b"]})
    train = pd.DataFrame({"seats": rng.lognormal(2, 1, 20_000),
                          "plan": rng.choice(["a", "b"], 20_000)})
    ref = reference(train, space)
    assert sum(ref["seats"]["shares"]) == pytest.approx(1.0)
    same = pd.DataFrame({"seats": rng.lognormal(2, 1, 20_000),
                         "plan": rng.choice(["a", "b"], 20_000)})
    moved = pd.DataFrame({"seats": rng.lognormal(3, 1, 20_000),
                          "plan": rng.choice(["a", "b", "c"], 20_000, p=[0.2, 0.2, 0.6])})
    assert max(feature_psi(same, ref).values()) < 0.01
    shifted = feature_psi(moved, ref)
    assert shifted["seats"] > DRIFT_PSI and shifted["plan"] > DRIFT_PSI


def test_a_metric_that_cannot_be_computed_is_null_with_its_reason() -> None:
    """A validation slice without churners: AUC, PR AUC, lift and recall are undefined; the
    report holds null and why, never NaN (which JSON cannot even represent)."""
    y, p = np.zeros(40, dtype=np.int8), np.linspace(0.01, 0.3, 40)
    figures = reportable(evaluate(y, p), "the validation slice", "churned accounts")
    for name in ("roc_auc", "pr_auc", "top_decile_lift", "top_decile_recall"):
        assert figures[name] is None
        assert figures["not_computable"][name] == "the validation slice has no churned accounts"
    assert figures["brier"] == pytest.approx(float(np.mean(p ** 2)))
    assert "brier" not in figures["not_computable"]
    json.dumps(figures, allow_nan=False)

    everyone = reportable(evaluate(np.ones(5, dtype=np.int8), p[:5]), "the validation slice",
                          "churned accounts")
    assert everyone["not_computable"] == {
        "roc_auc": "the validation slice has only churned accounts"}
    assert finite({"a": [float("nan"), 1.0], "b": np.float64("inf")}) == {"a": [None, 1.0],
                                                                         "b": None}
