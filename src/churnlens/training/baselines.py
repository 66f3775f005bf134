"""The peers every training report stands beside: what an analyst would try first.

A churn model earns its complexity only by beating simple recency-frequency-monetary (RFM)
models on the same validation snapshots. Three peers, all read from the snapshot's own
columns (so they see exactly the history the model saw, point in time):

- **recency alone**: days since the last activity, higher is riskier; nothing is fitted;
- **RFM logistic regression**: log recency, a year's events, a year's spend (when a money
  event is set), tenure;
- **RFM LightGBM**, untuned (300 trees, 15 leaves): recency, tenure, events over 30, 180 and
  365 days, active days over a year, spend over 90 and 365 days (when set), and the usual gap
  between active days.

They are fitted on every labelled snapshot before validation (fit, tuning and calibration:
what the model and its calibrator saw together) and judged on ROC AUC and PR AUC, which do not
depend on calibration. Without a money event there is no "M": the peers say so in their name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from churnlens.training.metrics import pr_auc, roc_auc

RECENCY = "days_since_last_activity"
TENURE = "tenure_days"
LOGISTIC_COLUMNS = ("log_recency", "events_365d", "spend_365d", TENURE)
TREE_COLUMNS = (RECENCY, TENURE, "events_30d", "events_180d", "events_365d",
                "active_days_365d", "spend_90d", "spend_365d", "typical_gap_days_365d")
MONEY_COLUMNS = ("spend_90d", "spend_365d")
TREE_PARAMS: dict[str, Any] = {"n_estimators": 300, "num_leaves": 15, "verbose": -1,
                               "deterministic": True, "force_row_wise": True}
NEVER_SEEN_DAYS = 10_000.0
"""Recency of an account with no activity in the look-back: longer than any look-back."""


@dataclass(frozen=True)
class PeerResult:
    key: str
    """A name MLflow takes as part of a metric key: recency, rfm_logistic, rfm_lightgbm."""
    name: str
    roc_auc: float | None
    pr_auc: float | None
    columns: tuple[str, ...]


def _recency(frame: pd.DataFrame) -> np.ndarray:
    return frame[RECENCY].astype(float).fillna(NEVER_SEEN_DAYS).to_numpy()


def _design(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        if column == "log_recency":
            out[column] = np.log1p(_recency(frame))
        else:
            out[column] = frame[column].astype(float)
    return out


def _available(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The columns the snapshots hold with some value (a missing money event drops the M)."""
    return tuple(c for c in columns if (c == "log_recency" and RECENCY in frame)
                 or (c in frame and frame[c].notna().any()))


def _judged(key: str, name: str, y: np.ndarray, scores: np.ndarray,
            columns: tuple[str, ...]) -> PeerResult:
    one_class = y.min() == y.max() if len(y) else True
    return PeerResult(key=key, name=name, columns=columns,
                      roc_auc=None if one_class else float(roc_auc(y, scores)),
                      pr_auc=None if one_class else float(pr_auc(y, scores)))


def fit_peers(train: pd.DataFrame, y_train: np.ndarray, validation: pd.DataFrame,
              y_validation: np.ndarray, seed: int, threads: int) -> list[PeerResult]:
    """The three peers' figures on ``validation``; a peer whose columns are absent (no usage
    recency in the snapshots) or whose training labels hold one class is left out."""
    peers: list[PeerResult] = []
    if RECENCY not in train or not train[RECENCY].notna().any():
        return peers
    peers.append(_judged("recency", "recency", y_validation, _recency(validation), (RECENCY,)))
    if y_train.min() == y_train.max():
        return peers
    money = any(c in train and train[c].notna().any() for c in MONEY_COLUMNS)
    suffix = "RFM" if money else "RF (no money event)"

    linear = _available(train, LOGISTIC_COLUMNS)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    design = _design(train, linear)
    fill = design.median().fillna(0.0)
    logistic.fit(design.fillna(fill), y_train)
    scores = logistic.predict_proba(_design(validation, linear).fillna(fill))[:, 1]
    peers.append(_judged("rfm_logistic", f"{suffix} logistic", y_validation, scores, linear))

    trees = _available(train, TREE_COLUMNS)
    booster = lgb.LGBMClassifier(**TREE_PARAMS, random_state=seed, n_jobs=threads)
    booster.fit(_design(train, trees), y_train)
    scores = np.asarray(booster.predict_proba(_design(validation, trees)))[:, 1]
    peers.append(_judged("rfm_lightgbm", f"{suffix} LightGBM", y_validation, scores, trees))
    return peers


def comparison(model_auc: float | None, peers: list[PeerResult]) -> dict[str, Any]:
    """The report's ``baselines`` section: each peer, the best, and whether the model beat it
    (None when either AUC could not be computed)."""
    judged = [p for p in peers if p.roc_auc is not None]
    best = max(judged, key=lambda p: p.roc_auc or 0.0) if judged else None
    beats = (None if best is None or model_auc is None
             else bool(model_auc > (best.roc_auc or 0.0)))
    return {
        "peers": [{"key": p.key, "name": p.name, "roc_auc": p.roc_auc, "pr_auc": p.pr_auc,
                   "columns": list(p.columns)} for p in peers],
        "best": None if best is None else best.name,
        "best_roc_auc": None if best is None else best.roc_auc,
        "model_roc_auc": model_auc,
        "model_beats_best": beats,
        "note": ("Peers fitted on every labelled snapshot before validation, judged on the "
                 "same validation snapshots as the model."),
    }


def warning(section: dict[str, Any]) -> str | None:
    """The sentence `train` prints when the model does not beat its best peer."""
    if section.get("model_beats_best") is not False:
        return None
    return (f"The churn model (ROC AUC {section['model_roc_auc']:.3f}) does not beat the "
            f"{section['best']} peer ({section['best_roc_auc']:.3f}) on the validation "
            "snapshots: a simpler model ranks these accounts as well.")


def metrics(section: dict[str, Any]) -> dict[str, float]:
    """MLflow metrics of the section: ``baseline_<peer>_roc_auc`` and ``_pr_auc``."""
    out = {}
    for peer in section["peers"]:
        for metric in ("roc_auc", "pr_auc"):
            if peer[metric] is not None:
                out[f"baseline_{peer['key']}_{metric}"] = float(peer[metric])
    return out
