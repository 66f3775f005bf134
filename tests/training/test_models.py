"""The models on the columns a real history leaves empty or constant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnlens.training.models import (
    fit_baseline,
    fit_lightgbm,
    predict_baseline,
    predict_lightgbm,
    search_lightgbm,
)

ROWS = 120


def _snapshots(industry: list[str | None], region: list[str | None], seed: int = 0
               ) -> tuple[pd.DataFrame, np.ndarray]:
    """A usage signal that predicts the label, beside the accounts' optional categories."""
    rng = np.random.default_rng(seed)
    events = rng.poisson(20, ROWS).astype(float)
    y = (rng.random(ROWS) < 1 / (1 + np.exp((events - 20) / 3))).astype(int)
    x = pd.DataFrame({"events_30d": events,
                      "industry": pd.Categorical(industry * (ROWS // len(industry))),
                      "region": pd.Categorical(region * (ROWS // len(region)))})
    return x, y


@pytest.mark.parametrize("industry, region", [
    ([None], [None]),  # no account has an industry or a region: a purchase history
    (["retail"], ["EMEA"]),  # one of each
    ([None], ["EMEA", None]),
], ids=["all-empty", "constant", "empty-and-sparse"])
def test_every_model_fits_and_predicts_with_empty_or_constant_categories(
        industry: list[str | None], region: list[str | None]) -> None:
    x, y = _snapshots(industry, region)
    baseline = fit_baseline(x, y, seed=7)
    p = predict_baseline(baseline, x)
    assert p.shape == (ROWS,) and np.isfinite(p).all()
    # the usage signal still carries the prediction: the empty columns did not swallow it
    assert np.corrcoef(p, x["events_30d"])[0, 1] < -0.5

    search = search_lightgbm(x, y, x, y, seed=7, threads=1)
    p = predict_lightgbm(fit_lightgbm(x, y, search.chosen), x)
    assert p.shape == (ROWS,) and np.isfinite(p).all()


def test_the_baseline_fits_when_every_feature_is_empty() -> None:
    x, y = _snapshots([None], [None])
    x["events_30d"] = np.nan
    p = predict_baseline(fit_baseline(x, y, seed=7), x)
    assert np.isfinite(p).all() and np.ptp(p) < 1e-9  # nothing to tell the rows apart
