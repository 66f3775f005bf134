"""SHAP values of a LightGBM model: which features move a score, and how much.

LightGBM computes exact TreeSHAP itself (``pred_contrib``), categorical splits included, so
the values here are the same ones serving explains accounts with. Contributions are in
log-odds of the raw model, before calibration: calibration is monotone, so it keeps their
order and sign.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

SUMMARY_ROWS = 5000


def shap_values(booster: lgb.Booster, x: pd.DataFrame | np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(contributions per row and feature, base value per row)."""
    contrib = np.asarray(booster.predict(x, pred_contrib=True), dtype=float)
    return contrib[:, :-1], contrib[:, -1]


def sample_rows(x: pd.DataFrame, rows: int = SUMMARY_ROWS, seed: int = 0) -> pd.DataFrame:
    if len(x) <= rows:
        return x
    return x.sample(n=rows, random_state=seed).sort_index()


def importance(booster: lgb.Booster, x: pd.DataFrame) -> list[tuple[str, float]]:
    """Features by mean |SHAP| on ``x``, largest first."""
    values, _ = shap_values(booster, x)
    mean_abs = np.abs(values).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    return [(str(x.columns[i]), float(mean_abs[i])) for i in order]
