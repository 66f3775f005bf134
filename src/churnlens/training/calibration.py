"""Calibrators: turn a model's raw score into a probability that means what it says.

Both kinds are stored as plain numbers (JSON in the bundle), so loading a model never unpickles
code. Platt scaling is a logistic curve on the raw log-odds: smooth, two parameters, safe on a
small calibration slice. Isotonic regression is a monotone step function: it can fix any
monotone distortion but needs more positives to be trusted. The run fits both on the
calibration slice and keeps the one with the lower Brier score on validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    kind: str  # "platt" | "isotonic" | "identity"
    params: dict[str, list[float]] = field(default_factory=dict)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probability from the model's raw probability."""
        raw = np.asarray(raw, dtype=float)
        if self.kind == "platt":
            a, b = self.params["coef"][0], self.params["intercept"][0]
            return 1.0 / (1.0 + np.exp(-(a * logit(raw) + b)))
        if self.kind == "isotonic":
            return np.interp(raw, self.params["x"], self.params["y"])
        return raw

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "params": self.params}

    @staticmethod
    def from_json(data: dict[str, object]) -> Calibrator:
        kind = str(data["kind"])
        if kind not in ("platt", "isotonic", "identity"):
            raise ValueError(f"unknown calibrator kind {kind!r}")
        params: Any = data.get("params", {})
        return Calibrator(kind=kind, params=dict(params))


def fit_platt(raw: np.ndarray, y: np.ndarray) -> Calibrator:
    model = LogisticRegression(C=1e6, max_iter=1000).fit(logit(raw).reshape(-1, 1), y)
    return Calibrator("platt", {"coef": [float(model.coef_[0][0])],
                                "intercept": [float(model.intercept_[0])]})


def fit_isotonic(raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """Isotonic steps, kept half a snapshot away from 0 and 1: a lowest step in which nobody
    churned says the risk is small, not that it is nil, and a 0% account would read as safe
    beyond doubt (with a churn curve of zeros)."""
    floor = 0.5 / max(len(y), 1)
    model = IsotonicRegression(out_of_bounds="clip", y_min=floor, y_max=1.0 - floor).fit(raw, y)
    return Calibrator("isotonic", {"x": [float(v) for v in model.X_thresholds_],
                                   "y": [float(v) for v in model.y_thresholds_]})


FITTERS = {"platt": fit_platt, "isotonic": fit_isotonic}
