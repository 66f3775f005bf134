"""Validation figures for one target: overall, per segment, per month, and against the oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnlens.training.metrics import evaluate, roc_auc

ORACLE_COLUMNS = {"churn": "p_churn_90d", "expansion": "p_expand_90d"}
ORACLE_HORIZON_DAYS = 90


def touch_segment(mrr: pd.Series, high_arr: float, mid_arr: float) -> pd.Series:
    """high-touch / mid-touch / tech-touch by ARR (12 x MRR), the usual CS coverage model."""
    arr = pd.to_numeric(mrr, errors="coerce").fillna(0.0) * 12.0
    return pd.Series(np.where(arr >= high_arr, "high-touch",
                              np.where(arr >= mid_arr, "mid-touch", "tech-touch")),
                     index=mrr.index)


def segments(frame: pd.DataFrame, high_arr: float, mid_arr: float) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {}
    if "mrr" in frame:
        out["touch"] = touch_segment(frame["mrr"], high_arr, mid_arr)
    for column in ("plan", "region"):
        if column in frame:
            out[column] = frame[column].astype("object").fillna("(none)")
    return out


def by_segment(frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, groups: dict[str, pd.Series],
               resamples: int, seed: int) -> dict[str, dict[str, dict[str, float]]]:
    accounts = frame["account_id"].to_numpy()
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, labels in groups.items():
        out[name] = {}
        values = labels.to_numpy()
        for level in sorted(set(values)):
            mask = values == level
            out[name][str(level)] = evaluate(y[mask], p[mask], accounts[mask], resamples, seed)
    return out


def auc_by_month(frame: pd.DataFrame, y: np.ndarray, predictions: dict[str, np.ndarray]
                 ) -> pd.DataFrame:
    rows = []
    dates = frame["as_of"].to_numpy()
    for model, p in predictions.items():
        for as_of in sorted(set(dates)):
            mask = dates == as_of
            rows.append({"as_of": as_of, "model": model, "roc_auc": roc_auc(y[mask], p[mask]),
                         "rows": int(mask.sum()), "positives": int(y[mask].sum())})
    return pd.DataFrame(rows)


def load_truth(data_folder: Path | None) -> pd.DataFrame | None:
    """The simulation's true probabilities, when the history is a generated company."""
    if data_folder is None:
        return None
    path = data_folder / "truth.parquet"
    if not path.is_file():
        return None
    truth = pd.read_parquet(path)
    truth["as_of"] = pd.to_datetime(truth["as_of"]).dt.date
    return truth


def oracle_figures(frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, truth: pd.DataFrame,
                   target: str) -> dict[str, Any] | None:
    """The oracle's AUC and Brier on the same validation snapshots, and the model's ratio."""
    column = ORACLE_COLUMNS[target]
    keyed = frame[["account_id", "as_of"]].reset_index(drop=True)
    joined = keyed.merge(truth[["account_id", "as_of", column]], on=["account_id", "as_of"],
                         how="left")
    known = joined[column].notna().to_numpy()
    if not known.any():
        return None
    q = joined[column].to_numpy()[known]
    ours = evaluate(y[known], p[known])
    oracle = evaluate(y[known], q)
    return {
        "rows": int(known.sum()),
        "roc_auc": oracle["roc_auc"], "brier": oracle["brier"], "pr_auc": oracle["pr_auc"],
        "ece": oracle["ece"],
        "model_roc_auc": ours["roc_auc"], "model_brier": ours["brier"],
        "auc_ratio": ours["roc_auc"] / oracle["roc_auc"],
        "brier_ratio": ours["brier"] / oracle["brier"],
    }
