"""Reference distributions and the population stability index (PSI).

Training records where each feature's values fell (deciles of the training snapshots, plus
missing); serving compares the snapshot it scores with that record. PSI above 0.25 is the usual
sign that a feature has moved enough for the model's numbers to be doubted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnlens.training.matrix import FeatureSpace

BINS = 10
EPS = 1e-4
DRIFT_PSI = 0.25


def reference(frame: pd.DataFrame, space: FeatureSpace) -> dict[str, Any]:
    """Per feature: bin edges (or levels) and the training share of each bin, missing last."""
    out: dict[str, Any] = {}
    for name in space.features:
        column = frame[name]
        if name in space.categories:
            levels = space.categories[name]
            shares = _level_shares(column, levels)
            out[name] = {"levels": levels, "shares": shares}
            continue
        values = pd.to_numeric(column, errors="coerce").astype(float)
        known = values.dropna().to_numpy()
        edges = (np.unique(np.quantile(known, np.linspace(0, 1, BINS + 1)[1:-1])).tolist()
                 if len(known) else [])
        out[name] = {"edges": edges, "shares": _bin_shares(values, edges)}
    return out


def _bin_shares(values: pd.Series, edges: list[float]) -> list[float]:
    array = values.to_numpy(dtype=float)
    missing = np.isnan(array)
    bins = np.searchsorted(np.asarray(edges), array[~missing], side="right")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(float)
    counts = np.append(counts, missing.sum())
    return (counts / max(len(array), 1)).tolist()


def _level_shares(column: pd.Series, levels: list[str]) -> list[float]:
    text = column.astype("object")
    counts = [float((text == level).sum()) for level in levels]
    counts.append(float(len(text) - sum(counts)))  # missing or unseen
    return (np.asarray(counts) / max(len(text), 1)).tolist()


def psi(expected: list[float], actual: list[float]) -> float:
    e = np.clip(np.asarray(expected), EPS, None)
    a = np.clip(np.asarray(actual), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(frame: pd.DataFrame, ref: dict[str, Any]) -> dict[str, float]:
    """PSI of each referenced feature in ``frame`` against the training reference."""
    out = {}
    for name, spec in ref.items():
        if name not in frame:
            continue
        if "levels" in spec:
            actual = _level_shares(frame[name], spec["levels"])
        else:
            values = pd.to_numeric(frame[name], errors="coerce").astype(float)
            actual = _bin_shares(values, spec["edges"])
        out[name] = psi(spec["shares"], actual)
    return out
