"""Turning a model's SHAP values into what a CSM reads.

TreeSHAP splits the raw model's log-odds into one contribution per feature plus a base value.
A CSM thinks in probability, and the probability they see is calibrated, so each account's
contributions are rescaled to share out exactly the gap between its calibrated probability and
the calibrated probability of the base value: the points of all features sum to that gap, and
each keeps its sign and its share of the log-odds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnlens.features.registry import PILLARS_ORDER, REGISTRY, load_all
from churnlens.training.bundle import Bundle, TargetModel
from churnlens.training.coldstart import is_new
from churnlens.training.explain import shap_values

TOP_DRIVERS = 5


@dataclass(frozen=True)
class Explained:
    """Per-row probability, base probability and probability points per feature."""

    probability: np.ndarray
    base_probability: np.ndarray
    points: np.ndarray
    """(rows, features): percentage points of probability each feature adds or removes."""
    raw_margin: np.ndarray
    contributions: np.ndarray
    base_margin: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def explain(model: TargetModel, x: pd.DataFrame | np.ndarray) -> Explained:
    contributions, base = shap_values(model.booster, x)
    margin = base + contributions.sum(axis=1)
    probability = np.clip(model.calibrator(_sigmoid(margin)), 0.0, 1.0)
    base_probability = np.clip(model.calibrator(_sigmoid(base)), 0.0, 1.0)
    gap = probability - base_probability
    total = contributions.sum(axis=1)
    safe = np.where(np.abs(total) > 1e-12, total, 1.0)
    share = np.where(np.abs(total)[:, None] > 1e-12, contributions / safe[:, None], 0.0)
    points = share * gap[:, None] * 100.0
    return Explained(probability=probability, base_probability=base_probability,
                     points=points, raw_margin=margin, contributions=contributions,
                     base_margin=base)


def new_accounts(bundle: Bundle, meta: dict[str, np.ndarray], rows: int) -> np.ndarray:
    """Rows the cold-start model answers: new accounts, when the bundle has one."""
    if bundle.cold_start is None or "tenure_days" not in meta:
        return np.zeros(rows, dtype=bool)
    return is_new(meta["tenure_days"], bundle.cold_start.new_account_days)


def churn_explained(bundle: Bundle, x: np.ndarray, new: np.ndarray) -> Explained:
    """The churn model's explanation, with new accounts' rows from the cold-start model: its
    probability, and its points on its own (onboarding) features, zero on the others."""
    full = explain(bundle.models["churn"], x)
    cold = bundle.cold_start
    if cold is None or not new.any():
        return full
    columns = cold.columns(bundle.space.features)
    part = explain(cold.model, x[new][:, columns])

    def widened(values: np.ndarray, into: np.ndarray) -> np.ndarray:
        out = into.copy()
        block = np.zeros((int(new.sum()), into.shape[1]))
        block[:, columns] = values
        out[new] = block
        return out

    def replaced(values: np.ndarray, into: np.ndarray) -> np.ndarray:
        out = into.copy()
        out[new] = values
        return out

    return Explained(probability=replaced(part.probability, full.probability),
                     base_probability=replaced(part.base_probability, full.base_probability),
                     points=widened(part.points, full.points),
                     raw_margin=replaced(part.raw_margin, full.raw_margin),
                     contributions=widened(part.contributions, full.contributions),
                     base_margin=replaced(part.base_margin, full.base_margin))


def churn_probability(bundle: Bundle, x: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Calibrated churn probability without explanations, new accounts from the cold start."""
    probability = bundle.models["churn"].probability(x)
    if bundle.cold_start is not None and new.any():
        columns = bundle.cold_start.columns(bundle.space.features)
        probability[new] = bundle.cold_start.model.probability(x[new][:, columns])
    return probability


def top_features(points: np.ndarray, top: int = TOP_DRIVERS) -> np.ndarray:
    """(rows, top) feature indices by |points|, largest first."""
    top = min(top, points.shape[1])
    magnitude = -np.abs(points)
    part = np.argpartition(magnitude, top - 1, axis=1)[:, :top]
    order = np.argsort(np.take_along_axis(magnitude, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def drivers(features: tuple[str, ...], values: np.ndarray, points: np.ndarray,
            chosen: np.ndarray) -> list[dict[str, object]]:
    """One account's strongest features as sentences: ``values`` and ``points`` are its row,
    ``chosen`` the feature indices to show."""
    load_all()
    out = []
    for index in chosen:
        name = features[index]
        value = values[index]
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            value = None
        elif isinstance(value, np.generic):
            value = value.item()
        out.append({"feature": name, "value": value, "points": float(points[index]),
                    "direction": "raises" if points[index] > 0 else "lowers",
                    "pillar": REGISTRY[name].pillar, "sentence": REGISTRY[name].explain(value)})
    return out


def pillars_of(features: tuple[str, ...]) -> np.ndarray:
    """Each feature's CS pillar, in the order of ``features``."""
    load_all()
    return np.array([REGISTRY[name].pillar for name in features])


def pillar_points(features: tuple[str, ...], points: np.ndarray) -> dict[str, np.ndarray]:
    """Probability points per CS pillar, summed over its features."""
    pillars = pillars_of(features)
    return {pillar: points[:, pillars == pillar].sum(axis=1) for pillar in PILLARS_ORDER}


def probability_at_odds(base_rate: float, odds_ratio: float) -> float:
    """The probability whose odds are ``odds_ratio`` times those of ``base_rate``.

    Tiers are set on the odds scale because it stays inside (0, 1) at any base rate: "three
    times the risk" of a 49% base rate is not a probability, three times its odds is 74%."""
    base = min(max(base_rate, 1e-6), 1 - 1e-6)
    odds = odds_ratio * base / (1.0 - base)
    return odds / (1.0 + odds)


def tier_thresholds(rule: str, base_rate: float, high_odds: float, medium_odds: float,
                    high: float, medium: float) -> tuple[float, float]:
    """(high, medium) churn probabilities from which an account is in that tier."""
    if rule == "absolute":
        return high, medium
    return (probability_at_odds(base_rate, high_odds),
            probability_at_odds(base_rate, medium_odds))


def tier(churn_probability: np.ndarray, high: float, medium: float) -> np.ndarray:
    return np.where(churn_probability >= high, "high",
                    np.where(churn_probability >= medium, "medium", "low"))


def health_score(churn_probability: np.ndarray, average_rate: float) -> np.ndarray:
    """0-100, relative to the portfolio: 100 for no risk, 50 at the average churn rate the model
    was validated on, 0 at twice that or more. A number a CS team can compare across accounts,
    not a second probability."""
    scaled = np.clip(churn_probability / max(2.0 * average_rate, 1e-9), 0.0, 1.0)
    return np.rint(100.0 * (1.0 - scaled)).astype(int)
