"""``churnlens train``: fit, calibrate, evaluate, record in MLflow, gate, maybe promote.

One run trains both targets on the same out-of-time slices (``splits.py``), evaluates them
beside a logistic-regression baseline and, on a generated company, beside the oracle, logs
everything to MLflow, registers both models, and moves the ``champion`` alias only when the
run is not worse than the current champion on this run's validation snapshots.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnlens.features.registry import REGISTRY
from churnlens.features.snapshots import grid_dates
from churnlens.features.store import SNAPSHOTS, read_manifest
from churnlens.settings import Settings
from churnlens.training import (
    baselines,
    coldstart,
    drift,
    evaluation,
    explain,
    forecast,
    hazard,
    lifetime,
    models,
    plots,
    renewal,
    tracking,
)
from churnlens.training.bundle import (
    LABEL_OF,
    MANIFEST,
    TARGETS,
    Bundle,
    BundleError,
    TargetModel,
    latest_bundle,
    load_bundle,
    manifest_digest,
    point_champion,
    write_bundle,
)
from churnlens.training.calibration import FITTERS, Calibrator, fit_platt
from churnlens.training.matrix import FeatureSpace, feature_space, labels_of, load_snapshots
from churnlens.training.metrics import (
    METRIC_NAMES,
    brier,
    evaluate,
    finite,
    not_computable,
    reportable,
)
from churnlens.training.pyfunc import CalibratedModel, model_input
from churnlens.training.splits import (
    MIN_FIT_DATES,
    MIN_LABELLED_DATES,
    NotEnoughHistory,
    TimeSplit,
    choose_split,
)


@dataclass
class TargetFit:
    target: str
    search: models.Search
    model: TargetModel
    calibrators: dict[str, float]
    """Validation Brier score of each calibrator kind tried."""
    validation: np.ndarray
    baseline_validation: np.ndarray
    raw_validation: np.ndarray
    seconds: dict[str, float]
    """Wall time of each phase: search, fit, calibrate, baseline."""


@dataclass
class HazardFit:
    model: hazard.HazardModel
    search: models.Search
    seconds: float


@dataclass
class TrainResult:
    run_id: str
    report: dict[str, Any]
    report_path: Path
    promoted: bool
    reason: str
    bundle: Path | None


def _slices(frame: pd.DataFrame, split: TimeSplit) -> dict[str, pd.DataFrame]:
    out = {}
    for name in ("fit", "tuning", "calibration", "validation"):
        dates = set(getattr(split, name))
        out[name] = frame[frame["as_of"].isin(dates)]
    return out


CALIBRATION_FOLDS = 3
"""The model's calibrator is fitted on out-of-fold predictions over every snapshot before
validation (folds of accounts), and the model itself on all of those snapshots, as
scikit-learn's ``CalibratedClassifierCV(ensemble=False)`` does. A calibrator fitted on the few
dates just before validation carries whatever those months were: on Online Retail II (cut
2011-09-01) they were the three months after Christmas, churn 58-71% against 53% in
validation, and mean predicted churn came out 21% above observed; fitted over every earlier
date, 5% above. On a generated company (3,000 accounts, 36 months, seed 21), 5% below against
6% below. Every season and every month of a trend weigh in by their snapshots."""


def _calibrate(raw_cal: np.ndarray, y_cal: np.ndarray, raw_val: np.ndarray, y_val: np.ndarray
               ) -> tuple[Calibrator, dict[str, float]]:
    """Fit every calibrator kind on out-of-fold scores (or, for the logistic baseline, the
    calibration slice); keep the best on validation Brier."""
    scores: dict[str, float] = {}
    fitted: dict[str, Calibrator] = {}
    for kind, fit in FITTERS.items():
        fitted[kind] = fit(raw_cal, y_cal)
        scores[kind] = brier(y_val, fitted[kind](raw_val))
    best = min(scores, key=lambda k: (scores[k], k))
    return fitted[best], scores


NOUNS = {"churn": "churned accounts", "expansion": "expanding accounts"}
"""What a positive label of each target is, as a sentence names it."""


def unlearnable(target: str, parts: dict[str, pd.DataFrame]) -> str | None:
    """Why ``target`` cannot be fitted, tuned and calibrated on these slices, or None.

    Each of fit, tuning and calibration needs both outcomes: a history without a single
    price rise has no expansion to learn, and that is a fact about the business, not an error.
    """
    label = LABEL_OF[target]
    for name in ("fit", "tuning", "calibration"):
        part = parts[name]
        y = labels_of(part, label)
        if 0 < y.sum() < len(y):
            continue
        dates = sorted(set(part["as_of"]))
        where = (f"the {name} slice ({len(dates)} snapshot dates, {dates[0]} to {dates[-1]}, "
                 f"{len(y):,} snapshots)" if dates else f"the {name} slice (no snapshots)")
        kind = f"no {NOUNS[target]}" if not y.sum() else f"only {NOUNS[target]}"
        return f"{where} has {kind}"
    return None


def fit_target(target: str, parts: dict[str, pd.DataFrame], space: FeatureSpace,
               settings: Settings) -> TargetFit:
    label = LABEL_OF[target]
    x = {name: space.matrix(part) for name, part in parts.items()}
    y = {name: labels_of(part, label) for name, part in parts.items()}
    for name in ("fit", "tuning", "calibration"):
        if not 0 < y[name].sum() < len(y[name]):
            kind = "positive" if not y[name].sum() else "negative"
            raise ValueError(f"the {name} slice has no {kind} '{label}' labels "
                             f"({len(y[name])} snapshots); a {target} model cannot be "
                             "trained on this history")
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[phase] = now - clock
        clock = now

    search_fit, search_y = models.tuning_sample(parts["fit"], x["fit"], y["fit"], settings.seed)
    search_tune, search_tune_y = models.tuning_sample(parts["tuning"], x["tuning"], y["tuning"],
                                                      settings.seed)
    search = models.search_lightgbm(search_fit, search_y, search_tune, search_tune_y,
                                    settings.seed, settings.cores,
                                    fixed=settings.model_params or None)
    lap("search")
    train_x = pd.concat([x["fit"], x["tuning"]])
    train_y = np.concatenate([y["fit"], y["tuning"]])
    before = ("fit", "tuning", "calibration")
    prior_x = pd.concat([x[name] for name in before])
    prior_y = np.concatenate([y[name] for name in before])
    booster = models.fit_lightgbm(prior_x, prior_y, search.chosen)
    lap("fit")
    prior_accounts = pd.concat([parts[name]["account_id"] for name in before]).to_numpy()
    raw_prior = models.out_of_fold(prior_x, prior_y, prior_accounts, search.chosen,
                                   CALIBRATION_FOLDS, settings.seed)
    raw_val = models.predict_lightgbm(booster, x["validation"])
    calibrator, scores = _calibrate(raw_prior, prior_y, raw_val, y["validation"])
    lap("calibrate")

    baseline = models.fit_baseline(train_x, train_y, settings.seed)
    base_cal = models.predict_baseline(baseline, x["calibration"])
    base_val = models.predict_baseline(baseline, x["validation"])
    base_calibrator, _ = _calibrate(base_cal, y["calibration"], base_val, y["validation"])
    lap("baseline")
    return TargetFit(target=target, search=search,
                     model=TargetModel(booster=booster, calibrator=calibrator),
                     calibrators=scores, validation=np.clip(calibrator(raw_val), 0, 1),
                     baseline_validation=np.clip(base_calibrator(base_val), 0, 1),
                     raw_validation=raw_val, seconds=seconds)


def fit_hazard_model(parts: dict[str, pd.DataFrame], space: FeatureSpace, settings: Settings
                     ) -> HazardFit | None:
    """The churn-month hazard model on person-period rows of fit + tuning; None when the
    snapshots carry no ``churn_day`` (built before it existed) or nobody churned."""
    if hazard.CHURN_DAY not in parts["fit"].columns:
        return None
    started = time.perf_counter()
    expanded = {name: hazard.person_period(parts[name], settings.horizon_days)
                for name in ("fit", "tuning")}
    if not all(0 < rows[hazard.EVENT].sum() < len(rows) for rows in expanded.values()):
        return None
    model, search = hazard.fit_hazard(
        space.matrix(expanded["fit"]), expanded["fit"], space.matrix(expanded["tuning"]),
        expanded["tuning"], settings.horizon_days, settings.seed, settings.cores,
        fixed=settings.model_params or None)
    return HazardFit(model=model, search=search, seconds=time.perf_counter() - started)


def evaluate_hazard(fit: HazardFit | None, parts: dict[str, pd.DataFrame], space: FeatureSpace,
                    churn_validation: np.ndarray, settings: Settings) -> dict[str, Any]:
    """The hazard model's out-of-time figures against Kaplan-Meier and the churn model."""
    if fit is None:
        return {"skipped": "no hazard model: the snapshots carry no churn_day label (rebuild "
                "them with `churnlens features`) or the fit/tuning slices hold no churn"}
    val = parts["validation"]
    trained = pd.concat([parts["fit"], parts["tuning"]])
    days = val["days_to_renewal"].to_numpy() if "days_to_renewal" in val else None
    figures = hazard.hazard_report(
        fit.model.curve(space.matrix(val)), hazard.churn_period(val, settings.horizon_days),
        hazard.churn_period(trained, settings.horizon_days), churn_validation, days)
    return {**figures, "periods": fit.model.periods, "period_days": fit.model.period_days,
            "model": {"search": fit.search.table(),
                      "num_leaves": fit.search.chosen.params["num_leaves"],
                      "trees": fit.search.chosen.rounds},
            "seconds": fit.seconds}


def fit_renewal_model(labelled: pd.DataFrame, space: FeatureSpace, fits: dict[str, TargetFit],
                      settings: Settings) -> renewal.RenewalFit:
    """The served renewal-outcome model, on every outcome beyond the horizon known by now."""
    return renewal.fit_renewal(labelled, space.matrix, settings.horizon_days,
                               renewal.known_until(labelled, settings.horizon_days),
                               fits["churn"].search.chosen, settings.seed)


def renewal_reference(val: pd.DataFrame, space: FeatureSpace, fits: dict[str, TargetFit],
                      hazard_fit: HazardFit | None, renewal_fit: renewal.RenewalFit,
                      horizon: int) -> float | None:
    """The mean renewal risk the served models give the validation slice's accounts with a
    renewal date: the reference that health and tiers read renewal risks against
    (``serving.score.renewal_rate``), as the validation churn rate is the horizon
    probability's. Its outcomes lie mostly in the future, so the calibrated models' mean
    stands for their rate. None without a renewal model or a renewal date."""
    if renewal_fit.model is None or "churn" not in fits or hazard.RENEWAL not in val:
        return None
    x = space.matrix(val)
    p = fits["churn"].validation
    curve = (hazard.scaled_curve(hazard_fit.model.curve(x), p) if hazard_fit is not None
             else hazard.spread_curve(p, hazard.periods_of(horizon)))
    days = pd.to_numeric(val[hazard.RENEWAL], errors="coerce").to_numpy(dtype=float)
    before, _ = hazard.churn_before_renewal(curve, days)
    risk, basis = renewal.driving_risk(
        p, renewal.renewal_risk(p, days, before, renewal_fit.model, x, horizon), days)
    chosen = basis == "renewal"
    return float(risk[chosen].mean()) if chosen.any() else None


OUTLOOK_DATES = 3
"""Snapshot dates the renewal AUC and the 12-month revenue backtest are read on."""


def _refit_target(rows: pd.DataFrame, space: FeatureSpace, candidate: models.Candidate,
                  label: str, seed: int) -> TargetModel:
    """A model of the run's shape on ``rows``, Platt-calibrated on out-of-fold scores."""
    x, y = space.matrix(rows), labels_of(rows, label)
    raw = models.out_of_fold(x, y, rows["account_id"].to_numpy(), candidate,
                             CALIBRATION_FOLDS, seed)
    return TargetModel(booster=models.fit_lightgbm(x, y, candidate), calibrator=fit_platt(raw, y))


def evaluate_outlook(labelled: pd.DataFrame, frame: pd.DataFrame, space: FeatureSpace,
                     fits: dict[str, TargetFit], hazard_fit: HazardFit | None,
                     settings: Settings) -> dict[str, Any]:
    """Renewal risk against the horizon probability, and predicted 12-month revenue against
    what was paid, out of time: every model refitted on what was known at the first
    evaluation date (the latest dates whose renewals up to a year out are known)."""
    horizon = settings.horizon_days
    until = renewal.known_until(labelled, horizon)
    dates = renewal.evaluation_dates(sorted(set(labelled["as_of"])), until, OUTLOOK_DATES)
    as_of = pd.to_datetime(labelled["as_of"])
    cutoff = pd.Timestamp(dates[0] if dates else max(labelled["as_of"]))
    ended = labelled[(as_of + pd.Timedelta(days=horizon) <= cutoff).to_numpy()]
    if not dates or ended["as_of"].nunique() < MIN_FIT_DATES or labels_of(
            ended, "churned").sum() == 0:
        why = (f"no out-of-time check of renewal risk and revenue: it needs a year of "
               f"outcomes after its evaluation dates and {MIN_FIT_DATES} snapshot dates whose "
               f"{horizon}-day labels had ended before them; this history (labelled outcomes "
               f"known until {until.date()}) has "
               + (f"{ended['as_of'].nunique()} before {dates[0]}" if dates else
                  "no snapshot date a year before that"))
        return {"renewal": {"skipped": why}, "lifetime_value": {"skipped": why}}
    candidate = fits["churn"].search.chosen
    earlier = labelled[(as_of < cutoff).to_numpy()]
    fitted = renewal.fit_renewal(earlier, space.matrix, horizon, cutoff, candidate,
                                 settings.seed)
    if fitted.model is None:
        why = f"no out-of-time check of renewal risk and revenue: {fitted.why_not}"
        return {"renewal": {"skipped": why}, "lifetime_value": {"skipped": why}}
    churn = _refit_target(ended, space, candidate, "churned", settings.seed)
    rows = labelled[labelled["as_of"].isin(set(dates))]
    x = space.matrix(rows)
    p = churn.probability(x)
    periods = hazard.periods_of(horizon)
    curve = hazard.spread_curve(p, periods)
    if hazard_fit is not None:
        expanded = hazard.person_period(ended, horizon)
        booster = models.fit_lightgbm(
            hazard.with_period(space.matrix(expanded), expanded[hazard.PERIOD].to_numpy()),
            expanded[hazard.EVENT].to_numpy(), hazard_fit.search.chosen)
        curve = hazard.scaled_curve(hazard.HazardModel(
            booster=booster, periods=periods, horizon_days=horizon).curve(x), p)
    growth = np.ones(len(rows))
    if "expansion" in fits and "mrr" in frame.columns and 0 < labels_of(
            ended, "expanded").sum() < len(ended):
        expansion = _refit_target(ended, space, fits["expansion"].search.chosen, "expanded",
                                  settings.seed)
        outcomes = forecast.revenue_outcomes(frame[pd.to_datetime(frame["as_of"]) < cutoff],
                                             horizon)
        outcomes = outcomes[pd.to_datetime(outcomes["end_as_of"]) <= cutoff]
        if not outcomes.empty:
            uplift = forecast.fit_revenue_model(outcomes, horizon, settings.seed).uplift()
            growth = 1.0 + expansion.probability(x) * max(uplift, 0.0)
    meta = {c: rows[c].to_numpy() for c in ("mrr", lifetime.SPEND_COLUMN) if c in rows}
    base, basis = lifetime.monthly_revenue(meta, len(rows))
    days = (pd.to_numeric(rows[hazard.RENEWAL], errors="coerce").to_numpy(dtype=float)
            if hazard.RENEWAL in rows else np.full(len(rows), np.nan))
    seen = lifetime.outlook(x, p, curve, days, base, basis, growth, fitted.model, horizon,
                            assumptions(settings))
    lost, known = renewal.lost_at_renewal(rows, renewal.churn_dates(labelled), until)
    band = renewal.band_of(days) & known
    out: dict[str, Any] = {
        "evaluation_dates": [d.isoformat() for d in dates], "cutoff": dates[0].isoformat(),
        "renewal_model_rows": fitted.rows,
        "renewal_91_365": renewal.summarise_band(lost[band], seen.renewal_risk[band], p[band],
                                                 horizon),
        "renewal_all_known": renewal.summarise_band(
            lost[known], seen.renewal_risk[known], p[known], horizon),
        "note": renewal.auc_note(horizon)}
    result: dict[str, Any] = {"renewal": out}
    if "mrr" not in rows:
        result["lifetime_value"] = {"skipped": "no 12-month revenue backtest: the history has "
                                    "no MRR to compare with (spend-based value is not "
                                    "backtested)"}
        return result
    paid = lifetime.realised_revenue(frame, dates)
    keys = pd.MultiIndex.from_arrays([rows["account_id"].astype(str).to_numpy(),
                                      pd.to_datetime(rows["as_of"]).dt.date.to_numpy()])
    realised = paid.set_index(["account_id", "as_of"])["realised"].reindex(keys).to_numpy(float)
    usable = ~np.isnan(realised) & ~np.isnan(base) & (basis == "mrr")
    result["lifetime_value"] = {
        "backtest": lifetime.backtest_figures(
            seen.expected_revenue_12m[usable], realised[usable], 12.0 * base[usable],
            np.asarray([str(d) for d in keys.get_level_values(1)])[usable]),
        "note": lifetime.BACKTEST_NOTE, "assumptions": dataclasses.asdict(assumptions(settings))}
    return result


def assumptions(settings: Settings) -> lifetime.ValueAssumptions:
    """The lifetime-value settings as the computation reads them."""
    return lifetime.ValueAssumptions(discount_rate=settings.ltv_discount_rate,
                                     horizon_months=settings.ltv_horizon_months,
                                     gross_margin=settings.ltv_gross_margin)


def fit_revenue(frame: pd.DataFrame, labelled: pd.DataFrame, fits: dict[str, TargetFit],
                space: FeatureSpace, settings: Settings) -> forecast.RevenueModel | None:
    """What churn and expansion did to ARR in history, and how much whole quarters strayed
    from the models' forecast: the inputs of the GRR/NRR forecast. None without MRR."""
    if "mrr" not in frame.columns:
        return None
    outcomes = forecast.revenue_outcomes(frame, settings.horizon_days)
    if outcomes.empty:
        return None
    model = forecast.fit_revenue_model(outcomes, settings.horizon_days, settings.seed)

    def predict(rows: pd.DataFrame) -> dict[str, np.ndarray]:
        x = space.matrix(rows)
        return {target: fit.model.probability(x) for target, fit in fits.items()}

    return dataclasses.replace(
        model, extra_sd=forecast.time_effect(labelled, outcomes, predict, model))


def data_fingerprint(features_root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((features_root / SNAPSHOTS).rglob("*.parquet")):
        digest.update(str(path.relative_to(features_root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5, check=False)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _check_store(features_root: Path, settings: Settings) -> dict[str, Any]:
    manifest = read_manifest(features_root)
    if manifest is None:
        raise FileNotFoundError(
            f"no feature snapshots under {features_root}: run `churnlens features` first")
    built = manifest["settings"].get("horizon_days")
    if built != settings.horizon_days:
        raise ValueError(
            f"the snapshots under {features_root} were labelled with a {built}-day horizon, "
            f"not {settings.horizon_days}; rebuild them with `churnlens features "
            f"--horizon-days {settings.horizon_days}` or train with --horizon-days {built}")
    return manifest


def evaluate_target(fit: TargetFit, val: pd.DataFrame, settings: Settings,
                    truth: pd.DataFrame | None) -> dict[str, Any]:
    y = labels_of(val, LABEL_OF[fit.target])
    accounts = val["account_id"].to_numpy()
    where, noun = "the validation slice", NOUNS[fit.target]
    figures: dict[str, Any] = {
        "validation": reportable(evaluate(y, fit.validation, accounts, settings.bootstrap,
                                          settings.seed), where, noun),
        "baseline": reportable(evaluate(y, fit.baseline_validation, accounts,
                                        settings.bootstrap, settings.seed), where, noun),
        "uncalibrated": reportable(evaluate(y, fit.raw_validation), where, noun),
        "segments": evaluation.by_segment(
            val, y, fit.validation,
            evaluation.segments(val, settings.high_touch_arr, settings.mid_touch_arr),
            settings.bootstrap // 2, settings.seed),
        "calibrator": fit.model.calibrator.kind,
        "seconds": fit.seconds,
        "calibrator_validation_brier": fit.calibrators,
        "model": {"search": fit.search.table(), "num_leaves": fit.search.chosen.params[
            "num_leaves"], "trees": fit.search.chosen.rounds},
    }
    if truth is not None and settings.horizon_days == evaluation.ORACLE_HORIZON_DAYS:
        figures["oracle"] = evaluation.oracle_figures(val, y, fit.validation, truth, fit.target)
    return figures


def _gate(client: Any, settings: Settings, val: pd.DataFrame, fits: dict[str, TargetFit],
          space: FeatureSpace) -> tuple[bool, str, dict[str, Any]]:
    """Promote only if no target is worse than its champion on these validation snapshots.

    Only the models this run has are compared; a figure that cannot be computed on these
    snapshots (AUC without both outcomes) cannot show a model is good, so it blocks.

    The champion scores them from its checksummed bundle, calibrator included (LightGBM's bare
    scores would be compared uncalibrated); never from the pickled MLflow model, which would
    run whatever code the artifact store holds."""
    reasons = []
    labels = {target: labels_of(val, LABEL_OF[target]) for target in fits}
    for target, fit in fits.items():
        unknown = not_computable(evaluate(labels[target], fit.validation), "the validation slice",
                                 NOUNS[target], ("roc_auc", "brier"))
        if unknown:
            reasons.append(f"{target}: " + "; ".join(
                f"{METRIC_NAMES[k]} n/a, {why}" for k, why in unknown.items())
                + " (a run is promoted only on figures it could compute; "
                "`churnlens promote RUN_ID` promotes by hand)")
    if reasons:
        return False, "not promoted: " + "; ".join(reasons), {}
    champions = {target: tracking.champion_version(
        client, tracking.registered_name(target, settings.horizon_days)) for target in fits}
    if all(champion is None for champion in champions.values()):
        return True, "promoted: no champion yet (first run)", {}
    comparisons: dict[str, Any] = {}
    promote = True
    bundles: dict[str, Bundle] = {}
    for target, fit in fits.items():
        champion, y = champions[target], labels[target]
        if champion is None:
            reasons.append(f"{target}: no champion yet, nothing to compare with")
            continue
        try:
            if champion.run_id not in bundles:
                bundles[champion.run_id] = champion_bundle(client, settings, champion)
            bundle = bundles[champion.run_id]
            current = bundle.models[target].probability(_champion_input(val, bundle.space))
        except Exception as error:  # a champion that cannot be read or cannot score these
            promote = False         # rows cannot be compared: say why, promote nothing
            reasons.append(f"{target}: champion v{champion.version} could not be compared on "
                           f"these validation snapshots ({error}); use `churnlens promote` to "
                           "replace it by hand")
            continue
        ours, theirs = evaluate(y, fit.validation), evaluate(y, current)
        comparisons[target] = {"champion_version": champion.version,
                               "champion_run_id": champion.run_id,
                               "champion": {k: theirs[k] for k in ("roc_auc", "brier")},
                               "challenger": {k: ours[k] for k in ("roc_auc", "brier")}}
        worse = []
        if ours["roc_auc"] < theirs["roc_auc"] - settings.gate_auc_tolerance:
            worse.append(f"ROC AUC {ours['roc_auc']:.4f} < champion {theirs['roc_auc']:.4f} "
                         f"- {settings.gate_auc_tolerance}")
        if ours["brier"] > theirs["brier"] + settings.gate_brier_tolerance:
            worse.append(f"Brier {ours['brier']:.5f} > champion {theirs['brier']:.5f} "
                         f"+ {settings.gate_brier_tolerance}")
        if worse:
            promote = False
            reasons.append(f"{target}: worse than champion v{champion.version}: "
                           + "; ".join(worse))
        else:
            reasons.append(f"{target}: not worse than champion v{champion.version} (AUC "
                           f"{ours['roc_auc']:.4f} vs {theirs['roc_auc']:.4f}, Brier "
                           f"{ours['brier']:.5f} vs {theirs['brier']:.5f})")
    for target in TARGETS:
        if target in fits:
            continue
        held = tracking.champion_version(client, tracking.registered_name(
            target, settings.horizon_days))
        if held is not None:
            reasons.append(f"{target}: no model in this run, so not compared; promotion "
                           f"retires champion v{held.version}")
    verdict = "promoted" if promote else "not promoted"
    return promote, f"{verdict}: " + "; ".join(reasons), comparisons


def split_of(dates: list[date], settings: Settings, manifest: dict[str, Any] | None = None
             ) -> TimeSplit:
    """The run's slices from its labelled dates and the sizes the user gave, if any; below the
    minimum the refusal says how many dates are missing and whether the weekly grid, on the
    same history, would have enough (``manifest``: the feature store's)."""
    try:
        return choose_split(dates, fit=settings.fit_months, tuning=settings.tuning_months,
                            calibration=settings.calibration_months,
                            validation=settings.validation_months)
    except NotEnoughHistory as error:
        raise NotEnoughHistory(f"{error}{_grid_hint(manifest, settings)}") from None


def _grid_hint(manifest: dict[str, Any] | None, settings: Settings) -> str:
    """What would give more labelled dates: the weekly grid where it reaches the minimum."""
    if manifest is None or not manifest.get("history_start") or not manifest.get("history_end"):
        return ""
    built = manifest.get("settings", {})
    start = date.fromisoformat(str(manifest["history_start"]))
    end = date.fromisoformat(str(manifest["history_end"]))
    first = built.get("first_as_of")
    horizon = timedelta(days=settings.horizon_days)
    weekly = [d for d in grid_dates(start, end, "weekly",
                                    date.fromisoformat(first) if first else None)
              if d + horizon <= end]
    needed = (settings.fit_months or MIN_FIT_DATES) + sum(
        size or 1 for size in (settings.tuning_months, settings.calibration_months,
                               settings.validation_months))
    needed = max(needed, MIN_LABELLED_DATES)
    if built.get("grid", "monthly") != "weekly" and len(weekly) >= needed:
        return (f" On the weekly grid the same history ({start} to {end}) has {len(weekly)} "
                "labelled dates: rebuild the snapshots with `churnlens features --grid weekly`, "
                "then train again.")
    given = any(size is not None for size in (settings.fit_months, settings.tuning_months,
                                              settings.calibration_months,
                                              settings.validation_months))
    return (f" The history ({start} to {end}) is too short for a {settings.horizon_days}-day "
            f"horizon on either grid (weekly: {len(weekly)} labelled dates): train on a longer "
            "history, or rebuild the snapshots with a shorter --horizon-days"
            + (", or give smaller slices (--fit-months, --tuning-months, --calibration-months, "
               "--validation-months)." if given else "."))


def _champion_input(val: pd.DataFrame, space: FeatureSpace) -> pd.DataFrame:
    """The validation snapshots as the champion's model reads them; a champion trained on
    features these snapshots lack cannot be compared on them."""
    missing = [name for name in space.features if name not in val.columns]
    if missing:
        raise KeyError(f"these snapshots lack the champion's features {missing[:5]}")
    return space.matrix(val)


def champion_bundle(client: Any, settings: Settings, champion: Any) -> Bundle:
    """The bundle of a registered champion version, loaded and verified; never its pickle.

    The export under HOME/models is read when one holds the champion's run (its manifest's
    checksums are kept on this machine); otherwise the run's bundle files are fetched from the
    artifact store into a temporary folder and trusted only after their manifest matches the
    digest the registry keeps (:func:`fetch_bundle`).
    """
    exported = _exported_bundle(settings.layout.models, champion.run_id)
    if exported is not None:
        return load_bundle(exported)
    with tempfile.TemporaryDirectory() as tmp:
        return load_bundle(fetch_bundle(client, champion.run_id, [champion], Path(tmp)))


def _exported_bundle(models_root: Path, run_id: str) -> Path | None:
    """The folder under HOME/models holding ``run_id``'s export, the champion's first."""
    pointed = latest_bundle(models_root)
    folders = [pointed] if pointed is not None else []
    if models_root.is_dir():
        folders += sorted(path for path in models_root.glob("v*") if path.is_dir())
    for folder in folders:
        try:
            if json.loads((folder / MANIFEST).read_text()).get("run_id") == run_id:
                return folder
        except (OSError, json.JSONDecodeError):
            continue  # not a bundle, or a broken one: not the champion's export
    return None


def fetch_bundle(client: Any, run_id: str, versions: list[Any], into: Path) -> Path:
    """Download ``run_id``'s bundle files (no pickled model) and check their manifest against
    the digest each registered version keeps; the files themselves are checked against the
    manifest when the bundle is loaded. Versions promoted before the digest was kept carry
    none: their bundle is checked against its own manifest only."""
    folder = tracking.download_bundle(client, run_id, into)
    found = manifest_digest(folder) if (folder / MANIFEST).is_file() else None
    for version in versions:
        kept = (getattr(version, "tags", None) or {}).get(tracking.BUNDLE_DIGEST)
        if kept is not None and kept != found:
            raise BundleError(
                f"the bundle of run {run_id} in the MLflow artifact store does not match the "
                f"digest the registry keeps for {version.name} v{version.version} (expected "
                f"{kept[:12]}..., found {str(found)[:12]}...): it was changed after it was "
                "promoted. Promote a run again with `churnlens promote RUN_ID`.")
    return folder


def _peer_baselines(parts: dict[str, pd.DataFrame], settings: Settings,
                    churn_figures: dict[str, Any]) -> dict[str, Any]:
    """The RFM peers on the churn model's validation snapshots (``training/baselines.py``)."""
    prior = pd.concat([parts["fit"], parts["tuning"], parts["calibration"]])
    val = parts["validation"]
    peers = baselines.fit_peers(prior, labels_of(prior, LABEL_OF["churn"]), val,
                                labels_of(val, LABEL_OF["churn"]), settings.seed, settings.cores)
    auc = churn_figures.get("roc_auc")
    return baselines.comparison(None if auc is None or not np.isfinite(auc) else float(auc),
                                peers)


def train(settings: Settings, progress: Callable[[str], None] | None = None) -> TrainResult:
    """Fit, evaluate, log, register and gate one run; ``progress`` is called with each
    stage's name as it starts (``churnlens train`` prints them with their times)."""
    import mlflow
    from mlflow.models import infer_signature

    started = time.perf_counter()
    home = settings.layout
    if progress:
        progress("loading the snapshots")
    manifest = _check_store(home.features, settings)
    frame, features = load_snapshots(home.features)
    labelled = frame[frame["labelled"].astype(bool)].reset_index(drop=True)
    split = split_of(sorted(set(labelled["as_of"])), settings, manifest)
    if progress:
        progress("preparing the slices")
    parts = _slices(labelled, split)
    space = feature_space(pd.concat([parts["fit"], parts["tuning"]]), features)
    data_folder = Path(settings.data) if settings.data and "://" not in settings.data \
        else home.raw
    truth = evaluation.load_truth(data_folder)

    fits: dict[str, TargetFit] = {}
    absent: dict[str, str] = {}
    for target in TARGETS:
        reason = unlearnable(target, parts)
        if reason and target == "churn":
            raise ValueError(
                f"no churn model can be trained: {reason}. Slices of other sizes "
                "(--fit-months, --tuning-months, --calibration-months) or a longer history "
                "may hold both outcomes.")
        if reason:
            absent[target] = f"no {target} model: {reason}"
            continue
        if progress:
            progress(f"fitting {target}")
        fits[target] = fit_target(target, parts, space, settings)
    if progress:
        progress("fitting the churn-month hazard")
    hazard_fit = fit_hazard_model(parts, space, settings)
    if progress:
        progress("fitting the renewal-outcome model")
    renewal_fit = fit_renewal_model(labelled, space, fits, settings)
    val = parts["validation"]
    overlap = len(set(val["account_id"]) & set(pd.concat(
        [parts["fit"], parts["tuning"], parts["calibration"]])["account_id"]))

    client = tracking.connect(home, settings.mlflow_tracking_uri)
    experiment_id = tracking.ensure_experiment(client, home, settings.horizon_days)
    fingerprint = data_fingerprint(home.features)
    report: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "horizon_days": settings.horizon_days,
        "split": split.as_dict(),
        "split_sizes": {"dates": split.sizes(), "chosen": list(split.chosen),
                        "unused": len(split.unused), "summary": split.describe()},
        "snapshots": {name: len(part) for name, part in parts.items()},
        "accounts_in_validation_and_training": overlap,
        "split_note": (
            "Out of time: validation holds the latest labelled snapshot dates; leaves and "
            "early stopping were chosen on tuning (a model fitted on fit), then the model was "
            "fitted on fit + tuning + calibration and its calibrator on out-of-fold scores of "
            f"those snapshots (3 folds of accounts). {overlap} validation accounts also appear "
            "in earlier "
            "slices, as expected: accounts recur month after month."),
        "absent_models": absent,
        "features": list(features),
        "data_fingerprint": fingerprint,
        "git_commit": git_commit(),
        "tracking_uri": client.tracking_uri,
    }
    with mlflow.start_run(experiment_id=experiment_id) as run:
        run_id = run.info.run_id
        workdir = home.reports / "runs" / run_id
        workdir.mkdir(parents=True, exist_ok=True)
        for target, fit in fits.items():
            if progress:
                progress(f"evaluating {target}")
            report[target] = evaluate_target(fit, val, settings, truth)
        if progress:
            progress("fitting the RFM peers")
        report["baselines"] = _peer_baselines(parts, settings, report["churn"]["validation"])
        if progress:
            progress("evaluating the churn-month hazard")
        report["hazard"] = evaluate_hazard(hazard_fit, parts, space,
                                           fits["churn"].validation, settings)
        if progress:
            progress("checking renewal risk and 12-month revenue out of time")
        report.update(evaluate_outlook(labelled, frame, space, fits, hazard_fit, settings))
        report.setdefault("renewal", {})["served_model"] = (
            {"rows": renewal_fit.rows, "lost": renewal_fit.lost} if renewal_fit.model
            else {"skipped": renewal_fit.why_not})
        if progress:
            progress("fitting the revenue forecast")
        revenue = (fit_revenue(frame, labelled, fits, space, settings)
                   if "expansion" in fits else None)
        if progress:
            progress("fitting the cold-start model")
        cold, report["cold_start"] = coldstart.fit_cold_start(
            parts, space, settings.seed, settings.cores, fits["churn"].model,
            settings.cold_start)
        if "expansion" not in fits:
            report["revenue"] = {"skipped": "no revenue forecast without an expansion model "
                                 "(net retention needs it)"}
        elif revenue is not None:
            report["revenue"] = {"expansion_uplift": revenue.uplift(),
                                 "extra_sd": revenue.extra_sd,
                                 "outcomes": {o: len(v) for o, v in revenue.ratios.items()}}
        if progress:
            progress("reviewing the segments")
        report["segments"] = evaluation.segment_review(
            val, {t: (labels_of(val, LABEL_OF[t]), f.validation) for t, f in fits.items()},
            settings.high_touch_arr, settings.mid_touch_arr)
        if progress:
            progress("drawing the plots")
        plot_files = _plots(fits, val, parts, space, workdir, report)
        report["run_id"] = run_id
        if progress:
            progress("writing the bundle")
        bundle_dir = write_bundle(
            workdir / "bundle", version=f"run-{run_id[:8]}", space=space,
            models={t: f.model for t, f in fits.items()},
            metrics={t: report[t]["validation"] for t in fits},
            info={"run_id": run_id, "horizon_days": settings.horizon_days,
                  "absent_models": absent,
                  "renewal_rate": renewal_reference(val, space, fits, hazard_fit,
                                                    renewal_fit, settings.horizon_days),
                  "trained_at": report["created_at"], "split": split.as_dict(),
                  "data_fingerprint": fingerprint,
                  "features_settings": manifest["settings"]},
            reference=drift.reference(pd.concat([parts["fit"], parts["tuning"]]), space),
            hazard=hazard_fit.model if hazard_fit else None,
            revenue=revenue, cold_start=cold, renewal=renewal_fit.model)

        if progress:
            progress("comparing with the champion")
        promoted, reason, comparisons = _gate(client, settings, val, fits, space)
        report["promoted"], report["reason"] = promoted, reason
        report["champion_comparison"] = comparisons

        if progress:
            progress("logging to MLflow")
        mlflow.log_params(_params(settings, fits, split, features))
        mlflow.log_metrics(_flat_metrics(report))
        mlflow.log_metrics(baselines.metrics(report["baselines"]))
        beats = report["baselines"]["model_beats_best"]
        mlflow.set_tag("beats_baselines", "unknown" if beats is None else str(beats).lower())
        mlflow.set_tags({"data_fingerprint": fingerprint, "git_commit": report["git_commit"],
                         "promoted": str(promoted).lower(), "promotion_reason": reason,
                         "promotion": "automatic", "models": ",".join(fits),
                         **{f"{t}_model": why for t, why in absent.items()}})
        (workdir / "features.json").write_text(json.dumps(
            {n: {"pillar": REGISTRY[n].pillar, "unit": REGISTRY[n].unit,
                 "description": REGISTRY[n].description} for n in features}, indent=2))
        for path in plot_files:
            mlflow.log_artifact(str(path), artifact_path="plots")
        mlflow.log_artifact(str(workdir / "features.json"))
        (workdir / "segments.json").write_text(json.dumps(finite(report["segments"]),
                                                           indent=2))
        mlflow.log_artifact(str(workdir / "segments.json"))
        mlflow.log_artifacts(str(bundle_dir), artifact_path="bundle")
        example = model_input(val.head(5), space)
        versions = {}
        for target in fits:
            name = tracking.registered_name(target, settings.horizon_days)
            info = mlflow.pyfunc.log_model(
                name=f"{target}_model", python_model=CalibratedModel(target),
                artifacts={"bundle": str(bundle_dir)},
                signature=infer_signature(example, fits[target].validation[:5]),
                input_example=example, registered_model_name=name)
            versions[target] = str(info.registered_model_version)
        report["registered_versions"] = versions
        report["seconds"] = time.perf_counter() - started
        path = workdir / "report.json"
        path.write_text(json.dumps(finite(report), indent=2, default=str) + "\n")
        mlflow.log_artifact(str(path))

    exported = None
    if promoted:
        if progress:
            progress("exporting the champion")
        exported = set_champion(client, settings, run_id, versions, bundle_dir)
        report["bundle"] = str(exported)
    report = finite(report)  # JSON has no NaN: a figure that could not be computed is null
    latest = home.reports / "train.json"
    staged = latest.with_name(f".{latest.name}.tmp")  # a crash leaves the last whole report
    staged.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(staged, latest)
    (workdir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return TrainResult(run_id=run_id, report=report, report_path=workdir / "report.json",
                       promoted=promoted, reason=reason, bundle=exported)


def export_bundle(bundle_dir: Path, models_root: Path, versions: dict[str, str]) -> Path:
    """Copy a run's bundle to ``models_root/v<N>/`` (N: the churn model's registered version),
    verified first, named after the registry's versions."""
    bundle = load_bundle(bundle_dir)  # verify before anything goes live
    models_root.mkdir(parents=True, exist_ok=True)
    name = f"v{versions['churn']}"
    info = {k: v for k, v in bundle.manifest.items()
            if k not in ("format", "version", "targets", "features", "files")}
    return write_bundle(models_root / name, version=name, space=bundle.space,
                        models=bundle.models, metrics=bundle.metrics,
                        reference=bundle.reference, hazard=bundle.hazard,
                        revenue=bundle.revenue, cold_start=bundle.cold_start,
                        renewal=bundle.renewal,
                        info={**info, "registered_versions": versions})


def set_champion(client: Any, settings: Settings, run_id: str, versions: dict[str, str],
                 bundle_dir: Path) -> Path:
    """Export the run's bundle to HOME/models/v<N>/, then move the champion alias to it, its
    versions tagged with the digest of the bundle's manifest as it lies in the artifact store
    (``tracking.BUNDLE_DIGEST``), which a machine fetching the champion checks."""
    target_dir = export_bundle(bundle_dir, settings.layout.models, versions)
    digest = manifest_digest(bundle_dir)
    for target in TARGETS:
        name = tracking.registered_name(target, settings.horizon_days)
        if target in versions:
            client.set_model_version_tag(name, versions[target], tracking.BUNDLE_DIGEST, digest)
            client.set_registered_model_alias(name, tracking.CHAMPION, versions[target])
        elif tracking.champion_version(client, name) is not None:
            # the run has no such model: the last one must not stay champion beside it
            client.delete_registered_model_alias(name, tracking.CHAMPION)
    point_champion(settings.layout.models, target_dir.name)
    return target_dir


def registry_champion_versions(client: Any, settings: Settings) -> dict[str, Any] | None:
    """The model versions holding the champion alias, by target; None when there is none."""
    held = {t: tracking.champion_version(client, tracking.registered_name(
        t, settings.horizon_days)) for t in TARGETS}
    found = {t: v for t, v in held.items() if v is not None}
    if "churn" not in found:  # the churn model is always trained; expansion may be absent
        return None
    runs = {v.run_id for v in found.values()}
    if len(runs) > 1:
        raise BundleError(f"the champion aliases point at models of different runs {sorted(runs)}"
                          "; promote one run with `churnlens promote RUN_ID`")
    return found


def registry_champion(settings: Settings) -> Path | None:
    """The bundle behind MLflow's champion alias, exported under HOME/models/ if not already."""
    client = tracking.connect(settings.layout, settings.mlflow_tracking_uri)
    found = registry_champion_versions(client, settings)
    if found is None:
        return None
    versions = {t: str(v.version) for t, v in found.items()}
    folder = settings.layout.models / f"v{versions['churn']}"
    manifest = folder / MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text()).get(
            "registered_versions") == versions:
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = fetch_bundle(client, found["churn"].run_id, list(found.values()), Path(tmp))
        return export_bundle(bundle_dir, settings.layout.models, versions)


def promote(settings: Settings, run_id: str) -> dict[str, Any]:
    """Make ``run_id``'s models champion by hand, recorded as manual on the run."""
    home = settings.layout
    client = tracking.connect(home, settings.mlflow_tracking_uri)
    try:
        run = client.get_run(run_id)
    except Exception as error:
        raise LookupError(f"no MLflow run {run_id!r} in {client.tracking_uri}") from error
    found = tracking.versions_of_run(client, run_id)
    horizon = int(run.data.params.get("horizon_days", settings.horizon_days))
    scoped = settings.model_copy(update={"horizon_days": horizon})
    versions = {}
    for target in TARGETS:
        name = tracking.registered_name(target, horizon)
        if name in found:
            versions[target] = str(found[name].version)
    if "churn" not in versions:
        raise LookupError(f"run {run_id} registered no "
                          f"{tracking.registered_name('churn', horizon)} model; nothing to "
                          "promote")
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = fetch_bundle(client, run_id, [found[tracking.registered_name(t, horizon)]
                                                   for t in TARGETS], Path(tmp))
        exported = set_champion(client, scoped, run_id, versions, bundle_dir)
    reason = f"promoted by hand at {datetime.now(UTC).isoformat(timespec='seconds')}"
    client.set_tag(run_id, "promoted", "true")
    client.set_tag(run_id, "promotion", "manual")
    client.set_tag(run_id, "promotion_reason", reason)
    return {"run_id": run_id, "versions": versions, "bundle": str(exported), "reason": reason}


def _params(settings: Settings, fits: dict[str, TargetFit], split: TimeSplit,
            features: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "horizon_days": settings.horizon_days, "seed": settings.seed,
        **{f"{name}_months": size for name, size in split.sizes().items()},
        "slices_chosen": ",".join(split.chosen) or "none", "unused_months": len(split.unused),
        "features": len(features), "validation_dates": ",".join(
            d.isoformat() for d in split.validation)}
    for target, fit in fits.items():
        params[f"{target}.num_leaves"] = fit.search.chosen.params["num_leaves"]
        params[f"{target}.min_child_samples"] = fit.search.chosen.params.get("min_child_samples")
        params[f"{target}.trees"] = fit.search.chosen.rounds
        params[f"{target}.learning_rate"] = fit.search.chosen.params["learning_rate"]
        params[f"{target}.calibrator"] = fit.model.calibrator.kind
    return params


def _flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for target in TARGETS:
        if target not in report:  # no model of this target (``absent_models``)
            continue
        for section in ("validation", "baseline"):
            for key, value in report[target][section].items():
                if isinstance(value, float) and np.isfinite(value):
                    out[f"{target}.{section}.{key}"] = value
        oracle = report[target].get("oracle") or {}
        for key, value in oracle.items():
            if isinstance(value, float) and np.isfinite(value):
                out[f"{target}.oracle.{key}"] = value
    out.update(_hazard_metrics(report.get("hazard") or {}))
    out.update(_outlook_metrics(report))
    segments = report.get("segments") or {}
    out["segments.flags"] = float(len(segments.get("flags", [])))
    for target, worst in segments.get("worst_auc_gap", {}).items():
        out[f"segments.{target}.worst_auc_gap"] = worst
    return out


def _outlook_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The renewal AUC side by side and the 12-month revenue backtest, as MLflow metrics."""
    out: dict[str, float] = {}
    band = (report.get("renewal") or {}).get("renewal_91_365") or {}
    for score, figures in band.items():
        if isinstance(figures, dict):
            for key in ("roc_auc", "brier", "ece"):
                out[f"renewal_91_365.{score}.{key}"] = figures[key]
    backtest = (report.get("lifetime_value") or {}).get("backtest") or {}
    for key in ("total_error_share", "per_account_wape", "per_account_mae",
                "per_account_rmse"):
        if key in backtest:
            out[f"revenue_12m.{key}"] = backtest[key]
            out[f"revenue_12m.naive.{key}"] = backtest["naive"][key]
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def _hazard_metrics(figures: dict[str, Any]) -> dict[str, float]:
    """C-td, IBS and C by month of the hazard model and its baselines, as MLflow metrics."""
    out: dict[str, float] = {}
    named = {"hazard": figures.get("validation"), "hazard.served": figures.get("served"), **{
        f"hazard.{name}": scored for name, scored in figures.get("baselines", {}).items()}}
    for prefix, scored in named.items():
        if not scored:
            continue
        out[f"{prefix}.c_td"], out[f"{prefix}.ibs"] = scored["c_td"], scored["ibs"]
        for k, c in enumerate(scored["c_by_month"], start=1):
            out[f"{prefix}.c_month{k}"] = c
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def _plots(fits: dict[str, TargetFit], val: pd.DataFrame, parts: dict[str, pd.DataFrame],
           space: FeatureSpace, folder: Path, report: dict[str, Any]) -> list[Path]:
    files = []
    for target, fit in fits.items():
        y = labels_of(val, LABEL_OF[target])
        curves = {"LightGBM (calibrated)": (y, fit.validation),
                  "logistic baseline": (y, fit.baseline_validation)}
        files.append(plots.calibration_plot(curves, folder / f"{target}_calibration.png",
                                            f"{target}: calibration (validation)"))
        files.append(plots.gains_plot(curves, folder / f"{target}_gains.png", target))
        files.append(plots.pr_plot(curves, folder / f"{target}_pr.png",
                                   f"{target}: precision-recall (validation)"))
        sample = explain.sample_rows(space.matrix(val))
        values, _ = explain.shap_values(fit.model.booster, sample)
        files.append(plots.shap_summary_plot(values, sample, folder / f"{target}_shap.png",
                                             f"{target}: SHAP summary (validation)"))
        mean_abs = np.abs(values).mean(axis=0)
        order = np.argsort(-mean_abs, kind="stable")
        report[target]["shap_top"] = [
            {"feature": space.features[i], "mean_abs_shap": float(mean_abs[i]),
             "pillar": REGISTRY[space.features[i]].pillar} for i in order[:15]]
        out_of_sample = pd.concat([parts["calibration"], val])
        y_oos = labels_of(out_of_sample, LABEL_OF[target])
        x_oos = space.matrix(out_of_sample)
        by_month = evaluation.auc_by_month(out_of_sample, y_oos, {
            "LightGBM": models.predict_lightgbm(fit.model.booster, x_oos)})
        report[target]["auc_by_month"] = by_month.assign(
            as_of=by_month["as_of"].astype(str)).to_dict(orient="records")
        files.append(plots.auc_by_month_plot(by_month, folder / f"{target}_auc_by_month.png",
                                             f"{target}: ROC AUC by snapshot (out of sample)"))
    return files
