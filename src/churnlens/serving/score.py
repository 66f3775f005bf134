"""``churnlens score``: every active account at the latest snapshot, scored and explained.

The score table is what a CS platform imports each night and what the API answers known
accounts from: probabilities, tier, health score, segment, the top drivers as sentences, the
failing pillar, the playbook and why, the model version and the as_of of the features.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnlens.features.pipeline import read_directory
from churnlens.features.registry import PILLARS_ORDER
from churnlens.serving import explain
from churnlens.serving.changes import (
    CHANGE_DRIVERS,
    Previous,
    Side,
    change_columns,
    no_change_columns,
    previous_snapshot,
)
from churnlens.serving.coverage import coverage_columns
from churnlens.serving.improve import Targets, improvement_targets, improvements
from churnlens.serving.playbooks import Playbooks, load_playbooks
from churnlens.serving.timing import BY_MONTH, timing_columns
from churnlens.settings import Settings
from churnlens.spreadsheet import write_csv
from churnlens.training.bundle import Bundle, BundleError, latest_bundle, load_bundle
from churnlens.training.coldstart import COLD, FULL
from churnlens.training.drift import DRIFT_PSI, feature_psi, growing_features
from churnlens.training.evaluation import touch_segment
from churnlens.training.forecast import expected_expansion_arr
from churnlens.training.lifetime import SPEND_COLUMN, ValueAssumptions, bundle_outlook
from churnlens.training.matrix import load_latest_snapshot

CHUNK_ROWS = 100_000
TABLE_DRIVERS = 3
TABLE_CONTEXT = 1
"""Context features kept as columns (``context_json`` keeps ``explain.TOP_CONTEXT``)."""
TABLE_IMPROVEMENTS = 1
"""Improvements kept as columns (``improvements_json`` keeps them all)."""


@dataclass(frozen=True)
class ScoreRun:
    table: pd.DataFrame
    parquet: Path
    csv: Path
    as_of: date
    model_version: str
    seconds: float


def champion(settings: Settings) -> Bundle:
    """The champion bundle, from HOME/models/CHAMPION or MLflow's champion alias."""
    if settings.champion_source == "mlflow":
        from churnlens.training.train import registry_champion  # MLflow is slow to import

        folder = registry_champion(settings)
        where = f"no model holds the champion alias in {settings.mlflow_tracking_uri or 'MLflow'}"
    else:
        folder = latest_bundle(settings.layout.models)
        where = f"no champion model under {settings.layout.models}"
    if folder is None:
        raise BundleError(f"{where}: run `churnlens train` first")
    return load_bundle(folder)


def latest_snapshot(settings: Settings) -> tuple[pd.DataFrame, date]:
    return load_latest_snapshot(settings.layout.features)


def _facts(row: dict[str, Any], pillar_row: dict[str, float],
           without_data: frozenset[str] = frozenset(),
           drivers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What playbook rules and reasons read: the failing pillar (judged on levers: the pillar
    points given are the levers'), ``lever``, the sentence of the lever that raises the
    risk most, and ``risk_pct``, the risk the tier reads (``churn_pct`` the horizon's)."""
    seen = {p: v for p, v in pillar_row.items() if p not in without_data}
    strongest = max(seen, key=lambda p: seen[p]) if seen else None
    failing = strongest if strongest is not None and seen[strongest] > 0 else None
    raising = [d for d in drivers or () if d["points"] > 0]
    return {**row, "failing_pillar": failing,
            "lever": str(raising[0]["sentence"]).rstrip(".") if raising
            else "no lever raises it much",
            "pillar_points": f"{pillar_row.get(failing, 0.0):+.1f}" if failing else "0",
            "pillar_title": (failing or "").capitalize(),
            "churn_pct": f"{100 * row['churn_probability']:.0f}",
            "risk_pct": f"{100 * row.get('risk', row['churn_probability']):.0f}",
            "expansion_pct": "?" if row["expansion_probability"] is None
            else f"{100 * row['expansion_probability']:.0f}"}


def sort_riskiest(table: pd.DataFrame) -> pd.DataFrame:
    """Riskiest first by ``risk`` (the one a CSM sees), ties by account id: the order of the
    table, the API and the pages."""
    by = "risk" if "risk" in table else "churn_probability"
    return table.sort_values([by, "account_id"], ascending=[False, True],
                             kind="stable").reset_index(drop=True)


def run_targets(bundle: Bundle, frame: pd.DataFrame, settings: Settings) -> Targets:
    """The improvements' targets for a scoring run over ``frame``: each lever's median among
    its low-tier accounts (one probability pass, no SHAP)."""
    x = bundle.space.array(frame)
    meta = {c: frame[c].to_numpy() for c in META if c in frame}
    churn = explain.churn_probability(bundle, x, explain.new_accounts(bundle, meta, len(x)))
    outlook = outlook_columns(bundle, x, churn, np.full(len(x), np.nan), meta, settings)
    low = risk_tiers(bundle, settings, outlook["risk"], outlook["risk_basis"]) == "low"
    return improvement_targets(bundle.space.features, x, low)


def score_frame(bundle: Bundle, frame: pd.DataFrame, settings: Settings,
                playbooks: Playbooks, *, processes: int = 1,
                previous: Previous | None = None, targets: Targets | None = None
                ) -> pd.DataFrame:
    """Explained scores for snapshot rows, in chunks of ``CHUNK_ROWS``.

    With ``processes`` > 1 the chunks are shared out over worker processes, each scoring on
    one thread: LightGBM's TreeSHAP is multi-threaded already, but the sentences and playbook
    rules are Python, which one process runs on one core. The improvements' targets are taken
    once from all of ``frame`` (``run_targets``) unless given.
    """
    targets = targets if targets is not None else run_targets(bundle, frame, settings)
    spans = [range(start, min(start + CHUNK_ROWS, len(frame)))
             for start in range(0, len(frame), CHUNK_ROWS)]
    chunks = [(frame.iloc[span.start:span.stop],
               previous.take(span) if previous is not None else None) for span in spans]
    if processes > 1 and len(chunks) > 1:
        parts = _score_in_processes(bundle, chunks, settings, playbooks, processes, targets)
    else:
        parts = [_score_chunk(bundle, chunk, settings, playbooks, before, targets)
                 for chunk, before in chunks]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


_WORKER: dict[str, Any] = {}


def _start_worker(bundle_path: Path, settings: Settings, playbooks: Playbooks,
                  targets: Targets | None) -> None:
    from threadpoolctl import threadpool_limits

    # one OpenMP thread per worker process: the processes share out the cores
    _WORKER.update(limits=threadpool_limits(limits=1), bundle=load_bundle(bundle_path),
                   settings=settings, playbooks=playbooks, targets=targets)


def _score_in_worker(chunk: tuple[pd.DataFrame, Previous | None]) -> pd.DataFrame:
    return _score_chunk(_WORKER["bundle"], chunk[0], _WORKER["settings"], _WORKER["playbooks"],
                        chunk[1], _WORKER["targets"])


def _score_in_processes(bundle: Bundle, chunks: list[tuple[pd.DataFrame, Previous | None]],
                        settings: Settings, playbooks: Playbooks, processes: int,
                        targets: Targets | None = None) -> list[pd.DataFrame]:
    # spawn, not fork: the caller may be a server with threads running
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(processes, len(chunks)), mp_context=context,
                             initializer=_start_worker,
                             initargs=(bundle.path, settings, playbooks, targets)) as pool:
        return list(pool.map(_score_in_worker, chunks))


def average_rate(bundle: Bundle) -> float:
    """The churn rate the model was validated on (its validation slice's, kept in the bundle's
    metrics): the reference, where health is 50, and the tiers' base rate of the accounts whose
    risk is the horizon probability (no renewal date)."""
    return float(bundle.metrics.get("churn", {}).get("rate") or 0.05)


def renewal_rate(bundle: Bundle) -> float:
    """The reference of renewal risks, frozen with the model: the mean renewal risk it gave
    its validation slice's accounts with a renewal date (``renewal_rate`` in the manifest,
    ``training.train.renewal_reference``), as the validation churn rate is the horizon
    probability's. A bundle without it (no renewal model, or trained before churnlens kept
    it) falls back on the validation churn rate."""
    stored = bundle.manifest.get("renewal_rate")
    if isinstance(stored, int | float) and 0 < stored < 1:
        return float(stored)
    return average_rate(bundle)


def reference_of(bundle: Bundle, basis: np.ndarray) -> np.ndarray:
    """Each row's reference risk, on the scale of its ``risk``: the renewal rate where the
    risk is the renewal risk (``risk_basis`` "renewal"), the horizon rate elsewhere. A
    risk of 20% until a renewal eight months away is ordinary; over 90 days it is not."""
    return np.where(np.asarray(basis) == "renewal", renewal_rate(bundle), average_rate(bundle))


def tiers_of(bundle: Bundle, settings: Settings) -> tuple[float, float]:
    """The (high, medium) tier thresholds of the horizon probability for this model: relative
    to its base rate unless the settings fix them (``tier_rule``)."""
    return explain.tier_thresholds(settings.tier_rule, average_rate(bundle),
                                   settings.tier_high_odds, settings.tier_medium_odds,
                                   settings.tier_high, settings.tier_medium)


def risk_tiers(bundle: Bundle, settings: Settings, risk: np.ndarray, basis: np.ndarray
               ) -> np.ndarray:
    """The tier of each row's ``risk``: relative tiers against the reference of its basis
    (:func:`reference_of`), so "three times the odds of a typical account" means the same on
    both scales; absolute tiers (``tier_rule: absolute``) apply the fixed thresholds to it."""
    renewal = np.asarray(basis) == "renewal"
    far = explain.tier_thresholds(settings.tier_rule, renewal_rate(bundle),
                                  settings.tier_high_odds, settings.tier_medium_odds,
                                  settings.tier_high, settings.tier_medium)
    near = tiers_of(bundle, settings)
    return explain.tier(risk, np.where(renewal, far[0], near[0]),
                        np.where(renewal, far[1], near[1]))


def risk_health(bundle: Bundle, risk: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """The health score of each row's ``risk``, against the reference of its basis."""
    return explain.health_score(risk, reference_of(bundle, basis))


def _headline(bundle: Bundle, settings: Settings, meta: dict[str, Any],
              churn: np.ndarray, expansion: np.ndarray, new: np.ndarray,
              outlook: dict[str, np.ndarray]) -> dict[str, Any]:
    """The columns every score table starts with, explained or not. Tier and health read the
    ``risk`` of ``outlook`` (renewal risk where there is a renewal date): the one risk a CSM
    sees; the horizon probability stays for the forecast and the KPIs."""
    return {
        "account_id": np.asarray(meta["account_id"]).astype(str),
        "as_of": np.asarray(meta["as_of"]),
        "churn_probability": churn,
        "expansion_probability": expansion,
        "tier": risk_tiers(bundle, settings, outlook["risk"], outlook["risk_basis"]),
        "health_score": risk_health(bundle, outlook["risk"], outlook["risk_basis"]),
        "segment": touch_segment(pd.Series(meta["mrr"]), settings.high_touch_arr,
                                 settings.mid_touch_arr).to_numpy()
        if "mrr" in meta else np.full(len(churn), "unknown"),
        **revenue_at_risk(bundle, meta, churn, expansion),
        "churn_model": np.where(new, COLD, FULL),
    }


def revenue_at_risk(bundle: Bundle, meta: dict[str, Any], churn: np.ndarray,
                    expansion: np.ndarray) -> dict[str, np.ndarray]:
    """ARR now, the ARR the churn probability puts at risk (probability x ARR: the expected
    revenue lost over the horizon) and the expected expansion ARR (probability x the ARR an
    expansion adds on average, from the bundle's history). Both add up over a segment, a CSM's
    book or the portfolio because the probabilities are calibrated."""
    mrr = (pd.to_numeric(pd.Series(meta["mrr"]), errors="coerce").to_numpy(float)
           if "mrr" in meta else np.full(len(churn), np.nan))
    arr = 12.0 * mrr
    gained = (expected_expansion_arr(arr, expansion, bundle.revenue)
              if bundle.revenue is not None else np.full(len(churn), np.nan))
    return {"arr": arr, "arr_at_risk": churn * arr, "expected_expansion_arr": gained}


def expansion_probability(bundle: Bundle, x: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The expansion model's calibrated probability, or NaN (null in the score table) for
    every row when the champion has none: a history without expansions has nothing to learn,
    and "unknown" must not read as "will not expand"."""
    model = bundle.models.get("expansion")
    return model.probability(x) if model is not None else np.full(len(x), np.nan)


def score_probabilities(bundle: Bundle, frame: pd.DataFrame, settings: Settings
                        ) -> pd.DataFrame:
    """The score table without explanations: probabilities, tier, health score and segment.
    No SHAP, so no drivers, failing pillar or playbook; for when only the numbers are needed."""
    x = bundle.space.array(frame)
    meta = {c: frame[c].to_numpy() for c in META if c in frame}
    new = explain.new_accounts(bundle, meta, len(x))
    churn = explain.churn_probability(bundle, x, new)
    expansion = expansion_probability(bundle, x)
    outlook = outlook_columns(bundle, x, churn, expansion, meta, settings)
    return pd.DataFrame({**_headline(bundle, settings, meta, churn, expansion, new, outlook),
                         **timing_columns(bundle, x, churn, meta), **outlook,
                         "model_version": bundle.version})


def outlook_columns(bundle: Bundle, x: np.ndarray, churn: np.ndarray, expansion: np.ndarray,
                    meta: dict[str, Any], settings: Settings) -> dict[str, np.ndarray]:
    """Renewal risk, the risk a CSM sees (``risk``, ``risk_basis``), expected revenue over 12
    months and lifetime value (``training.lifetime``), with the value's basis."""
    return bundle_outlook(bundle, x, churn, expansion, meta, ValueAssumptions(
        discount_rate=settings.ltv_discount_rate, horizon_months=settings.ltv_horizon_months,
        gross_margin=settings.ltv_gross_margin)).columns()


META = ("account_id", "as_of", "mrr", "days_to_renewal", "tenure_days", SPEND_COLUMN)
"""Snapshot columns scoring reads besides the model's input: identity, segment, playbook facts,
and revenue where there is no MRR (spend)."""


@dataclass(frozen=True)
class Rows:
    """Snapshot rows as scoring reads them: the model input, the feature values as shown to a
    CSM, and the few other columns it needs. A what-if edits a copy of one account's rows
    instead of building a pandas frame per request."""

    x: np.ndarray
    values: np.ndarray
    """(rows, features) object array: each feature's value as stored."""
    meta: dict[str, np.ndarray]

    @staticmethod
    def of(bundle: Bundle, frame: pd.DataFrame) -> Rows:
        features = list(bundle.space.features)
        return Rows(x=bundle.space.array(frame),
                    values=frame[features].astype(object).to_numpy(),
                    meta={c: frame[c].to_numpy() for c in META if c in frame})

    def __len__(self) -> int:
        return len(self.x)

    def take(self, positions: list[int]) -> Rows:
        """These rows, as a copy that can be edited."""
        return Rows(x=self.x[positions], values=self.values[positions],
                    meta={c: v[positions] for c, v in self.meta.items()})


def _score_chunk(bundle: Bundle, frame: pd.DataFrame, settings: Settings,
                 playbooks: Playbooks, previous: Previous | None = None,
                 targets: Targets | None = None) -> pd.DataFrame:
    return score_rows(bundle, Rows.of(bundle, frame.reset_index(drop=True)), settings,
                      playbooks, previous, targets)


def score_rows(bundle: Bundle, rows: Rows, settings: Settings, playbooks: Playbooks,
               previous: Previous | None = None, targets: Targets | None = None
               ) -> pd.DataFrame:
    """The score table's rows for ``rows``: probabilities, explanations, playbooks, and what
    changed since ``previous`` (the same accounts at the snapshot before, row for row).

    ``drivers`` are levers only and ``context`` the rest, each with its points; the pillar
    columns sum the levers' points per pillar and ``context_points`` the context's, so together
    they add up to the gap between the account's probability and the base probability.
    Improvements need the run's ``targets`` (``score_frame`` takes them): without, none."""
    features = bundle.space.features
    new = explain.new_accounts(bundle, rows.meta, len(rows))
    churn = explain.churn_explained(bundle, rows.x, new)
    expansion = expansion_probability(bundle, rows.x)
    pillars = explain.pillar_points(features, churn.points, levers_only=True)
    roles = explain.role_points(features, churn.points)
    levers = explain.levers_of(features)
    outlook = outlook_columns(bundle, rows.x, churn.probability, expansion, rows.meta, settings)
    headline = _headline(bundle, settings, rows.meta, churn.probability, expansion, new,
                         outlook)
    tiers = headline["tier"]
    renewal, tenure = _numbers(rows, "days_to_renewal"), _numbers(rows, "tenure_days")
    plays, reasons, failing, top, around = [], [], [], [], []
    chosen = explain.top_features(churn.points, among=levers)
    chosen_context = explain.top_features(churn.points, explain.TOP_CONTEXT, among=~levers)
    seen = coverage_columns(features, rows.values, rows.meta)
    for i in range(len(rows)):
        row = {"tier": tiers[i], "churn_probability": float(churn.probability[i]),
               "risk": float(outlook["risk"][i]),
               "expansion_probability": (None if np.isnan(expansion[i])
                                         else float(expansion[i])),
               "days_to_renewal": renewal[i], "tenure_days": tenure[i]}
        shown = chosen[i][churn.points[i, chosen[i]] != 0] if new[i] else chosen[i]
        top.append(explain.drivers(features, rows.values[i], churn.points[i], shown))
        shown = (chosen_context[i][churn.points[i, chosen_context[i]] != 0] if new[i]
                 else chosen_context[i])
        around.append(explain.drivers(features, rows.values[i], churn.points[i], shown))
        facts = _facts(row, {p: float(pillars[p][i]) for p in PILLARS_ORDER},
                       frozenset(seen["pillars_without_data"][i].split(";")), top[-1])
        play, reason = playbooks.choose(facts)
        plays.append(play)
        reasons.append(reason)
        failing.append(facts["failing_pillar"])
    helps = improvements(bundle, rows.x, new, churn.probability, targets, playbooks)
    columns: dict[str, Any] = {
        **headline,
        **timing_columns(bundle, rows.x, churn.probability, rows.meta), **outlook,
        **{f"{pillar}_points": pillars[pillar] for pillar in PILLARS_ORDER},
        "lever_points": roles["lever"], "context_points": roles["context"],
        "failing_pillar": failing, "playbook": plays, "playbook_reason": reasons,
        **seen,
    }
    for k in range(TABLE_DRIVERS):
        for key, column in (("feature", f"driver_{k + 1}"), ("points", f"driver_{k + 1}_points"),
                            ("sentence", f"driver_{k + 1}_sentence")):
            columns[column] = pd.Series([d[k][key] if len(d) > k else None for d in top],
                                        dtype=object)
    columns["drivers_json"] = [json.dumps(d, default=str) for d in top]
    for k in range(TABLE_CONTEXT):
        for key, column in (("feature", f"context_{k + 1}"),
                            ("points", f"context_{k + 1}_points"),
                            ("sentence", f"context_{k + 1}_sentence")):
            columns[column] = pd.Series([d[k][key] if len(d) > k else None for d in around],
                                        dtype=object)
    columns["context_json"] = [json.dumps(d, default=str) for d in around]
    for k in range(TABLE_IMPROVEMENTS):
        for key, column in (("feature", f"improvement_{k + 1}"),
                            ("points", f"improvement_{k + 1}_points"),
                            ("playbook", f"improvement_{k + 1}_playbook"),
                            ("sentence", f"improvement_{k + 1}_sentence")):
            columns[column] = pd.Series([h[k][key] if len(h) > k else None for h in helps],
                                        dtype=object)
    columns["improvements_json"] = [json.dumps(h) for h in helps]
    columns.update(_changes(bundle, settings, rows, churn, headline["health_score"], previous,
                            new))
    columns["model_version"] = bundle.version
    return pd.DataFrame(columns)


def _changes(bundle: Bundle, settings: Settings, rows: Rows, now: explain.Explained,
             health_now: np.ndarray, previous: Previous | None, new: np.ndarray
             ) -> dict[str, Any]:
    if previous is None or not previous.present.any():
        return no_change_columns(len(rows))
    earlier = Rows.of(bundle, previous.frame)
    before = explain.churn_explained(bundle, earlier.x, new)  # both sides under one model
    then = outlook_columns(bundle, earlier.x, before.probability,
                           np.full(len(earlier), np.nan), earlier.meta, settings)
    return change_columns(
        bundle.space.features, Side(now, rows.x, rows.values, health_now),
        Side(before, earlier.x, earlier.values,
             risk_health(bundle, then["risk"], then["risk_basis"])),
        previous.present, previous.as_of)


def table_schema(explained: bool = True) -> pa.Schema:
    """The score table's columns and types, as :func:`score_rows` and
    :func:`score_probabilities` build them (Spark needs them before it scores a row)."""
    fields = [("account_id", pa.string()), ("as_of", pa.date32()),
              ("churn_probability", pa.float64()), ("expansion_probability", pa.float64()),
              ("tier", pa.string()), ("health_score", pa.float64()), ("segment", pa.string()),
              ("arr", pa.float64()), ("arr_at_risk", pa.float64()),
              ("expected_expansion_arr", pa.float64()), ("churn_model", pa.string())]
    fields += [(name, pa.float64()) for name in BY_MONTH]
    fields += [("days_to_renewal", pa.float64()), ("churn_before_renewal", pa.float64()),
               ("renewal_beyond_horizon", pa.bool_()), ("timing_summary", pa.string())]
    fields += [("renewal_risk", pa.float64()), ("risk", pa.float64()),
               ("risk_basis", pa.string()), ("expected_revenue_12m", pa.float64()),
               ("lifetime_value", pa.float64()), ("value_basis", pa.string())]
    if explained:
        fields += [(f"{pillar}_points", pa.float64()) for pillar in PILLARS_ORDER]
        fields += [("lever_points", pa.float64()), ("context_points", pa.float64())]
        fields += [("failing_pillar", pa.string()), ("playbook", pa.string()),
                   ("playbook_reason", pa.string()), ("coverage", pa.float64()),
                   ("pillars_without_data", pa.string()), ("new_account", pa.bool_())]
        for k in range(1, TABLE_DRIVERS + 1):
            fields += [(f"driver_{k}", pa.string()), (f"driver_{k}_points", pa.float64()),
                       (f"driver_{k}_sentence", pa.string())]
        fields.append(("drivers_json", pa.string()))
        for k in range(1, TABLE_CONTEXT + 1):
            fields += [(f"context_{k}", pa.string()), (f"context_{k}_points", pa.float64()),
                       (f"context_{k}_sentence", pa.string())]
        fields.append(("context_json", pa.string()))
        for k in range(1, TABLE_IMPROVEMENTS + 1):
            fields += [(f"improvement_{k}", pa.string()),
                       (f"improvement_{k}_points", pa.float64()),
                       (f"improvement_{k}_playbook", pa.string()),
                       (f"improvement_{k}_sentence", pa.string())]
        fields.append(("improvements_json", pa.string()))
        fields += [("previous_as_of", pa.date32()), ("churn_change", pa.float64()),
                   ("health_change", pa.float64()), ("change_summary", pa.string())]
        for k in range(1, CHANGE_DRIVERS + 1):
            fields += [(f"change_{k}", pa.string()), (f"change_{k}_points", pa.float64()),
                       (f"change_{k}_sentence", pa.string())]
        fields += [("change_json", pa.string()), ("change_context_json", pa.string())]
    fields.append(("model_version", pa.string()))
    return pa.schema(fields)


def _numbers(rows: Rows, column: str) -> list[float | None]:
    if column not in rows.meta:
        return [None] * len(rows)
    return [None if pd.isna(v) else float(v) for v in rows.meta[column].tolist()]


@dataclass(frozen=True)
class Drift:
    psi: dict[str, float]
    drifted: list[str]
    """Features among the churn model's ten most used whose PSI exceeds the threshold."""
    growing: tuple[str, ...] = ()
    """Features that grow with time by definition (tenure): their PSI, with the ageing taken
    out, is shown, but they never raise the flag (``training.drift``)."""

    @property
    def flag(self) -> bool | None:
        return None if not self.psi else bool(self.drifted)


def drift_state(bundle: Bundle, frame: pd.DataFrame, threshold: float = DRIFT_PSI) -> Drift:
    """How far this snapshot's features moved from the training snapshots'."""
    if bundle.reference is None:
        return Drift(psi={}, drifted=[])
    psi = feature_psi(frame, bundle.reference)
    booster = bundle.models["churn"].booster
    gains = dict(zip(booster.feature_name(), booster.feature_importance("gain"), strict=True))
    growing = growing_features(bundle.space.features)
    important = sorted((n for n in gains if n not in growing), key=lambda n: -gains[n])[:10]
    return Drift(psi=psi, drifted=[n for n in important if psi.get(n, 0.0) > threshold],
                 growing=tuple(sorted(growing)))


def write_table(table: pd.DataFrame, folder: Path, as_of: date) -> tuple[Path, Path]:
    """Parquet and CSV, each written beside its final name and renamed into place (Arrow's
    writers: pandas' CSV writer alone took longer than scoring without explanations). The CSV,
    which people open in spreadsheets, has its text cells neutralised against formulas."""
    folder.mkdir(parents=True, exist_ok=True)
    parquet, csv = folder / f"{as_of.isoformat()}.parquet", folder / f"{as_of.isoformat()}.csv"
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    for path, write in ((parquet, lambda p: pq.write_table(arrow, p)),
                        (csv, lambda p: write_csv(arrow, p))):
        tmp = path.with_name(f".{path.name}.tmp")
        write(tmp)
        os.replace(tmp, path)
    return parquet, csv


DIRECTORY_COLUMNS = ("name", "csm")
"""What the score table carries of the account directory (``churnlens features`` writes it):
who the account is and who owns it, so a CS platform's import needs no second join."""


def with_directory(table: pd.DataFrame, features_root: Path) -> pd.DataFrame:
    """``table`` with each account's name and CSM after its id; null where the directory has
    none (no directory, an account without a CSM)."""
    found = read_directory(features_root)
    directory = found.to_pandas() if found is not None else pd.DataFrame()
    out = table.drop(columns=[c for c in DIRECTORY_COLUMNS if c in table])
    ids = out["account_id"].astype(str)
    for offset, column in enumerate(DIRECTORY_COLUMNS, start=1):
        if column in directory:
            values = ids.map(pd.Series(directory[column].to_numpy(), index=directory[
                "account_id"].astype(str).to_numpy()).groupby(level=0).first())
            values = values.where(values.notna() & (values.astype(str) != ""), None)
        else:
            values = pd.Series([None] * len(out), index=out.index)
        out.insert(offset, column, values.astype(object))
    return out


def score(settings: Settings, *, explained: bool = True) -> ScoreRun:
    """Score every account of the latest snapshot and write the table atomically."""
    started = time.perf_counter()
    bundle = champion(settings)
    frame, as_of = latest_snapshot(settings)
    if explained:
        table = score_frame(bundle, frame, settings, load_playbooks(settings.playbooks),
                            processes=settings.cores,
                            previous=previous_snapshot(settings.layout.features, as_of,
                                                       frame["account_id"]))
    else:
        table = score_probabilities(bundle, frame, settings)
    table["drift_flag"] = drift_state(bundle, frame).flag
    table = sort_riskiest(with_directory(table, settings.layout.features))
    parquet, csv = write_table(table, settings.layout.scores, as_of)
    return ScoreRun(table=table, parquet=parquet, csv=csv, as_of=as_of,
                    model_version=bundle.version, seconds=time.perf_counter() - started)


def riskiest(table: pd.DataFrame, count: int = 10) -> list[dict[str, Any]]:
    columns = ["account_id", "name", "risk", "churn_probability", "tier", "health_score",
               "segment", "playbook", "driver_1_sentence"]
    present = [c for c in columns if c in table]
    return [{str(k): v for k, v in row.items()}
            for row in table.head(count)[present].to_dict(orient="records")]

