"""Reference distributions and the population stability index (PSI).

Training records where each feature's values fell (deciles of the training snapshots, plus
missing); serving compares the snapshot it scores with that record. PSI above 0.25 is the usual
sign that a feature has moved enough for the model's numbers to be doubted.

A feature that grows with time by definition (the registry's ``grows_with_time``: tenure, days
since the first event) moves as the customer base ages, with nothing wrong: the same accounts
scored a year later are all 365 days older. For those the record also holds the training
values as they would read on its latest snapshot date (each row's value plus the days from its
own date to that one), and serving compares its values brought back to that date the same way
(minus the days elapsed since). The smaller of the two PSIs counts: a base that merely aged
reads as stable (the aged comparison), and so does a steady base whose new accounts replace
those that left (the plain one). A real base does both at once (its oldest accounts age while
new ones arrive), which neither comparison removes, so a growing feature's PSI is shown but
never raises the drift flag on its own (``serving.score.drift_state``): an age mix the model
has not seen also moves the features that do not grow by definition.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnlens.features.registry import REGISTRY, load_all
from churnlens.training.matrix import FeatureSpace

BINS = 10
EPS = 1e-4
DRIFT_PSI = 0.25


def reference(frame: pd.DataFrame, space: FeatureSpace) -> dict[str, Any]:
    """Per feature: bin edges (or levels) and the training share of each bin, missing last."""
    out: dict[str, Any] = {}
    growing = growing_features(space.features)
    for name in space.features:
        column = frame[name]
        if name in space.categories:
            levels = space.categories[name]
            shares = _level_shares(column, levels)
            out[name] = {"levels": levels, "shares": shares}
            continue
        values = pd.to_numeric(column, errors="coerce").astype(float)
        out[name] = _binned(values)
        if name in growing and "as_of" in frame and len(frame):
            days = _days(frame["as_of"])
            latest = int(days.max())
            out[name]["aged"] = {"as_of_day": latest, **_binned(values + (latest - days))}
    return out


def growing_features(features: tuple[str, ...]) -> set[str]:
    """The features the registry declares as growing with time by definition."""
    load_all()
    return {n for n in features if n in REGISTRY and REGISTRY[n].grows_with_time}


def _binned(values: pd.Series) -> dict[str, list[float]]:
    known = values.dropna().to_numpy()
    edges = (np.unique(np.quantile(known, np.linspace(0, 1, BINS + 1)[1:-1])).tolist()
             if len(known) else [])
    return {"edges": edges, "shares": _bin_shares(values, edges)}


def _days(as_of: pd.Series) -> pd.Series:
    """Snapshot dates as day numbers (days since 1970-01-01), to add to and subtract from."""
    stamps = pd.to_datetime(as_of).astype("datetime64[s]")
    return pd.Series((stamps - pd.Timestamp(0)).dt.days.to_numpy(float), index=as_of.index)


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
    """PSI of each referenced feature in ``frame`` against the training reference; for a
    feature that grows with time, the smaller of the PSI as trained and with the ageing since
    taken out (``frame`` needs its ``as_of`` for that)."""
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
        aged = spec.get("aged")
        if aged is not None and "as_of" in frame and len(frame):
            back = values - (_days(frame["as_of"]) - aged["as_of_day"])
            out[name] = min(out[name], psi(aged["shares"], _bin_shares(back, aged["edges"])))
    return out
