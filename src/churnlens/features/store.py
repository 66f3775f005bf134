"""Writing snapshots: Parquet partitioned by as_of, atomic, byte-identical, incremental.

Layout under ``HOME/features``::

    snapshots/as_of=2024-03-01/part-0.parquet   one file per snapshot date
    manifest.json                               what was built, from what, with which settings

A build writes into a staging folder and swaps it in with renames, so a crash at any point
leaves the previous good output (or, mid-swap, a ``.previous`` folder the next run restores).
An incremental build reuses the partitions it can (hard links, no copy) and recomputes only new
dates and dates whose labels were still open.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SNAPSHOTS = "snapshots"
MANIFEST = "manifest.json"
PART = "part-0.parquet"


def partition_dir(root: Path, as_of: date) -> Path:
    return root / SNAPSHOTS / f"as_of={as_of.isoformat()}"


def recover(root: Path) -> None:
    """Finish or undo a swap that a crash interrupted."""
    current, previous = root / SNAPSHOTS, root / f".{SNAPSHOTS}.previous"
    if previous.exists() and not current.exists():
        previous.rename(current)
    elif previous.exists():
        shutil.rmtree(previous)
    for stale in root.glob(f".{SNAPSHOTS}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)


def read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def fingerprint(settings: dict[str, Any], features: tuple[str, ...]) -> str:
    """Identifies what the partitions mean: settings, the feature list and the pipeline's code.

    Any change to a feature, a source relation or a label rule changes the code of this
    package, so partitions built by an older definition are never reused.
    """
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update("\n".join(features).encode())
    for module in sorted(Path(__file__).parent.glob("*.py")):
        h.update(module.read_bytes())
    return h.hexdigest()[:16]


def reusable_dates(manifest: dict[str, Any] | None, fp: str, root: Path) -> set[date]:
    """Dates whose stored partition is still right: same definitions and labels complete."""
    if manifest is None or manifest.get("fingerprint") != fp:
        return set()
    keep = set()
    for entry in manifest.get("partitions", []):
        as_of = date.fromisoformat(entry["as_of"])
        if entry.get("labelled") and (partition_dir(root, as_of) / PART).is_file():
            keep.add(as_of)
    return keep


def write_partitions(root: Path, table: pa.Table, keep: set[date], dates: tuple[date, ...],
                     manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Write the new partitions, link the kept ones, swap the result in atomically."""
    root.mkdir(parents=True, exist_ok=True)
    recover(root)
    staging = root / f".{SNAPSHOTS}.staging-{os.getpid()}"
    staging.mkdir(parents=True)
    entries: list[dict[str, Any]] = []
    as_of_column = table.column("as_of")
    for as_of in dates:
        target = staging / f"as_of={as_of.isoformat()}"
        target.mkdir()
        if as_of in keep:
            os.link(partition_dir(root, as_of) / PART, target / PART)
            part = pq.read_metadata(target / PART)
            rows = part.num_rows
            labelled = True
        else:
            mask = pa.compute.equal(as_of_column, pa.scalar(as_of, pa.date32()))
            rows_table = table.filter(mask)
            pq.write_table(rows_table, target / PART, compression="zstd")
            rows = rows_table.num_rows
            labelled = bool(rows == 0 or pa.compute.all(rows_table.column("labelled")).as_py())
        entries.append({"as_of": as_of.isoformat(), "rows": rows, "labelled": labelled,
                        "reused": as_of in keep})
    current, previous = root / SNAPSHOTS, root / f".{SNAPSHOTS}.previous"
    if current.exists():
        current.rename(previous)
    staging.rename(current)
    if previous.exists():
        shutil.rmtree(previous)
    manifest = {**manifest, "partitions": entries}
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    tmp.replace(root / MANIFEST)
    return entries


def manifest_settings(spec: Any) -> dict[str, Any]:
    data = asdict(spec)
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in data.items()}
