"""A churn model for accounts too new to have a history: onboarding features only.

An account a few weeks old has no 90-day usage trend, no survey, no renewal behind it: the
full model reads those gaps as it read them in the (mostly older) accounts it learned from,
which is not what they mean for a new one. The cold-start model learns from new accounts only
(tenure under ``NEW_ACCOUNT_DAYS`` at the snapshot) and reads only the onboarding pillar, the
one part of the record a new account has. Serving picks it by tenure, names it in every answer
(``churn_model``) and explains with it; ``churnlens train`` reports it against the full model
on the same new accounts, out of time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnlens.features.registry import REGISTRY, load_all
from churnlens.training import calibration, models
from churnlens.training.bundle import NEW_ACCOUNT_DAYS, ColdStart, TargetModel
from churnlens.training.matrix import FeatureSpace, labels_of
from churnlens.training.metrics import brier, roc_auc

PILLAR = "onboarding"
MIN_POSITIVES = 10
COLD, FULL = "cold-start", "full"


def tenure_of(tenure_days: Any) -> np.ndarray:
    """Tenure in days as floats, NaN where unknown or not a number."""
    return pd.to_numeric(pd.Series(np.asarray(tenure_days)), errors="coerce").to_numpy(float)


def is_new(tenure_days: Any, days: int = NEW_ACCOUNT_DAYS) -> np.ndarray:
    """New accounts: tenure known and under ``days`` (unknown tenure is not new)."""
    return np.nan_to_num(tenure_of(tenure_days), nan=np.inf) < days


def cold_space(space: FeatureSpace) -> FeatureSpace:
    """The bundle's feature space narrowed to the onboarding pillar, in the same order."""
    load_all()
    features = tuple(n for n in space.features if REGISTRY[n].pillar == PILLAR)
    return FeatureSpace(features=features,
                        categories={n: v for n, v in space.categories.items() if n in features})


def fit_cold_start(parts: dict[str, pd.DataFrame], space: FeatureSpace, seed: int,
                   threads: int, full: TargetModel, mode: str = "auto"
                   ) -> tuple[ColdStart | None, dict[str, Any]]:
    """The cold-start model when it is to be used, and its report.

    ``mode`` auto keeps it only when its Brier score on the validation slice's new accounts
    is below the full model's on the same rows: a model for new accounts that predicts them
    worse than the full one would only look more careful. None, with the reason, when it is
    not kept or cannot be trained (too few new accounts, no onboarding feature).
    """
    if mode == "never":
        return None, {"skipped": "cold_start is set to never"}
    sub = cold_space(space)
    if not sub.features:
        return None, {"skipped": "no onboarding feature in the model"}
    if not all("tenure_days" in part for part in parts.values()):
        return None, {"skipped": "the snapshots carry no tenure_days"}
    young = {name: part[is_new(part["tenure_days"])] for name, part in parts.items()}
    y = {name: labels_of(part, "churned") for name, part in young.items()}
    for name in ("fit", "tuning", "calibration", "validation"):
        if not MIN_POSITIVES <= y[name].sum() < len(y[name]):
            return None, {"skipped": f"{int(y[name].sum())} churned new accounts in the {name} "
                          f"slice ({len(y[name])} snapshots); at least {MIN_POSITIVES} needed"}
    x = {name: sub.matrix(part) for name, part in young.items()}
    search = models.search_lightgbm(x["fit"], y["fit"], x["tuning"], y["tuning"], seed,
                                    threads)
    booster = models.fit_lightgbm(pd.concat([x["fit"], x["tuning"]]),
                                  np.concatenate([y["fit"], y["tuning"]]), search.chosen)
    calibrator = calibration.fit_platt(models.predict_lightgbm(booster, x["calibration"]),
                                       y["calibration"])
    model = TargetModel(booster=booster, calibrator=calibrator)
    val_y = y["validation"]
    cold = model.probability(x["validation"])
    whole = full.probability(space.matrix(young["validation"]))
    better = brier(val_y, cold) < brier(val_y, whole)
    figures = {"rows": len(val_y), "positives": int(val_y.sum()),
               "cold_start": {"roc_auc": roc_auc(val_y, cold), "brier": brier(val_y, cold)},
               "full_model": {"roc_auc": roc_auc(val_y, whole), "brier": brier(val_y, whole)}}
    chosen = mode == "always" or better
    reason = (f"cold_start is set to {mode}" if mode == "always" else
              "better calibrated on new accounts than the full model" if better else
              "the full model predicts new accounts better (lower Brier score)")
    report = {"features": list(sub.features), "new_account_days": NEW_ACCOUNT_DAYS,
              "training_snapshots": int(len(y["fit"]) + len(y["tuning"])),
              "validation": figures, "chosen": chosen, "reason": reason}
    return (ColdStart(model=model, space=sub) if chosen else None), report
