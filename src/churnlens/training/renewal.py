"""Risk until the next renewal: the early warning a CSM can still act on.

Subscription churn happens at renewals, so the 90-day probability is high for the accounts
renewing this quarter and near zero for the rest: an account whose usage collapsed eight
months before its renewal reads as safe. A CSM needs P(lost at or before the next renewal)
instead, or within 12 months where there is no renewal date.

The horizon probability p (the calibrated churn model) already covers the first
``horizon_days``; what lies beyond is a renewal-outcome model q, fitted on the snapshots that
survived the horizon:

    q(x, D) = P(lost by as_of + D | still a customer after the horizon, x)
    P(lost by as_of + D) = 1 - (1 - p) (1 - q)

so the renewal risk of a renewal beyond the horizon is never below p and never above 1. The
days to the outcome, D, is one more input (the renewal's distance, or 365 for "within 12
months"), constrained monotone: a later date is never less likely to have seen the loss. A
renewal inside the horizon is the hazard model's "before renewal" (``hazard``), never above p.

Outcome labels come from the snapshots themselves: an account's churn dates are as_of +
churn_day of its churned snapshots, and a snapshot's outcome is known once the labelled
snapshots cover its target date (``known_until``: the last labelled as_of plus the horizon),
whatever the outcome was, so a churn is never easier to know than a renewal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnlens.training import models
from churnlens.training.calibration import Calibrator, fit_platt
from churnlens.training.hazard import CHURN_DAY, RENEWAL
from churnlens.training.metrics import brier, ece, roc_auc

OUTCOME_DAYS = "days_to_outcome"
"""The renewal-outcome model's extra input: days from as_of to the date the outcome is read."""
LOST = "lost"
YEAR_DAYS = 365
"""The outcome date of an account without a renewal date (and of the 12-month survival that
lifetime value reads): a year."""
TOLERANCE_DAYS = 7
"""A churn dated up to this many days after the renewal still counts as lost at it (a
subscription ending the day after its anniversary is the same non-renewal)."""
MIN_OUTCOMES = 10
"""Fewest lost and fewest kept outcomes a renewal model is fitted on."""
CALIBRATION_FOLDS = 3
EVALUATION_BAND = (91, 365)
"""Days to renewal of the accounts the report compares the two scores on: the renewals the
90-day probability cannot see."""


@dataclass(frozen=True)
class RenewalModel:
    """The fitted q(x, D) beyond the horizon, calibrated (Platt on out-of-fold scores)."""

    booster: lgb.Booster
    calibrator: Calibrator
    horizon_days: int
    year_days: int = YEAR_DAYS
    tolerance_days: int = TOLERANCE_DAYS

    def conditional(self, x: pd.DataFrame | np.ndarray, days: np.ndarray | float
                    ) -> np.ndarray:
        """q: P(lost by as_of + ``days`` | still a customer after the horizon).

        ``x`` is the churn model's input, as ``FeatureSpace.matrix`` or ``.array`` gives it.
        """
        days = np.broadcast_to(np.asarray(days, dtype="float64"), len(x))
        data = (x.assign(**{OUTCOME_DAYS: days}) if isinstance(x, pd.DataFrame)
                else np.column_stack([x, days]))
        raw = np.asarray(self.booster.predict(data), dtype=float)
        return np.clip(self.calibrator(raw), 0.0, 1.0)

    def to_json(self) -> dict[str, Any]:
        return {"calibrator": self.calibrator.to_json(), "horizon_days": self.horizon_days,
                "year_days": self.year_days, "tolerance_days": self.tolerance_days}

    @staticmethod
    def from_json(booster: lgb.Booster, data: dict[str, Any]) -> RenewalModel:
        return RenewalModel(booster=booster, calibrator=Calibrator.from_json(data["calibrator"]),
                            horizon_days=int(data["horizon_days"]),
                            year_days=int(data["year_days"]),
                            tolerance_days=int(data["tolerance_days"]))


def inputs(features: tuple[str, ...] | list[str]) -> list[str]:
    """The renewal booster's input columns, in order."""
    return [*features, OUTCOME_DAYS]


# ------------------------------------------------------------------------------ outcomes


def churn_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """Each account's churn dates (as_of + churn_day of its churned snapshots), deduplicated."""
    churned = frame["churned"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    rows = frame[churned]
    when = (pd.to_datetime(rows["as_of"])
            + pd.to_timedelta(pd.to_numeric(rows[CHURN_DAY], errors="coerce"), unit="D"))
    out = pd.DataFrame({"account_id": rows["account_id"].astype(str).to_numpy(),
                        "churn_date": when.to_numpy()}).dropna()
    return out.drop_duplicates().sort_values("churn_date").reset_index(drop=True)


def first_churn_after(frame: pd.DataFrame, dates: pd.DataFrame) -> np.ndarray:
    """For each row, the account's first churn date on or after its as_of (NaT: none)."""
    left = pd.DataFrame({"account_id": frame["account_id"].astype(str).to_numpy(),
                         "as_of": pd.to_datetime(frame["as_of"]).to_numpy(
                             dtype="datetime64[ns]"),
                         "row": np.arange(len(frame))}).sort_values("as_of")
    when = dates["churn_date"].to_numpy(dtype="datetime64[ns]")
    right = dates.assign(churn_date=when, key=when).sort_values("key")
    merged = pd.merge_asof(left, right, left_on="as_of", right_on="key", by="account_id",
                           direction="forward")
    out = np.full(len(frame), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[merged["row"].to_numpy()] = merged["churn_date"].to_numpy(dtype="datetime64[ns]")
    return out


def known_until(labelled: pd.DataFrame, horizon_days: int) -> pd.Timestamp:
    """The first day no labelled snapshot's window covers: outcomes before it are known."""
    return pd.Timestamp(max(pd.to_datetime(labelled["as_of"]))) + pd.Timedelta(
        days=horizon_days)


def outcome_rows(labelled: pd.DataFrame, horizon_days: int, until: pd.Timestamp,
                 tolerance_days: int = TOLERANCE_DAYS, year_days: int = YEAR_DAYS
                 ) -> pd.DataFrame:
    """The renewal model's training rows: snapshots still customers after the horizon, whose
    outcome date (the renewal, when beyond the horizon; and a year) is known by ``until``.

    Columns: ``row`` (position in ``labelled``), ``as_of``, ``account_id``, ``OUTCOME_DAYS``,
    ``LOST``. A row is known whatever its outcome, by its date alone.
    """
    churned = labelled["churned"].astype("boolean").fillna(True).to_numpy(dtype=bool)
    survived = np.flatnonzero(~churned)
    first = first_churn_after(labelled, churn_dates(labelled))[survived]
    as_of = pd.to_datetime(labelled["as_of"]).to_numpy(dtype="datetime64[ns]")[survived]
    days = (pd.to_numeric(labelled[RENEWAL], errors="coerce").to_numpy(dtype=float)[survived]
            if RENEWAL in labelled.columns else np.full(len(survived), np.nan))
    beyond = ~np.isnan(days) & (days >= horizon_days)
    rows = np.concatenate([survived[beyond], survived])
    outcome_days = np.concatenate([days[beyond], np.full(len(survived), float(year_days))])
    start = np.concatenate([as_of[beyond], as_of])
    first = np.concatenate([first[beyond], first])
    deadline = start + (outcome_days + tolerance_days).astype("timedelta64[D]")
    known = deadline < np.datetime64(until)
    lost = ~np.isnat(first) & (first <= deadline)
    return pd.DataFrame({"row": rows[known], "as_of": start[known],
                         "account_id": labelled["account_id"].astype(str).to_numpy()[
                             rows[known]],
                         OUTCOME_DAYS: outcome_days[known], LOST: lost[known].astype(int)})


# ------------------------------------------------------------------------------ fitting


@dataclass(frozen=True)
class RenewalFit:
    model: RenewalModel | None
    why_not: str | None
    rows: int
    lost: int


def fit_renewal(labelled: pd.DataFrame, matrix: Any, horizon_days: int, until: pd.Timestamp,
                candidate: models.Candidate, seed: int) -> RenewalFit:
    """q on every outcome known by ``until``, in the churn model's tree shape.

    Trees: early stopping on the outcomes of the latest fifth of the snapshot dates (a model
    fitted on the earlier ones), then refitted on all; calibrated by Platt scaling on
    out-of-fold scores (folds of accounts), as the churn model's calibrator is.
    ``matrix``: snapshot rows -> the churn model's input (``FeatureSpace.matrix``).
    """
    rows = outcome_rows(labelled, horizon_days, until)
    lost = int(rows[LOST].sum())
    if lost < MIN_OUTCOMES or len(rows) - lost < MIN_OUTCOMES:
        return RenewalFit(None, (
            f"no renewal model: {len(rows):,} snapshots have a known outcome beyond the "
            f"{horizon_days}-day horizon by {until.date()}, {lost} of them lost; at least "
            f"{MIN_OUTCOMES} lost and {MIN_OUTCOMES} kept are needed (a longer history gives "
            "more)"), len(rows), lost)
    x = matrix(labelled.iloc[rows["row"].to_numpy()]).reset_index(drop=True)
    x[OUTCOME_DAYS] = rows[OUTCOME_DAYS].to_numpy()
    y = rows[LOST].to_numpy()
    params = {**candidate.params, "seed": seed,
              "monotone_constraints": [0] * (x.shape[1] - 1) + [1]}
    shaped = models.Candidate(params=params, rounds=candidate.rounds,
                              tuning_logloss=candidate.tuning_logloss)
    dates = np.sort(rows["as_of"].unique())
    tune = rows["as_of"].isin(dates[-max(1, len(dates) // 5):]).to_numpy()
    if len(dates) > 1 and 0 < y[tune].sum() < tune.sum() and y[~tune].sum() > 0:
        train = lgb.Dataset(x[~tune], label=y[~tune], params={"feature_pre_filter": False})
        check = lgb.Dataset(x[tune], label=y[tune], reference=train,
                            params={"feature_pre_filter": False})
        booster = lgb.train(params, train, num_boost_round=models.MAX_ROUNDS,
                            valid_sets=[check],
                            callbacks=[lgb.early_stopping(models.EARLY_STOPPING, verbose=False)])
        shaped.rounds = max(1, booster.best_iteration)
    booster = models.fit_lightgbm(x, y, shaped)
    raw = models.out_of_fold(x, y, rows["account_id"].to_numpy(), shaped, CALIBRATION_FOLDS,
                             seed)
    model = RenewalModel(booster=booster, calibrator=fit_platt(raw, y),
                         horizon_days=horizon_days)
    return RenewalFit(model, None, len(rows), lost)


# ------------------------------------------------------------------------------ serving


def renewal_risk(churn: np.ndarray, days_to_renewal: np.ndarray,
                 before_renewal: np.ndarray | None, model: RenewalModel | None,
                 x: pd.DataFrame | np.ndarray, horizon_days: int) -> np.ndarray:
    """P(lost at or before the next renewal), or within a year where no renewal date is known.

    * renewal inside the horizon: the hazard's "before renewal" (``before_renewal``), at most
      the horizon probability; without a hazard model, the horizon probability itself;
    * renewal beyond the horizon: 1 - (1 - p)(1 - q(x, days to renewal)), at least p;
    * no renewal date: 1 - (1 - p)(1 - q(x, a year)).

    NaN beyond the horizon when there is no renewal model (a history too short to have seen
    renewals a year out): unknown, never read as safe.
    """
    p = np.clip(np.asarray(churn, dtype=float), 0.0, 1.0)
    days = np.asarray(days_to_renewal, dtype=float)
    inside = ~np.isnan(days) & (days < horizon_days)
    out = np.full(len(p), np.nan)
    near = p if before_renewal is None else np.where(
        np.isnan(before_renewal), p, np.minimum(before_renewal, p))
    out[inside] = near[inside]
    if model is not None and (~inside).any():
        far = np.where(np.isnan(days), float(model.year_days), days)
        q = model.conditional(x, far)
        out[~inside] = (1.0 - (1.0 - p) * (1.0 - q))[~inside]
    return out


def within_year(churn: np.ndarray, model: RenewalModel | None, x: pd.DataFrame | np.ndarray
                ) -> np.ndarray:
    """P(lost within a year): 1 - (1 - p)(1 - q(x, 365)); NaN without a renewal model."""
    p = np.clip(np.asarray(churn, dtype=float), 0.0, 1.0)
    if model is None:
        return np.full(len(p), np.nan)
    return 1.0 - (1.0 - p) * (1.0 - model.conditional(x, float(model.year_days)))


def driving_risk(churn: np.ndarray, renewal: np.ndarray, days_to_renewal: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The one risk a CSM sees and its basis: the renewal risk where the account has a renewal
    date (and it could be computed), else the horizon probability."""
    days = np.asarray(days_to_renewal, dtype=float)
    use = ~np.isnan(days) & ~np.isnan(renewal)
    return (np.where(use, renewal, churn),
            np.where(use, "renewal", "horizon").astype(object))


# ------------------------------------------------------------------------------ evaluation


def evaluation_dates(dates: list[date], until: pd.Timestamp, count: int,
                     tolerance_days: int = TOLERANCE_DAYS, year_days: int = YEAR_DAYS
                     ) -> list[date]:
    """The latest ``count`` snapshot dates whose every outcome up to a year out is known."""
    last = (until - pd.Timedelta(days=year_days + tolerance_days + 1)).date()
    return [d for d in sorted(set(dates)) if d <= last][-count:]


def compare_scores(y: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, Any]:
    """ROC AUC, Brier score, ECE and mean of each named score against ``y``."""
    return {name: {"roc_auc": roc_auc(y, p), "brier": brier(y, p), "ece": ece(y, p),
                   "mean_predicted": float(np.mean(p)) if len(p) else float("nan")}
            for name, p in scores.items()}


def band_of(days: np.ndarray, band: tuple[int, int] = EVALUATION_BAND) -> np.ndarray:
    """Rows whose renewal lies ``band`` days away (inclusive)."""
    days = np.asarray(days, dtype=float)
    return ~np.isnan(days) & (days >= band[0]) & (days <= band[1])


def lost_at_renewal(rows: pd.DataFrame, dates: pd.DataFrame, until: pd.Timestamp,
                    tolerance_days: int = TOLERANCE_DAYS) -> tuple[np.ndarray, np.ndarray]:
    """For each snapshot of ``rows``: lost at or before its next renewal, and whether that is
    known by ``until`` (rows without a renewal date are never known). ``dates``: the
    accounts' churn dates (:func:`churn_dates` of every labelled snapshot)."""
    days = (pd.to_numeric(rows[RENEWAL], errors="coerce").to_numpy(dtype=float)
            if RENEWAL in rows.columns else np.full(len(rows), np.nan))
    first = first_churn_after(rows, dates)
    as_of = pd.to_datetime(rows["as_of"]).to_numpy(dtype="datetime64[ns]")
    deadline = as_of + (np.nan_to_num(days) + tolerance_days).astype("timedelta64[D]")
    known = ~np.isnan(days) & (deadline < np.datetime64(until))
    return (~np.isnat(first) & (first <= deadline)).astype(int), known


def auc_note(horizon_days: int, band: tuple[int, int] = EVALUATION_BAND) -> str:
    return (f"Out of time: the churn, hazard and renewal models were refitted with the run's "
            f"tree shapes on what was known at the first evaluation date (the {horizon_days}"
            f"-day labels that had ended, and the renewal outcomes that had been read), and "
            f"scored the evaluation dates' accounts whose renewal was {band[0]}-{band[1]} days "
            f"away. Label: lost at or before that renewal (a churn up to {TOLERANCE_DAYS} days "
            "after it counts). `renewal_risk` is what the score table serves; "
            f"`churn_{horizon_days}d` the horizon probability of the same refitted model.")


def summarise_band(y: np.ndarray, renewal: np.ndarray, churn: np.ndarray,
                   horizon_days: int) -> dict[str, Any]:
    """The side-by-side figures the report promises, on one band of accounts."""
    return {"snapshots": len(y), "lost": int(y.sum()),
            "observed_rate": float(y.mean()) if len(y) else float("nan"),
            **compare_scores(y, {"renewal_risk": renewal, f"churn_{horizon_days}d": churn})}


def evaluation_window(dates: list[date]) -> dict[str, str]:
    return {"first": min(dates).isoformat(), "last": max(dates).isoformat()} if dates else {}
