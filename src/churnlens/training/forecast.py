"""Next quarter's gross and net revenue retention, from the two calibrated models, with an
interval, and the backtest that checks both against what happened.

Over the horizon an account ends in one of three outcomes: it churned, it expanded, or
neither. The churn and expansion models give each outcome's probability; what an outcome does
to the account's ARR is read from history, as the ratio ARR at the end of the horizon / ARR at
the snapshot (0 for most churners, above 1 for expanders, slightly below 1 for the downgrades
among the rest). Summed over the accounts of a portfolio:

    NRR = sum_i ARR_i * R_i / sum_i ARR_i        GRR = the same with min(R_i, 1)

Each R_i is a mixture over the three outcomes, so its mean and variance follow from the
probabilities and the outcome's ratio moments; accounts are independent given their
features. The interval is drawn from a distribution with that mean and standard deviation that
respects the quantity's bounds: a beta distribution for GRR, which lies in [0, 1], and a
lognormal one for NRR, which is never negative (:func:`retention_interval`). With many accounts
of similar size both are close to the normal distribution of the central limit theorem; where a
few accounts hold most of the ARR, the normal "mean plus or minus z standard deviations" would
claim retention below 0 or gross retention above 100%. That interval is only as honest as the
probabilities:
the backtest retrains the two models at each of several past quarter starts on what was known
then, forecasts the quarter, and compares with the ARR the accounts really held at its end.

The cohort is the accounts active at the snapshot (new logos are not in NRR by definition);
ARR at the end is read from the snapshot nearest ``as_of + horizon``, 0 for an account absent
from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import betaincinv

from churnlens.training import calibration

OUTCOMES = ("churned", "expanded", "neither")
LEVEL = 0.9
"""The interval's stated coverage."""
KEEP_RATIOS = 4000
"""Ratios kept per outcome in a bundle: plenty for the moments, small as JSON."""
TOLERANCE_DAYS = 7
"""How far the snapshot read as "the end of the horizon" may lie from as_of + horizon."""
MEASURES = ("grr", "nrr")


@dataclass(frozen=True)
class RevenueModel:
    """What each outcome did to ARR in history: ARR ratios (end of horizon / start)."""

    ratios: dict[str, list[float]]
    horizon_days: int
    extra_sd: dict[str, float] | None = None
    """Per measure, the spread that accounts' independent outcomes do not explain: quarters
    differ from each other beyond what the features say (``time_effect``)."""

    def moments(self, outcome: str, *, gross: bool) -> tuple[float, float]:
        """Mean and mean square of the ratio (capped at 1 for gross retention)."""
        values = np.asarray(self.ratios.get(outcome) or [0.0 if outcome == "churned" else 1.0])
        if gross:
            values = np.minimum(values, 1.0)
        return float(values.mean()), float((values ** 2).mean())

    def uplift(self) -> float:
        """Mean ARR gained by an expanding account, as a share of its ARR."""
        return self.moments("expanded", gross=False)[0] - 1.0

    def to_json(self) -> dict[str, Any]:
        return {"ratios": self.ratios, "horizon_days": self.horizon_days,
                "extra_sd": self.extra_sd}

    @staticmethod
    def from_json(data: dict[str, Any]) -> RevenueModel:
        return RevenueModel(ratios={k: [float(v) for v in values]
                                    for k, values in data["ratios"].items()},
                            horizon_days=int(data["horizon_days"]),
                            extra_sd=data.get("extra_sd"))


def end_dates(dates: list[date], horizon_days: int) -> dict[date, date]:
    """Each snapshot date → the snapshot date nearest as_of + horizon (within the tolerance)."""
    ordered = sorted(set(dates))
    out = {}
    for start in ordered:
        target = start + timedelta(days=horizon_days)
        nearest = min(ordered, key=lambda d: abs((d - target).days))
        if abs((nearest - target).days) <= TOLERANCE_DAYS and nearest > start:
            out[start] = nearest
    return out


def revenue_outcomes(frame: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """Labelled snapshots with ARR, their outcome and their ARR ratio at the horizon's end.

    Columns: account_id, as_of, end_as_of, arr, outcome, ratio. Snapshots without positive
    MRR, without labels or without a snapshot at the horizon's end are left out.
    """
    as_of = pd.to_datetime(frame["as_of"]).dt.date
    ends = end_dates(list(as_of.unique()), horizon_days)
    mrr = pd.to_numeric(frame["mrr"], errors="coerce")
    later = pd.Series(mrr.to_numpy(), index=pd.MultiIndex.from_arrays(
        [as_of.to_numpy(), frame["account_id"].astype(str).to_numpy()]))
    later = later[~later.index.duplicated()]
    rows = frame.assign(as_of=as_of, arr=12.0 * mrr)
    rows = rows[rows["as_of"].isin(list(ends)) & (rows["arr"] > 0) & rows["churned"].notna()
                & rows["expanded"].notna()]
    end = rows["as_of"].map(ends)
    keys = pd.MultiIndex.from_arrays([end.to_numpy(), rows["account_id"].astype(str).to_numpy()])
    arr_end = 12.0 * later.reindex(keys).fillna(0.0).clip(lower=0.0).to_numpy()
    outcome = np.where(rows["churned"].astype(bool), "churned",
                       np.where(rows["expanded"].astype(bool), "expanded", "neither"))
    return pd.DataFrame({"account_id": rows["account_id"].astype(str).to_numpy(),
                         "as_of": rows["as_of"].to_numpy(), "end_as_of": end.to_numpy(),
                         "arr": rows["arr"].to_numpy(), "outcome": outcome,
                         "ratio": arr_end / rows["arr"].to_numpy()})


def fit_revenue_model(outcomes: pd.DataFrame, horizon_days: int, seed: int = 0
                      ) -> RevenueModel:
    """The ratio of each outcome, a random sample of at most ``KEEP_RATIOS``."""
    rng = np.random.default_rng(seed)
    ratios = {}
    for outcome in OUTCOMES:
        values = outcomes.loc[outcomes["outcome"] == outcome, "ratio"].to_numpy(float)
        if len(values) > KEEP_RATIOS:
            values = rng.choice(values, size=KEEP_RATIOS, replace=False)
        ratios[outcome] = sorted(round(float(v), 6) for v in values)
    return RevenueModel(ratios=ratios, horizon_days=horizon_days)


def outcome_probabilities(churn: np.ndarray, expansion: np.ndarray) -> np.ndarray:
    """(n, 3) probabilities of churned, expanded, neither. The expansion model's probability
    is read as "expands and stays" (an account rarely does both), capped so the three add
    up to 1."""
    churned = np.clip(np.asarray(churn, dtype=float), 0.0, 1.0)
    expanded = np.minimum(np.clip(np.asarray(expansion, dtype=float), 0.0, 1.0), 1.0 - churned)
    return np.column_stack([churned, expanded, 1.0 - churned - expanded])


def expected_expansion_arr(arr: np.ndarray, expansion: np.ndarray, model: RevenueModel
                           ) -> np.ndarray:
    """P(expand) x the ARR an expansion adds on average: expected expansion ARR."""
    return np.asarray(arr, dtype=float) * np.clip(expansion, 0.0, 1.0) * max(model.uplift(), 0.0)


def forecast(arr: np.ndarray, churn: np.ndarray, expansion: np.ndarray, model: RevenueModel,
             level: float = LEVEL) -> dict[str, Any]:
    """GRR and NRR expected over the horizon for these accounts, with a ``level`` interval."""
    arr = np.nan_to_num(np.asarray(arr, dtype=float), nan=0.0).clip(min=0.0)
    total = float(arr.sum())
    out: dict[str, Any] = {"accounts": int((arr > 0).sum()), "arr": total, "level": level,
                           "horizon_days": model.horizon_days}
    if total <= 0:
        return {**out, **{m: None for m in MEASURES}}
    probabilities = outcome_probabilities(churn, expansion)
    for measure in MEASURES:
        moments = [model.moments(o, gross=measure == "grr") for o in OUTCOMES]
        mean_i = probabilities @ np.array([m for m, _ in moments])
        square_i = probabilities @ np.array([s for _, s in moments])
        expected = float((arr * mean_i).sum() / total)
        chance = math.sqrt(max(float((arr ** 2 * (square_i - mean_i ** 2)).sum()), 0.0)) / total
        spread = math.hypot(chance, (model.extra_sd or {}).get(measure, 0.0))
        low, high = retention_interval(measure, expected, spread, level)
        out[measure] = {"expected": expected, "low": low, "high": high, "sd": spread,
                        "chance_sd": chance}
    out["churned_arr"] = float((arr * probabilities[:, 0]).sum())
    out["expansion_arr"] = float(expected_expansion_arr(arr, probabilities[:, 1], model).sum())
    return out


def retention_interval(measure: str, expected: float, sd: float, level: float = LEVEL
                       ) -> tuple[float, float]:
    """The central ``level`` interval of a retention with this mean and standard deviation,
    inside the retention's bounds.

    GRR lies in [0, 1]: the interval is that of the beta distribution with the same mean and
    variance. A variance larger than a [0, 1] quantity can have (only the time effect, added
    as if unbounded, can ask for it) is capped at its largest, that of a coin between 0 and
    1, so the interval then spans nearly all of [0, 1]: the honest answer when a few
    accounts hold most of the ARR. NRR is never negative and has no upper bound: the interval
    is that of the lognormal distribution with the same mean and variance. Both reduce to
    the mean with no spread.
    """
    tail = (1.0 - level) / 2.0
    if measure == "grr":
        expected = min(max(expected, 0.0), 1.0)
        if sd <= 0 or expected in (0.0, 1.0):
            return expected, expected
        most = expected * (1.0 - expected)
        size = most / min(sd * sd, most * (1.0 - 1e-9)) - 1.0
        a, b = expected * size, (1.0 - expected) * size
        return float(betaincinv(a, b, tail)), float(betaincinv(a, b, 1.0 - tail))
    expected = max(expected, 0.0)
    if sd <= 0 or expected == 0.0:
        return expected, expected
    log_sd = math.sqrt(math.log1p((sd / expected) ** 2))
    centre = math.log(expected) - log_sd ** 2 / 2.0
    z = NormalDist().inv_cdf(1.0 - tail)
    return math.exp(centre - z * log_sd), math.exp(centre + z * log_sd)


def actual(outcomes: pd.DataFrame) -> dict[str, float]:
    """What the accounts of one snapshot really retained: GRR and NRR at the horizon's end."""
    arr, ratio = outcomes["arr"].to_numpy(float), outcomes["ratio"].to_numpy(float)
    total = arr.sum()
    return {"grr": float((arr * np.minimum(ratio, 1.0)).sum() / total),
            "nrr": float((arr * ratio).sum() / total), "arr": float(total)}


# ------------------------------------------------------------------------------- backtest

MODEL_PARAMS = ("objective", "num_leaves", "min_data_in_leaf", "lambda_l2", "learning_rate",
                "feature_fraction", "max_bin", "min_data_per_group", "cat_smooth")


def refit_params(booster: lgb.Booster, seed: int, threads: int) -> tuple[dict[str, Any], int]:
    """The champion's tree shape and number of trees, to refit it at a past quarter."""
    params = {k: booster.params[k] for k in MODEL_PARAMS if k in booster.params}
    params.update(seed=seed, num_threads=threads, deterministic=True, force_row_wise=True,
                  verbosity=-1)
    return params, max(1, booster.num_trees())


@dataclass(frozen=True)
class Refit:
    """How to rebuild the champion's two models from rows known at a past date."""

    matrix: Any
    """Snapshot rows → model input (``FeatureSpace.matrix``)."""
    params: dict[str, tuple[dict[str, Any], int]]
    """Target → (LightGBM parameters, trees)."""


def _fit_at(known: pd.DataFrame, refit: Refit, calibration_dates: int
            ) -> dict[str, tuple[lgb.Booster, calibration.Calibrator]]:
    dates = sorted(known["as_of"].unique())
    cal = known["as_of"].isin(dates[-calibration_dates:]).to_numpy()
    x = refit.matrix(known)
    fitted = {}
    for target, label in (("churn", "churned"), ("expansion", "expanded")):
        params, trees = refit.params[target]
        y = known[label].astype(bool).to_numpy().astype(int)
        booster = lgb.train(params, lgb.Dataset(x[~cal], label=y[~cal]), num_boost_round=trees)
        raw = np.asarray(booster.predict(x[cal]), dtype=float)
        fitted[target] = (booster, calibration.fit_platt(raw, y[cal]))
    return fitted


Predictor = Any
"""Snapshot rows → {"churn": p, "expansion": p}."""


def time_effect(rows: pd.DataFrame, outcomes: pd.DataFrame, predict: Predictor,
                model: RevenueModel) -> dict[str, float]:
    """The spread of whole quarters around the forecast that chance alone does not explain.

    The models see accounts, not the economy: some quarters every account churns a little
    more. Over every snapshot date whose outcome is known, the squared error of that date's
    forecast minus its chance variance estimates the between-quarter variance (zero when
    chance explains it all). Read from the rows the models trained on, so it is known at the
    time of the forecast.
    """
    plain = RevenueModel(ratios=model.ratios, horizon_days=model.horizon_days)
    keys = pd.MultiIndex.from_arrays([pd.to_datetime(rows["as_of"]).dt.date.to_numpy(),
                                      rows["account_id"].astype(str).to_numpy()])
    cohort = outcomes.set_index(["as_of", "account_id"])
    inside = keys.isin(cohort.index)
    rows, keys = rows[inside], keys[inside]
    p = predict(rows) if len(rows) else {"churn": np.array([]), "expansion": np.array([])}
    truth = cohort.loc[keys]
    squares: dict[str, list[float]] = {m: [] for m in MEASURES}
    dates = keys.get_level_values(0).to_numpy()
    for when in sorted(set(dates)):
        mask = dates == when
        if mask.sum() < 20:
            continue
        guess = forecast(truth["arr"].to_numpy(float)[mask], p["churn"][mask],
                         p["expansion"][mask], plain)
        real = actual(truth[mask])
        for measure in MEASURES:
            squares[measure].append((guess[measure]["expected"] - real[measure]) ** 2
                                    - guess[measure]["chance_sd"] ** 2)
    return {m: math.sqrt(max(float(np.mean(v)), 0.0)) if v else 0.0
            for m, v in squares.items()}


def _predictor(fitted: dict[str, tuple[lgb.Booster, calibration.Calibrator]], refit: Refit
               ) -> Predictor:
    def predict(rows: pd.DataFrame) -> dict[str, np.ndarray]:
        x = refit.matrix(rows)
        return {t: np.clip(c(np.asarray(b.predict(x), dtype=float)), 0.0, 1.0)
                for t, (b, c) in fitted.items()}
    return predict


def backtest(frame: pd.DataFrame, refit: Refit, horizon_days: int, *, quarters: int = 12,
             segments: pd.Series | None = None, min_dates: int = 6,
             calibration_dates: int = 2, level: float = LEVEL, seed: int = 0
             ) -> dict[str, Any]:
    """Forecast each of the last ``quarters`` labelled snapshot dates as if it were today.

    At each start t the models are refitted on snapshots whose horizon had ended by t (the
    last ``calibration_dates`` of them calibrate), the outcome ratios and the time effect are
    read from the same rows, and the forecast for the accounts active at t is compared with
    their ARR at t + horizon. ``segments`` (by row of ``frame``) adds a forecast per segment
    at each start.
    """
    frame = frame.assign(as_of=pd.to_datetime(frame["as_of"]).dt.date)
    outcomes = revenue_outcomes(frame, horizon_days)
    starts = [start for start in sorted(outcomes["as_of"].unique())
              if outcomes.loc[outcomes["end_as_of"] <= start, "as_of"].nunique() >= min_dates]
    checks: list[dict[str, Any]] = []
    for start in starts[-quarters:]:
        ended = outcomes[outcomes["end_as_of"] <= start]
        known = frame[frame["as_of"].isin(set(ended["as_of"]))
                      & frame["churned"].notna() & frame["expanded"].notna()]
        predict = _predictor(_fit_at(known, refit, calibration_dates), refit)
        model = fit_revenue_model(ended, horizon_days, seed)
        model = RevenueModel(ratios=model.ratios, horizon_days=horizon_days,
                             extra_sd=time_effect(known, ended, predict, model))
        truth = outcomes[outcomes["as_of"] == start].set_index("account_id")
        now = frame[(frame["as_of"] == start)
                    & frame["account_id"].astype(str).isin(truth.index)]
        p = predict(now)
        ids = now["account_id"].astype(str).to_numpy()
        arr = truth.loc[ids, "arr"].to_numpy(float)
        groups = {"portfolio": np.ones(len(now), dtype=bool)}
        if segments is not None:
            for name in sorted(segments.loc[now.index].dropna().unique()):
                groups[str(name)] = (segments.loc[now.index] == name).to_numpy()
        for group, mask in groups.items():
            if mask.sum() < 20:
                continue
            predicted = forecast(arr[mask], p["churn"][mask], p["expansion"][mask], model, level)
            real = actual(truth.loc[ids[mask]])
            for measure in MEASURES:
                guess = predicted[measure]
                checks.append({"start": start.isoformat(), "group": group, "measure": measure,
                               "accounts": int(mask.sum()), "expected": guess["expected"],
                               "low": guess["low"], "high": guess["high"],
                               "actual": real[measure],
                               "error": guess["expected"] - real[measure],
                               "covered": bool(guess["low"] <= real[measure] <= guess["high"])})
    return {"level": level, "horizon_days": horizon_days, "checks": checks,
            "summary": summarise(checks), "note": BACKTEST_NOTE,
            "too_short": None if checks else too_short(outcomes, horizon_days, min_dates)}


def too_short(outcomes: pd.DataFrame, horizon_days: int, min_dates: int) -> str:
    """Why a history gave no backtest, and what it lacks: said, not shown as an empty table."""
    dates = sorted(outcomes["as_of"].unique())
    ended = max((outcomes.loc[outcomes["end_as_of"] <= start, "as_of"].nunique()
                 for start in dates), default=0)
    if ended < min_dates:
        return (f"No backtest: a past start refits the models on the snapshot dates whose "
                f"{horizon_days}-day horizon had ended by then, and needs {min_dates} of them; "
                f"this history has {len(dates)} snapshot dates whose horizon ended, and at "
                f"most {ended} before any one of them. About {min_dates - ended} more snapshot "
                "dates of history are needed.")
    return ("No backtest: no past start had 20 accounts with ARR whose outcome a horizon "
            "later is known.")


def summarise(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Error and coverage per measure, for the portfolio and for all groups together."""
    out: dict[str, Any] = {}
    table = pd.DataFrame(checks)
    if table.empty:
        return out
    for measure in MEASURES:
        for scope, rows in (("portfolio", table[(table["measure"] == measure)
                                                & (table["group"] == "portfolio")]),
                            ("segments", table[(table["measure"] == measure)
                                               & (table["group"] != "portfolio")])):
            if rows.empty:
                continue
            out[f"{measure}_{scope}"] = {
                "quarters": len(rows),
                "mean_absolute_error": float(rows["error"].abs().mean()),
                "bias": float(rows["error"].mean()),
                "coverage": float(rows["covered"].mean()),
                "mean_width": float((rows["high"] - rows["low"]).mean())}
    return out


BACKTEST_NOTE = (
    "Each start is a past snapshot date; the churn and expansion models were refitted with the "
    "champion's tree shape on snapshots whose horizon had ended by then (the last two dates "
    "calibrate, Platt), the outcome ratios read from the same rows, and the forecast for the "
    "accounts active at the start compared with the ARR they held at the horizon's end. "
    "Starts one month apart overlap in time, so their errors are not independent.")
