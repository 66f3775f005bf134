"""Validation figures for one target: overall, per segment, per month, and against the oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnlens.training.metrics import ece, evaluate, roc_auc

ORACLE_COLUMNS = {"churn": "p_churn_90d", "expansion": "p_expand_90d"}
ORACLE_HORIZON_DAYS = 90
SEGMENT_COLUMNS = ("plan", "region", "industry")
"""Snapshot columns whose values are segments the model must serve equally well (with
``touch``, the coverage tier by ARR)."""
MIN_SEGMENT_ROWS = 200
MIN_SEGMENT_POSITIVES = 10
"""A segment is reviewed only with at least this many validation snapshots and positives:
below them its AUC and observed rate are too noisy to accuse the model of anything."""
AUC_GAP = 0.05
"""A segment's ROC AUC this far below the overall one is flagged..."""
CALIBRATION_GAP_RATIO = 2.0
"""...and so is a gap between its mean prediction and its observed rate above this multiple
of the overall expected calibration error..."""
NOISE_Z = 1.96
"""...but only when the gap also exceeds this many standard errors of what sampling alone
gives a segment of its size (Hanley-McNeil for AUC; the binomial spread of the observed rate
under calibrated predictions), so a small segment is not flagged for its noise. Snapshots of
one account in consecutive months are not independent (a churn late in one window is a churn
in the next snapshot's window too), so each error is widened by sqrt(snapshots / accounts),
as if every account counted once. A flag is a gap worth a look, not proof."""


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
    for column in SEGMENT_COLUMNS:
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


def _auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil (1982): the sampling spread of an AUC on this many cases."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
                + (negatives - 1) * (q2 - auc * auc)) / max(positives * negatives, 1)
    return float(np.sqrt(max(variance, 0.0)))


def _segment_figures(y: np.ndarray, p: np.ndarray, accounts: np.ndarray) -> dict[str, Any]:
    rows, positives, distinct = len(y), int(y.sum()), len(np.unique(accounts))
    figures: dict[str, Any] = {
        "rows": rows, "positives": positives, "accounts": distinct,
        "rate": float(y.mean()) if rows else float("nan"),
        "mean_prediction": float(p.mean()) if rows else float("nan"),
        "reviewed": rows >= MIN_SEGMENT_ROWS and positives >= MIN_SEGMENT_POSITIVES,
    }
    if figures["reviewed"]:
        repeated = float(np.sqrt(rows / max(distinct, 1)))
        figures["roc_auc"] = roc_auc(y, p)
        figures["ece"] = ece(y, p)
        figures["calibration_gap"] = figures["mean_prediction"] - figures["rate"]
        figures["auc_standard_error"] = repeated * _auc_standard_error(
            figures["roc_auc"], positives, rows - positives)
        figures["rate_standard_error"] = repeated * float(np.sqrt((p * (1 - p)).sum()) / rows)
    return figures


def segment_flags(target: str, column: str, level: str, figures: dict[str, Any],
                  overall: dict[str, float]) -> list[str]:
    """Plain sentences for what is wrong with one reviewed segment, if anything."""
    if not figures["reviewed"]:
        return []
    name = f"{target.capitalize()} model, {column} {level}"
    out = []
    auc_gap = overall["roc_auc"] - figures["roc_auc"]
    if auc_gap > AUC_GAP and auc_gap > NOISE_Z * figures["auc_standard_error"]:
        out.append(f"{name}: AUC {figures['roc_auc']:.2f} against {overall['roc_auc']:.2f} "
                   f"overall (n={figures['rows']})")
    gap = abs(figures["calibration_gap"])
    if (gap > CALIBRATION_GAP_RATIO * overall["ece"]
            and gap > NOISE_Z * figures["rate_standard_error"]):
        out.append(f"{name}: predicted {figures['mean_prediction']:.1%} against "
                   f"{figures['rate']:.1%} observed, a gap of {100 * gap:.1f} points against "
                   f"an overall calibration error of {100 * overall['ece']:.1f} "
                   f"(n={figures['rows']})")
    return out


def segment_review(frame: pd.DataFrame, predictions: dict[str, tuple[np.ndarray, np.ndarray]],
                   high_arr: float, mid_arr: float) -> dict[str, Any]:
    """Does the model serve every region, industry, plan and coverage tier equally well?

    For each target (``predictions``: labels and calibrated probabilities on the validation
    snapshots ``frame``) and each segment value: count, rate, mean prediction and, where
    there are enough rows and positives, AUC and calibration; ``flags`` lists, as sentences,
    the segments whose AUC or calibration falls short of the overall figures (thresholds in
    the module constants, repeated under ``thresholds``).
    """
    groups = segments(frame, high_arr, mid_arr)
    accounts = frame["account_id"].to_numpy()
    out: dict[str, Any] = {
        "thresholds": {"min_rows": MIN_SEGMENT_ROWS, "min_positives": MIN_SEGMENT_POSITIVES,
                       "auc_gap": AUC_GAP, "calibration_gap_ratio": CALIBRATION_GAP_RATIO,
                       "noise_z": NOISE_Z},
        "columns": list(groups), "flags": [], "worst_auc_gap": {}}
    for target, (y, p) in predictions.items():
        overall = {"roc_auc": roc_auc(y, p), "ece": ece(y, p), "rows": float(len(y)),
                   "rate": float(y.mean()) if len(y) else float("nan")}
        by: dict[str, dict[str, Any]] = {}
        gaps = []
        for column, labels in groups.items():
            values = labels.astype(str).to_numpy()
            by[column] = {}
            for level in sorted(set(values)):
                mask = values == level
                figures = _segment_figures(y[mask], p[mask], accounts[mask])
                figures["flags"] = segment_flags(target, column, level, figures, overall)
                out["flags"].extend(figures["flags"])
                if figures["reviewed"] and np.isfinite(figures["roc_auc"]):
                    gaps.append(overall["roc_auc"] - figures["roc_auc"])
                by[column][level] = figures
        out[target] = {"overall": overall, "by": by}
        if gaps:
            out["worst_auc_gap"][target] = float(max(gaps))
    return out
