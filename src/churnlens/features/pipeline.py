"""``churnlens features``: plan, compute only what is missing, write, report."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from churnlens.features import lineage, store
from churnlens.features.registry import REGISTRY, Vocabulary
from churnlens.features.snapshots import LABELS, SnapshotPlan, SnapshotSpec, plan, snapshot_table
from churnlens.raw.validation import History

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureRun:
    plan: SnapshotPlan
    computed: tuple[date, ...]
    reused: tuple[date, ...]
    report: dict[str, Any]
    output: Path
    reasons: dict[date, str] = field(default_factory=dict)
    """Why each date was reused or built (``store.REUSED``, ``store.DATA_CHANGED``, ...)."""
    fingerprint_error: str | None = None
    """Why the raw rows could not be fingerprinted on this engine (then nothing is reused)."""

    @property
    def rebuilt_for_data(self) -> tuple[date, ...]:
        """Finished dates built again because rows they read changed."""
        return tuple(d for d, why in self.reasons.items() if why == store.DATA_CHANGED)


def build_features(history: History, spec: SnapshotSpec, root: Path, full: bool = False,
                   refresh_vocabulary: bool = False) -> FeatureRun:
    """Build the snapshot partitions under ``root`` that are missing, not final, or whose raw
    rows changed since they were built.

    The event vocabulary (the commonest event types, whose counts are features of their own)
    is chosen at the first build and kept by every incremental one: a day of new events that
    reordered the commonest types would otherwise rename columns under a model trained on
    them, and ``--full`` recomputes every snapshot with the same columns. A change of
    settings, or ``refresh_vocabulary`` (``--refresh-vocabulary``), chooses it again from the
    whole history."""
    stored = store.read_manifest(root)
    kept = (Vocabulary.from_json(stored.get("vocabulary"))
            if stored and not refresh_vocabulary
            and stored.get("settings") == json.loads(json.dumps(store.manifest_settings(spec)))
            else None)
    snapshot_plan = plan(history.tables, spec, vocabulary=kept)
    if not snapshot_plan.dates:
        raise ValueError(
            f"the history ({snapshot_plan.history_start} to {snapshot_plan.history_end}) is too "
            f"short for a {spec.grid} snapshot grid")
    settings = store.manifest_settings(spec)
    # the vocabulary's event types and slugs, not their counts: a new top set (or a slug
    # now bound to another event) rebuilds every snapshot, appended rows alone do not
    fp = store.fingerprint({**settings, "vocabulary": snapshot_plan.vocabulary.definition()},
                           snapshot_plan.features)
    started = time.perf_counter()
    prints, method, error = _raw_prints(history, snapshot_plan.dates, spec.horizon_days)
    fingerprint_seconds = time.perf_counter() - started
    store.recover(root)
    end = snapshot_plan.history_end
    complete = {d for d in snapshot_plan.dates
                if end is not None and d + timedelta(days=spec.horizon_days) <= end}
    reasons = store.plan_reuse(store.read_manifest(root), fp, root, snapshot_plan.dates, prints,
                               method, complete, full=full)
    keep = {d for d, why in reasons.items() if why == store.REUSED}
    todo = tuple(d for d in snapshot_plan.dates if d not in keep)
    if todo:
        expr = snapshot_table(history.tables, history.backend, spec,
                              replace(snapshot_plan, dates=todo))
        table = expr.to_pyarrow()
    else:
        table = pa.table({"as_of": pa.array([], pa.date32()),
                          "labelled": pa.array([], pa.bool_())})
    manifest = {
        "fingerprint": fp, "settings": settings, "features": list(snapshot_plan.features),
        "absent_features": snapshot_plan.absent_reason,
        "vocabulary": snapshot_plan.vocabulary.as_json(),
        "history_start": str(snapshot_plan.history_start),
        "history_end": str(snapshot_plan.history_end),
        "data_method": method,
    }
    entries = store.write_partitions(root, table, keep, snapshot_plan.dates, manifest, prints)
    write_directory(history, root)
    report = run_report(root, snapshot_plan, entries, spec)
    for entry in report["dates"]:
        entry["built"] = reasons[date.fromisoformat(entry["as_of"])]
    report["rebuilt"] = {why: sum(1 for r in reasons.values() if r == why)
                         for why in dict.fromkeys(reasons.values()) if why != store.REUSED}
    report["raw_fingerprint"] = {"method": method, "error": error,
                                 "seconds": round(fingerprint_seconds, 3)}
    return FeatureRun(plan=snapshot_plan, computed=todo, reused=tuple(sorted(keep)),
                      report=report, output=root / store.SNAPSHOTS, reasons=reasons,
                      fingerprint_error=error)


def _raw_prints(history: History, dates: tuple[date, ...], horizon_days: int,
                ) -> tuple[dict[date, dict[str, str]] | None, str | None, str | None]:
    """Each date's fingerprints of the raw rows it reads, the way they were taken, and, when
    this engine cannot take them, why (then nothing stored is reused: safe, only slower)."""
    try:
        sums = lineage.day_sums(history.tables, history.backend)
    except Exception as error:  # whatever an engine refuses, rebuilding everything is safe
        log.warning("cannot fingerprint the raw history on %s, so every snapshot is rebuilt: %s",
                    history.backend.name, error, exc_info=True)
        return None, None, f"{type(error).__name__}: {error}".splitlines()[0]
    return lineage.snapshot_prints(sums, dates, horizon_days), sums.method, None


DIRECTORY = "accounts.parquet"
"""Who each account is (id, name, CSM): not features, but what the CSM pages and the portfolio
filters show and search."""


def write_directory(history: History, root: Path) -> Path:
    accounts = history.tables["accounts"]
    columns = [c for c in ("account_id", "name", "csm") if c in accounts.columns]
    path = root / DIRECTORY
    tmp = path.with_name(f".{DIRECTORY}.tmp")
    pq.write_table(accounts.select(*columns).order_by("account_id").to_pyarrow(), tmp)
    os.replace(tmp, path)
    return path


def read_directory(root: Path) -> pa.Table | None:
    path = root / DIRECTORY
    return pq.read_table(path) if path.is_file() else None


def read_snapshots(root: Path) -> pa.Table:
    """Every stored snapshot as one Arrow table."""
    return ds.dataset(root / store.SNAPSHOTS, format="parquet").to_table()


def run_report(root: Path, snapshot_plan: SnapshotPlan, entries: list[dict[str, Any]],
               spec: SnapshotSpec) -> dict[str, Any]:
    """Snapshots per date, label rates, absent features and null rates."""
    table = read_snapshots(root)
    frame = table.to_pandas()
    labelled = frame[frame["labelled"]]
    per_date = []
    for entry in entries:
        rows = frame[frame["as_of"].astype(str) == entry["as_of"]]
        done = rows[rows["labelled"]]
        per_date.append({
            **entry,
            **{f"{label}_rate": (float(done[label].astype(float).mean()) if len(done) else None)
               for label in LABELS}})
    return {
        "snapshots": len(frame),
        "snapshot_dates": len(entries),
        "usage_events": snapshot_plan.events,
        "labelled_snapshots": len(labelled),
        "label_rates": {label: (float(labelled[label].astype(float).mean())
                                if len(labelled) else None) for label in LABELS},
        "features": len(snapshot_plan.features),
        "absent_features": snapshot_plan.absent_reason,
        "vocabulary": snapshot_plan.vocabulary.as_json(),
        "generated_features": list(snapshot_plan.generated),
        "null_rates": {name: float(frame[name].isna().mean())
                       for name in snapshot_plan.features if name in frame},
        "pillars": _count_by_pillar(snapshot_plan.features),
        "settings": store.manifest_settings(spec),
        "history": {"start": str(snapshot_plan.history_start),
                    "end": str(snapshot_plan.history_end)},
        "dates": per_date,
    }


def _count_by_pillar(names: tuple[str, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[REGISTRY[name].pillar] = counts.get(REGISTRY[name].pillar, 0) + 1
    return counts


def write_report(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path
