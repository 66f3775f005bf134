"""Validation figures for one target: overall, per segment, per month, and against the oracle."""

from __future__ import annotations

from pathlib import Path
from statistics import NormalDist
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
"""A segment's ROC AUC this far below the overall one is flagged, when the gap also exceeds
``NOISE_Z`` standard errors (Hanley-McNeil) of an AUC on a segment of its size."""
CALIBRATION_TOLERANCE = 0.15
"""The whole validation set, and each segment, is miscalibrated when its mean prediction is
off its observed rate by more than this share of the rate (7.97% predicted against 6.52%
observed is 22% off)..."""
NOISE_Z = 1.96
"""...and by more than this many standard errors of what sampling alone gives a group of its
size (the binomial spread of the observed rate under calibrated predictions), so a small
segment is not flagged for its noise. Snapshots of one account in consecutive months are not
independent (a churn late in one window is a churn in the next snapshot's window too), so
each error is widened by sqrt(snapshots / accounts), as if every account counted once. The
same test judges the whole and every segment (:func:`miscalibration`), so a model that
over-predicts everywhere is said to, not hidden behind "no worse than the whole"; with k
segments judged, each segment's two-sided 5% becomes 5%/k (Bonferroni), or a calibrated model
would see one of twenty segments flagged by chance alone. A flag is a gap worth a look, not
proof."""
OVERALL = "all validation snapshots"
"""The name of the whole validation set in the review's rows and flags."""


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


def _segment_figures(y: np.ndarray, p: np.ndarray, accounts: np.ndarray,
                     min_rows: int = MIN_SEGMENT_ROWS, min_positives: int = MIN_SEGMENT_POSITIVES
                     ) -> dict[str, Any]:
    rows, positives, distinct = len(y), int(y.sum()), len(np.unique(accounts))
    figures: dict[str, Any] = {
        "rows": rows, "positives": positives, "accounts": distinct,
        "rate": float(y.mean()) if rows else float("nan"),
        "mean_prediction": float(p.mean()) if rows else float("nan"),
        "reviewed": rows >= max(min_rows, 1) and positives >= min_positives,
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


def miscalibration(name: str, figures: dict[str, Any], z: float = NOISE_Z) -> str | None:
    """The sentence saying that this group (the whole validation set or one segment) is
    miscalibrated, or None: its mean prediction is off its observed rate by more than
    ``CALIBRATION_TOLERANCE`` of the rate and by more than ``z`` standard errors. One
    definition for the whole and the segments, so the report, ``churnlens train`` and the
    model page say the same."""
    if not figures["reviewed"]:
        return None
    gap = figures["calibration_gap"]
    noise = z * figures["rate_standard_error"]
    if abs(gap) <= CALIBRATION_TOLERANCE * figures["rate"] or abs(gap) <= noise:
        return None
    way = "over-predicting" if gap > 0 else "under-predicting"
    return (f"{name}: predicted {figures['mean_prediction']:.2%} against "
            f"{figures['rate']:.2%} observed, {way} by {100 * abs(gap):.1f} points "
            f"(chance explains up to {100 * noise:.1f}; n={figures['rows']:,})")


def segment_z(judged: int) -> float:
    """The z a segment's calibration gap must pass when ``judged`` segments are judged: the
    two-sided 5% of ``NOISE_Z`` shared among them (Bonferroni)."""
    share = (1.0 - NormalDist().cdf(NOISE_Z)) / max(judged, 1)
    return NormalDist().inv_cdf(1.0 - share)


def segment_flags(target: str, column: str, level: str, figures: dict[str, Any],
                  overall: dict[str, Any], judged: int = 1) -> list[str]:
    """Plain sentences for what is wrong with one reviewed segment, if anything: ranked worse
    than the whole, or miscalibrated (:func:`miscalibration`, one of ``judged`` segments)."""
    if not figures["reviewed"]:
        return []
    name = f"{target.capitalize()} model, {column} {level}"
    out = []
    auc_gap = overall["roc_auc"] - figures["roc_auc"]
    if auc_gap > AUC_GAP and auc_gap > NOISE_Z * figures["auc_standard_error"]:
        out.append(f"{name}: AUC {figures['roc_auc']:.2f} against {overall['roc_auc']:.2f} "
                   f"overall (n={figures['rows']})")
    calibration = miscalibration(name, figures, segment_z(judged))
    if calibration:
        out.append(calibration)
    return out


def segment_review(frame: pd.DataFrame, predictions: dict[str, tuple[np.ndarray, np.ndarray]],
                   high_arr: float, mid_arr: float) -> dict[str, Any]:
    """Does the model serve every region, industry, plan and coverage tier equally well?

    For each target (``predictions``: labels and calibrated probabilities on the validation
    snapshots ``frame``) and each segment value: count, rate, mean prediction and, where
    there are enough rows and positives, AUC and calibration; the same figures for the whole
    under ``overall``. ``flags`` lists, as sentences, the whole if it is miscalibrated and the
    segments ranked worse than the whole or miscalibrated (thresholds in the module
    constants, repeated under ``thresholds``).
    """
    groups = segments(frame, high_arr, mid_arr)
    accounts = frame["account_id"].to_numpy()
    out: dict[str, Any] = {
        "thresholds": {"min_rows": MIN_SEGMENT_ROWS, "min_positives": MIN_SEGMENT_POSITIVES,
                       "auc_gap": AUC_GAP, "calibration_tolerance": CALIBRATION_TOLERANCE,
                       "noise_z": NOISE_Z},
        "columns": list(groups), "flags": [], "worst_auc_gap": {}}
    for target, (y, p) in predictions.items():
        # the whole is judged whatever its size: it is all the evidence there is
        overall = _segment_figures(y, p, accounts, min_rows=1, min_positives=0)
        overall.setdefault("roc_auc", roc_auc(y, p))
        overall.setdefault("ece", ece(y, p))
        whole = miscalibration(f"{target.capitalize()} model, {OVERALL}", overall)
        overall["flags"] = [whole] if whole else []
        out["flags"].extend(overall["flags"])
        by: dict[str, dict[str, Any]] = {}
        for column, labels in groups.items():
            values = labels.astype(str).to_numpy()
            by[column] = {level: _segment_figures(y[values == level], p[values == level],
                                                  accounts[values == level])
                          for level in sorted(set(values))}
        judged = sum(f["reviewed"] for levels in by.values() for f in levels.values())
        gaps = []
        for column, levels in by.items():
            for level, figures in levels.items():
                figures["flags"] = segment_flags(target, column, level, figures, overall, judged)
                out["flags"].extend(figures["flags"])
                if figures["reviewed"] and np.isfinite(figures["roc_auc"]):
                    gaps.append(overall["roc_auc"] - figures["roc_auc"])
        out[target] = {"overall": overall, "by": by}
        if gaps:
            out["worst_auc_gap"][target] = float(max(gaps))
    return out


def review_rows(review: dict[str, Any], target: str = "churn") -> list[dict[str, Any]]:
    """The segment review of one target as table rows: the whole first, then each reviewed
    segment, worst ranked first. A row is ``flagged`` exactly when ``flags`` holds a
    sentence about it, so a table and the flag list beside it cannot disagree."""
    figures_of = review.get(target) or {}
    rows = []
    for column, levels in (figures_of.get("by") or {}).items():
        for level, figures in levels.items():
            if figures.get("reviewed"):
                rows.append(_row(f"{column} {level}", figures))
    rows.sort(key=lambda row: row["roc_auc"] if row["roc_auc"] is not None else 1.0)
    overall = figures_of.get("overall")
    if overall and rows:
        rows.insert(0, _row(OVERALL, overall))
    return rows


def _row(segment: str, figures: dict[str, Any]) -> dict[str, Any]:
    def number(key: str) -> float | None:
        value = figures.get(key)
        return float(value) if isinstance(value, int | float) and np.isfinite(value) else None

    return {"segment": segment, "rows": int(figures["rows"]), "rate": number("rate"),
            "mean_prediction": number("mean_prediction"), "roc_auc": number("roc_auc"),
            "flagged": bool(figures.get("flags"))}
