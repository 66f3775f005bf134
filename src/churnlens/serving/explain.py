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


TOP_CONTEXT = 3
"""Context features an answer lists beside its drivers."""


def top_features(points: np.ndarray, top: int = TOP_DRIVERS,
                 among: np.ndarray | None = None) -> np.ndarray:
    """(rows, top) feature indices by |points|, largest first; only features where ``among``
    (a boolean per feature) is true, when given."""
    if among is not None:
        top = min(top, int(np.count_nonzero(among)))
    top = min(top, points.shape[1])
    if top == 0:
        return np.zeros((len(points), 0), dtype=int)
    magnitude = -np.abs(points)
    if among is not None:
        magnitude = np.where(among[None, :], magnitude, np.inf)
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


def levers_of(features: tuple[str, ...]) -> np.ndarray:
    """Whether each feature is a lever (behaviour someone can change) rather than context, in
    the order of ``features``: drivers, the failing pillar and improvements read levers only."""
    load_all()
    return np.array([REGISTRY[name].is_lever for name in features], dtype=bool)


def role_points(features: tuple[str, ...], points: np.ndarray) -> dict[str, np.ndarray]:
    """Probability points of the levers and of the context, each summed per row: the two add
    up to the gap between the account's probability and the base probability."""
    levers = levers_of(features)
    return {"lever": points[:, levers].sum(axis=1), "context": points[:, ~levers].sum(axis=1)}


def pillars_of(features: tuple[str, ...]) -> np.ndarray:
    """Each feature's CS pillar, in the order of ``features``."""
    load_all()
    return np.array([REGISTRY[name].pillar for name in features])


def pillar_points(features: tuple[str, ...], points: np.ndarray,
                  levers_only: bool = False) -> dict[str, np.ndarray]:
    """Probability points per CS pillar, summed over its features (its levers only, with
    ``levers_only``: what the failing pillar is judged on, so a renewal date or a plan never
    makes a pillar fail)."""
    pillars = pillars_of(features)
    if levers_only:
        pillars = np.where(levers_of(features), pillars, "")
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


def tier(churn_probability: np.ndarray, high: float | np.ndarray,
         medium: float | np.ndarray) -> np.ndarray:
    """high, medium or low: thresholds are one for all rows, or one per row (a risk's own
    scale, ``serving.score.risk_tiers``)."""
    return np.where(churn_probability >= high, "high",
                    np.where(churn_probability >= medium, "medium", "low"))


HEALTH_STEEPNESS = 0.5
"""The exponent ``k`` of the health score's odds ratio. At 0.5 the score moves by at least a
tenth of a point whenever the risk moves by one percentage point, anywhere in [0, 1], for any
reference from 0.5% to 50% (a steeper map flattens out at the ends and "holds" there), and
scores are almost never exactly 0 or 100."""


def health_score(churn_probability: np.ndarray | float, reference: np.ndarray | float,
                 steepness: float = HEALTH_STEEPNESS) -> np.ndarray:
    """0-100, higher is healthier: ``100 / (1 + (odds(p) / odds(reference)) ** k)``, one
    decimal.

    50 at the reference risk (the churn rate of the model's validation slice, frozen with the
    model, so an account's health never depends on other accounts), lower as the risk is
    higher, with as much resolution at 40% risk as at 0.4%: the map is the logistic of the
    log-odds gap, ``100 * sigmoid(-k * (logit p - logit reference))``. A pure function of a
    probability and the reference, so any risk (90-day or to the renewal) can feed it, with
    a reference on its scale (one, or one per row).
    """
    eps = 1e-9
    p = np.clip(np.asarray(churn_probability, dtype=float), eps, 1.0 - eps)
    ref = np.clip(np.asarray(reference, dtype=float), 1e-6, 1.0 - 1e-6)
    gap = np.log(p / (1.0 - p)) - np.log(ref / (1.0 - ref))
    return np.round(100.0 * _sigmoid(-steepness * gap), 1)
