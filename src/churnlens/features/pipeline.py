"""``churnlens features``: plan, compute only what is missing, write, report."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from churnlens.features import store
from churnlens.features.registry import REGISTRY
from churnlens.features.snapshots import LABELS, SnapshotPlan, SnapshotSpec, plan, snapshot_table
from churnlens.raw.validation import History


@dataclass(frozen=True)
class FeatureRun:
    plan: SnapshotPlan
    computed: tuple[date, ...]
    reused: tuple[date, ...]
    report: dict[str, Any]
    output: Path


def build_features(history: History, spec: SnapshotSpec, root: Path, full: bool = False,
                   ) -> FeatureRun:
    """Build the snapshot partitions under ``root`` that are missing or not final."""
    snapshot_plan = plan(history.tables, spec)
    if not snapshot_plan.dates:
        raise ValueError(
            f"the history ({snapshot_plan.history_start} to {snapshot_plan.history_end}) is too "
            f"short for a {spec.grid} snapshot grid")
    settings = store.manifest_settings(spec)
    # the vocabulary's event types and slugs, not their counts: a new top set (or a slug
    # now bound to another event) rebuilds every snapshot, appended rows alone do not
    fp = store.fingerprint({**settings, "vocabulary": snapshot_plan.vocabulary.definition()},
                           snapshot_plan.features)
    store.recover(root)
    keep = set() if full else store.reusable_dates(store.read_manifest(root), fp, root)
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
    }
    entries = store.write_partitions(root, table, keep, snapshot_plan.dates, manifest)
    write_directory(history, root)
    report = run_report(root, snapshot_plan, entries, spec)
    return FeatureRun(plan=snapshot_plan, computed=todo, reused=tuple(sorted(keep)),
                      report=report, output=root / store.SNAPSHOTS)


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
