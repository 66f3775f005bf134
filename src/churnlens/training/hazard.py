"""When, inside the horizon, an account churns: a discrete-time hazard model.

The churn model answers "will this account churn in the next 90 days?". A CSM planning a
renewal call also needs "will it be gone before its renewal date?", which depends on *when*
inside the window the churn falls. The horizon is cut into months (``PERIOD_DAYS``), and each
labelled snapshot becomes one row per month it was at risk (person-period data): months before
its churn month with ``event = 0``, its churn month with ``event = 1``; an account that did not
churn contributes every month with ``event = 0``. A LightGBM binary model on those rows, with
the month as one more input, is the hazard h(t | x) = P(churn in month t | no churn before t,
x). The survival curve is S(k) = prod_{t <= k} (1 - h(t)) and the cumulative churn probability
by month k is F(k) = 1 - S(k).

Censoring. A snapshot is labelled only once its whole horizon has elapsed, and its label rules
look only inside the window (``features/snapshots.py``), so every labelled snapshot is followed
for the full horizon: it churned in a known month or it survived the horizon. Nothing is
censored inside the horizon, the Kaplan-Meier estimate of the censoring distribution is 1
everywhere, and inverse-probability-of-censoring weights are all 1; the metrics below are the
IPCW ones with those weights, written without them. :func:`person_period` refuses rows that
would need censoring (a churned snapshot without a churn day).

Metrics, out of time on the validation slice:

* :func:`concordance_td`: Antolini's time-dependent concordance. A pair (i, j) is comparable
  when i churned in month T_i and j was still a customer after T_i; it is concordant when the
  model gives i the higher cumulative probability *at T_i*, F(T_i | x_i) > F(T_i | x_j) (ties
  count one half). Antolini's form, because the curves of a hazard model with the month as an
  input may cross, so no single score ranks accounts at every month.
* :func:`concordance_at`: the concordance truncated at month k (Uno's C at tau = k, with
  censoring weights 1): pairs with T_i <= k, scored by F(k | x).
* :func:`integrated_brier`: the Brier score of F(k) against "churned by month k", averaged
  over months 1..K (the integral of a step function over equal months).

Baselines, so those numbers mean something: Kaplan-Meier without covariates (the same curve
for everyone: C = 0.5 by construction), and the churn model's horizon probability spread over
the months at a constant hazard (:func:`spread_curve`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnlens.training import models

PERIOD_DAYS = 30
"""Length of one period of the hazard model: a month, the unit CSMs plan renewals in."""
CHURN_DAY = "churn_day"
PERIOD = "period"
"""The month index (1..K) the hazard model reads beside the features."""
RENEWAL = "days_to_renewal"
RENEWAL_OFFSET = "days_from_period_start_to_renewal"
"""days_to_renewal minus the month's first day: 0-29 when the renewal falls in that month,
negative once it has passed. Subscription churn happens at renewals, and a tree finds "the
renewal is in this month" in this one column far more easily than in the interaction of
``period`` and ``days_to_renewal``; on a generated company it lifts C-td by about 0.01 and
takes the integrated Brier score below the churn model's spread."""
EVENT = "event"
SNAPSHOT = "snapshot"
"""Position of the person-period row's snapshot in the frame it was expanded from."""


def periods_of(horizon_days: int, period_days: int = PERIOD_DAYS) -> int:
    """Months in the horizon (the last one shorter when the horizon is not a whole number)."""
    return max(1, math.ceil(horizon_days / period_days))


def churn_period(frame: pd.DataFrame, horizon_days: int,
                 period_days: int = PERIOD_DAYS) -> np.ndarray:
    """Month (1..K) in which each snapshot's account churned, 0 when it did not churn.

    ``churn_day`` is days from as_of (0 = as_of itself), so day 0-29 is month 1 with 30-day
    months. Rows marked churned must carry a churn day: anything else would be a churn at an
    unknown time, i.e. censoring, which these labels never need.
    """
    churned = frame["churned"].astype(bool).to_numpy()
    day = pd.to_numeric(frame[CHURN_DAY], errors="coerce").to_numpy(dtype=float)
    unknown = churned & np.isnan(day)
    if unknown.any():
        raise ValueError(f"{int(unknown.sum())} churned snapshots have no {CHURN_DAY}; rebuild "
                         "the features with `churnlens features`")
    month = np.where(churned, np.floor(np.nan_to_num(day) / period_days) + 1, 0)
    return np.minimum(month, periods_of(horizon_days, period_days)).astype(np.int64)


def person_period(frame: pd.DataFrame, horizon_days: int,
                  period_days: int = PERIOD_DAYS) -> pd.DataFrame:
    """One row per labelled snapshot and month it was at risk, with ``period`` and ``event``.

    A snapshot whose account churned in month m gives months 1..m (event only in m); one that
    did not churn gives all K months without an event. ``snapshot`` is the row's position in
    ``frame``, so predictions can be tied back to the snapshot.
    """
    k = periods_of(horizon_days, period_days)
    month = churn_period(frame, horizon_days, period_days)
    at_risk = np.where(month > 0, month, k)
    snapshot = np.repeat(np.arange(len(frame)), at_risk)
    start = np.repeat(np.cumsum(at_risk) - at_risk, at_risk)
    period = np.arange(len(snapshot)) - start + 1
    event = (period == month[snapshot]).astype(np.int8)
    out = frame.iloc[snapshot].reset_index(drop=True)
    return out.assign(**{PERIOD: period.astype(np.int64), EVENT: event, SNAPSHOT: snapshot})


def with_period(x: pd.DataFrame, period: np.ndarray | int,
                period_days: int = PERIOD_DAYS) -> pd.DataFrame:
    """The hazard model's input: the churn model's features, the month index and, when the
    features hold ``days_to_renewal``, the renewal's offset from the month's start."""
    month = np.broadcast_to(np.asarray(period, dtype="float64"), len(x))
    out = x.assign(**{PERIOD: month})
    if RENEWAL in x.columns:
        days = pd.to_numeric(x[RENEWAL], errors="coerce").to_numpy(dtype="float64")
        out[RENEWAL_OFFSET] = days - period_days * (month - 1)
    return out


def hazard_inputs(features: tuple[str, ...] | list[str]) -> list[str]:
    """The hazard booster's input columns, in order, for a churn model's feature list."""
    return [*features, PERIOD, *([RENEWAL_OFFSET] if RENEWAL in features else [])]


@dataclass(frozen=True)
class HazardModel:
    """A fitted discrete-time hazard: the booster and the month grid it was trained on."""

    booster: lgb.Booster
    periods: int
    period_days: int = PERIOD_DAYS
    horizon_days: int = 90

    def hazard(self, x: pd.DataFrame) -> np.ndarray:
        """h(t | x) for t = 1..K, shape (n, K): churn in month t given a customer at its start."""
        out = np.empty((len(x), self.periods))
        for t in range(1, self.periods + 1):
            out[:, t - 1] = self.booster.predict(with_period(x, t, self.period_days))
        return np.clip(out, 0.0, 1.0)

    def curve(self, x: pd.DataFrame) -> np.ndarray:
        """Cumulative churn probability by the end of each month, shape (n, K)."""
        return cumulative(self.hazard(x))

    def curve_of_array(self, x: np.ndarray, features: tuple[str, ...] | list[str]
                       ) -> np.ndarray:
        """:meth:`curve` for ``FeatureSpace.array`` input (categories as codes, which is what
        LightGBM turns a categorical frame into): serving scores without pandas frames."""
        renewal = list(features).index(RENEWAL) if RENEWAL in features else None
        out = np.empty((len(x), self.periods))
        for t in range(1, self.periods + 1):
            extra = [np.full(len(x), float(t))]
            if renewal is not None:
                extra.append(x[:, renewal] - self.period_days * (t - 1))
            out[:, t - 1] = self.booster.predict(np.column_stack([x, *extra]))
        return cumulative(np.clip(out, 0.0, 1.0))

    def to_json(self) -> dict[str, Any]:
        return {"periods": self.periods, "period_days": self.period_days,
                "horizon_days": self.horizon_days}


def cumulative(hazard: np.ndarray) -> np.ndarray:
    """F(k) = 1 - prod_{t <= k} (1 - h(t)): non-decreasing in k and inside [0, 1]."""
    return 1.0 - np.cumprod(1.0 - np.clip(hazard, 0.0, 1.0), axis=1)


def predict_curve(model: HazardModel, x: pd.DataFrame) -> np.ndarray:
    """(n, K) cumulative churn probability by month, for the churn model's feature matrix."""
    return model.curve(x)


def scaled_curve(curve: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """The hazard model's timing at the calibrated churn model's level: F(k) * p / F(K).

    What is served. The churn model is calibrated on its own slice and answers "how likely
    within the horizon"; the hazard model answers "when". Scaling keeps each account's curve
    shape (still non-decreasing, inside [0, 1]) and makes its last month equal the churn
    probability shown beside it, so a CSM never reads two different horizon numbers. On a
    generated company it also lowers the integrated Brier score (the report shows both).
    """
    last = curve[:, -1:]
    p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        shape = np.where(last > 0, curve / last, np.arange(1, curve.shape[1] + 1)
                         / curve.shape[1])
    return np.clip(shape * p, 0.0, 1.0)


def fit_hazard(x_fit: pd.DataFrame, pp_fit: pd.DataFrame, x_tune: pd.DataFrame,
               pp_tune: pd.DataFrame, horizon_days: int, seed: int, threads: int,
               fixed: dict[str, Any] | None = None) -> tuple[HazardModel, models.Search]:
    """Fit the hazard booster on person-period rows, choosing its shape like the churn model's.

    ``x_*`` are person-period feature matrices (``FeatureSpace.matrix`` of the expanded rows),
    ``pp_*`` the expanded rows themselves (their ``period`` and ``event``). Leaves and trees are
    chosen by early stopping on the tuning rows, then the model is refitted on fit + tuning,
    as for the churn model, so the two are comparable.
    """
    fit_in = with_period(x_fit, pp_fit[PERIOD].to_numpy())
    tune_in = with_period(x_tune, pp_tune[PERIOD].to_numpy())
    y_fit, y_tune = pp_fit[EVENT].to_numpy(), pp_tune[EVENT].to_numpy()
    sample_fit, sample_y = models.tuning_sample(pp_fit, fit_in, y_fit, seed)
    sample_tune, sample_tune_y = models.tuning_sample(pp_tune, tune_in, y_tune, seed)
    search = models.search_lightgbm(sample_fit, sample_y, sample_tune, sample_tune_y, seed,
                                    threads, fixed=fixed)
    booster = models.fit_lightgbm(pd.concat([fit_in, tune_in]),
                                  np.concatenate([y_fit, y_tune]), search.chosen)
    k = periods_of(horizon_days)
    return HazardModel(booster=booster, periods=k, horizon_days=horizon_days), search


def churn_before_renewal(curve: np.ndarray, days_to_renewal: np.ndarray | pd.Series,
                         period_days: int = PERIOD_DAYS) -> tuple[np.ndarray, np.ndarray]:
    """P(churn by the renewal date) and whether that renewal lies beyond the horizon.

    A subscription not renewed ends on its renewal day, so churn "before renewal" is churn by
    the end of the month holding that day: F(m) with m = days_to_renewal // period_days + 1.
    When the renewal is beyond the horizon (or unknown), the model cannot see that far: the
    answer is the probability by the horizon, F(K), a lower bound, and the flag says so.
    """
    k = curve.shape[1]
    days = pd.to_numeric(pd.Series(np.asarray(days_to_renewal)), errors="coerce").to_numpy(
        dtype=float)
    beyond = np.isnan(days) | (days >= k * period_days)
    month = np.where(beyond, k, np.floor(np.nan_to_num(days).clip(min=0) / period_days) + 1)
    month = np.minimum(month, k).astype(np.int64)
    return curve[np.arange(len(curve)), month - 1], beyond


def spread_curve(probability: np.ndarray, periods: int) -> np.ndarray:
    """A horizon probability p spread over K months at a constant hazard: F(k) =
    1 - (1 - p)^(k / K). The baseline a hazard model must beat to earn its keep."""
    p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
    k = np.arange(1, periods + 1) / periods
    return 1.0 - np.power(1.0 - p[:, None], k[None, :])


def kaplan_meier(month: np.ndarray, periods: int) -> np.ndarray:
    """The covariate-free curve F(k) from churn months (0 = survived the horizon)."""
    hazard = np.zeros(periods)
    at_risk = float(len(month))
    for t in range(1, periods + 1):
        events = float((month == t).sum())
        hazard[t - 1] = events / at_risk if at_risk else 0.0
        at_risk -= events
    return cumulative(hazard[None, :])[0]


def _concordant(case: np.ndarray, others: np.ndarray) -> float:
    """Pairs (case, other) where the case scores higher, ties counting one half."""
    ranked = np.sort(others)
    below = np.searchsorted(ranked, case, side="left")
    upto = np.searchsorted(ranked, case, side="right")
    return float((below + 0.5 * (upto - below)).sum())


def concordance_td(curve: np.ndarray, month: np.ndarray) -> float:
    """Antolini's C-td: P(F(T_i | x_i) > F(T_i | x_j) | T_i < T_j, i churned).

    ``month`` is the churn month (1..K) or 0 for an account that survived the horizon, which is
    later than every month. NaN when no pair is comparable.
    """
    later = np.where(month > 0, month, curve.shape[1] + 1)
    concordant, pairs = 0.0, 0.0
    for t in np.unique(month[month > 0]):
        cases, others = later == t, later > t
        concordant += _concordant(curve[cases, t - 1], curve[others, t - 1])
        pairs += float(cases.sum()) * float(others.sum())
    return concordant / pairs if pairs else float("nan")


def concordance_at(curve: np.ndarray, month: np.ndarray, k: int) -> float:
    """Concordance truncated at month k (Uno's C, censoring weights 1), scored by F(k | x)."""
    later = np.where(month > 0, month, curve.shape[1] + 1)
    concordant, pairs = 0.0, 0.0
    for t in np.unique(month[(month > 0) & (month <= k)]):
        cases, others = later == t, later > t
        concordant += _concordant(curve[cases, k - 1], curve[others, k - 1])
        pairs += float(cases.sum()) * float(others.sum())
    return concordant / pairs if pairs else float("nan")


def brier_by_month(curve: np.ndarray, month: np.ndarray) -> np.ndarray:
    """Brier score of F(k) against "churned by month k", for each k."""
    k = np.arange(1, curve.shape[1] + 1)
    happened = ((month[:, None] > 0) & (month[:, None] <= k[None, :])).astype(float)
    return np.asarray(((happened - curve) ** 2).mean(axis=0), dtype=float)


def integrated_brier(curve: np.ndarray, month: np.ndarray) -> float:
    """The monthly Brier scores averaged over months 1..K (lower is better)."""
    return float(brier_by_month(curve, month).mean()) if len(month) else float("nan")


def evaluate_curves(curves: dict[str, np.ndarray], month: np.ndarray) -> dict[str, Any]:
    """C-td, C at each month, Brier at each month and the IBS of each named curve."""
    out: dict[str, Any] = {}
    for name, curve in curves.items():
        periods = curve.shape[1]
        out[name] = {
            "c_td": concordance_td(curve, month),
            "c_by_month": [concordance_at(curve, month, k) for k in range(1, periods + 1)],
            "brier_by_month": brier_by_month(curve, month).tolist(),
            "ibs": integrated_brier(curve, month),
            "mean_by_month": curve.mean(axis=0).tolist(),
        }
    return out


def hazard_report(curve: np.ndarray, month: np.ndarray, train_month: np.ndarray,
                  churn_probability: np.ndarray, days_to_renewal: np.ndarray | None
                  ) -> dict[str, Any]:
    """Out-of-time figures of the hazard model beside its two baselines.

    ``curve``: the model's (n, K) cumulative probabilities on the validation snapshots;
    ``month``: their churn months (0: survived); ``train_month``: the churn months of the
    snapshots the model trained on (for Kaplan-Meier); ``churn_probability``: the calibrated
    churn model's horizon probability on the same snapshots.
    """
    periods = curve.shape[1]
    km = np.tile(kaplan_meier(train_month, periods), (len(month), 1))
    served = scaled_curve(curve, churn_probability)
    scored = evaluate_curves({"hazard": curve, "served": served, "kaplan_meier": km,
                              "churn_model_spread": spread_curve(churn_probability, periods)},
                             month)
    observed = [float(((month > 0) & (month <= k)).mean()) for k in range(1, periods + 1)]
    out: dict[str, Any] = {
        "validation": scored["hazard"],
        "served": scored["served"],
        "baselines": {"kaplan_meier": scored["kaplan_meier"],
                      "churn_model_spread": scored["churn_model_spread"]},
        "rows": len(month),
        "churners_by_month": [int((month == k).sum()) for k in range(1, periods + 1)],
        "observed_by_month": observed,
        "horizon_check": {"hazard_mean": float(curve[:, -1].mean()),
                          "churn_model_mean": float(np.mean(churn_probability)),
                          "observed_rate": observed[-1]},
        "censoring": CENSORING_NOTE,
        "metrics_note": METRICS_NOTE,
    }
    if days_to_renewal is not None:
        before, beyond = churn_before_renewal(served, days_to_renewal)
        out["before_renewal"] = {"mean_probability": float(before.mean()),
                                 "renewal_beyond_horizon_share": float(beyond.mean())}
    return out


CENSORING_NOTE = (
    "None inside the horizon: a snapshot is labelled only once its whole horizon has elapsed "
    "and its label looks only inside the window, so each one churned in a known month or "
    "survived the horizon; IPCW weights (Kaplan-Meier of censoring) are all 1.")
METRICS_NOTE = (
    "c_td: Antolini's time-dependent concordance (pairs i churned in month T_i, j still a "
    "customer after T_i; concordant when F(T_i|x_i) > F(T_i|x_j)). c_by_month: concordance "
    "truncated at month k scored by F(k|x) (Uno's C, weights 1). ibs: Brier score of F(k) "
    "against churned-by-month-k, averaged over months 1..K. Baselines: Kaplan-Meier without "
    "covariates (fitted on the training snapshots), and the calibrated churn model's horizon "
    "probability spread over the months at a constant hazard.")
