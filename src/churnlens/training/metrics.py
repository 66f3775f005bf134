"""How good a probability is: ranking, honesty and what the top of the list catches.

Confidence intervals come from a bootstrap over accounts (all snapshots of a drawn account go
together), because one account's snapshots in consecutive months are not independent draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

ECE_BINS = 10
Metric = Callable[[np.ndarray, np.ndarray], float]


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(average_precision_score(y, p)) if y.sum() > 0 else float("nan")


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(brier_score_loss(y, p)) if len(y) else float("nan")


def ece(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over equal-count bins of the predicted probability.

    Equal-count bins, because churn scores crowd near zero: equal-width bins would put almost
    every account in the first bin and hide miscalibration among the risky few.
    """
    if not len(y):
        return float("nan")
    order = np.argsort(p, kind="stable")
    error = 0.0
    for chunk in np.array_split(order, min(bins, len(y))):
        error += len(chunk) * abs(float(y[chunk].mean()) - float(p[chunk].mean()))
    return error / len(y)


def _top_decile(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    count = max(1, int(np.ceil(len(p) * 0.1)))
    return np.argsort(-p, kind="stable")[:count]


def top_decile_lift(y: np.ndarray, p: np.ndarray) -> float:
    """Rate among the riskiest 10% over the overall rate."""
    if not y.sum():
        return float("nan")
    return float(y[_top_decile(y, p)].mean() / y.mean())


def top_decile_recall(y: np.ndarray, p: np.ndarray) -> float:
    """Share of all positives that the riskiest 10% holds."""
    if not y.sum():
        return float("nan")
    return float(y[_top_decile(y, p)].sum() / y.sum())


METRICS: dict[str, Metric] = {
    "roc_auc": roc_auc, "pr_auc": pr_auc, "brier": brier, "ece": ece,
    "top_decile_lift": top_decile_lift, "top_decile_recall": top_decile_recall,
}


METRIC_NAMES = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "brier": "Brier score",
                "ece": "calibration error", "top_decile_lift": "top-10% lift",
                "top_decile_recall": "top-10% recall"}
NEEDS_POSITIVES = ("roc_auc", "pr_auc", "top_decile_lift", "top_decile_recall")
"""Metrics that divide by, or rank, the positives: undefined without any."""


def not_computable(figures: dict[str, Any], where: str, noun: str,
                   metrics: tuple[str, ...] = tuple(METRICS)) -> dict[str, str]:
    """Why each of ``metrics`` is NaN in ``figures`` (an :func:`evaluate` answer on the
    snapshots ``where`` names, whose positives are ``noun``), as the end of a sentence:
    "the validation slice has no churned accounts"."""
    rows, positives = figures.get("rows") or 0, figures.get("positives") or 0
    out = {}
    for name in metrics:
        value = figures.get(name)
        if value is not None and np.isfinite(value):
            continue
        if not rows:
            out[name] = f"{where} has no snapshots"
        elif name in NEEDS_POSITIVES and not positives:
            out[name] = f"{where} has no {noun}"
        elif name == "roc_auc" and positives == rows:
            out[name] = f"{where} has only {noun}"
        else:
            out[name] = f"it could not be computed on {where}"
    return out


def reportable(figures: dict[str, float], where: str, noun: str) -> dict[str, Any]:
    """``figures`` as a report holds them: a metric that cannot be computed is None, and
    ``not_computable`` says why (JSON has no NaN, and a reader deserves the reason)."""
    reasons = not_computable(figures, where, noun)
    out: dict[str, Any] = finite(figures)
    if reasons:
        out["not_computable"] = reasons
    return out


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float, however deeply nested, replaced by None."""
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def evaluate(y: np.ndarray, p: np.ndarray, groups: np.ndarray | None = None,
             resamples: int = 0, seed: int = 0) -> dict[str, float]:
    """Every metric, plus ``<metric>_low``/``_high`` (95% bootstrap over ``groups``)."""
    out = {name: fn(y, p) for name, fn in METRICS.items()}
    out["rows"] = float(len(y))
    out["positives"] = float(y.sum())
    out["rate"] = float(y.mean()) if len(y) else float("nan")
    out["mean_prediction"] = float(p.mean()) if len(p) else float("nan")
    if resamples and groups is not None and len(y):
        for name, (low, high) in bootstrap_intervals(y, p, groups, resamples, seed).items():
            out[f"{name}_low"], out[f"{name}_high"] = low, high
    return out


def bootstrap_intervals(y: np.ndarray, p: np.ndarray, groups: np.ndarray, resamples: int,
                        seed: int) -> dict[str, tuple[float, float]]:
    """Percentile intervals from resampling whole accounts with replacement."""
    rng = np.random.default_rng(seed)
    codes, _ = _codes(groups)
    members = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[members], np.arange(codes.max() + 1))
    sizes = np.diff(np.append(starts, len(codes)))
    draws: dict[str, list[float]] = {name: [] for name in METRICS}
    for _ in range(resamples):
        chosen = rng.integers(0, len(starts), len(starts))
        rows = np.concatenate([members[starts[g]:starts[g] + sizes[g]] for g in chosen])
        for name, fn in METRICS.items():
            draws[name].append(fn(y[rows], p[rows]))
    return {name: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5)))
            for name, v in draws.items() if not np.all(np.isnan(v))}


def _codes(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniques, codes = np.unique(groups, return_inverse=True)
    return codes, uniques


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS
                      ) -> list[dict[str, float]]:
    """Mean prediction against observed rate per equal-count bin (the calibration curve)."""
    order = np.argsort(p, kind="stable")
    return [{"mean_prediction": float(p[c].mean()), "observed_rate": float(y[c].mean()),
             "rows": float(len(c))} for c in np.array_split(order, min(bins, max(len(y), 1)))
            if len(c)]
