"""Writing snapshots: Parquet partitioned by as_of, atomic, byte-identical, incremental.

Layout under ``HOME/features``::

    snapshots/as_of=2024-03-01/part-0.parquet   one file per snapshot date
    snapshots/.manifest.json                    what was built, from what, with which settings
    manifest.json                               a copy of it, for people and older readers

``snapshots`` is a symbolic link to the build it names (``.snapshots-<build>/``). A build
writes a new folder, partitions and manifest together, and swaps it in by replacing the link:
one rename, so a reader or a crash at any point sees the previous build or the new one, whole,
never a mix and never nothing. Builds the link no longer names are removed by the next build.
An incremental build reuses the partitions it can (hard links, no copy) and recomputes only new
dates, dates whose labels were still open and dates whose raw rows changed: each partition's
manifest entry holds the fingerprints of the rows its features and its labels read
(``lineage.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
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
    """Remove what crashed or superseded builds left; turn an older layout's folder into a build.

    Before builds were swapped by a link, ``snapshots`` was a folder swapped by two renames, so
    a crash between them left only ``.snapshots.previous``.
    """
    current, previous = root / SNAPSHOTS, root / f".{SNAPSHOTS}.previous"
    if previous.is_dir() and not current.exists():
        previous.rename(current)
    if current.is_dir() and not current.is_symlink():
        build = root / f".{SNAPSHOTS}-{_build_id()}"
        current.rename(build)
        legacy = root / MANIFEST
        if legacy.is_file() and not (build / f".{MANIFEST}").exists():
            shutil.copyfile(legacy, build / f".{MANIFEST}")
        _point(root, build)
    live = os.readlink(current) if current.is_symlink() else None
    for stale in [*root.glob(f".{SNAPSHOTS}-*"), *root.glob(f".{SNAPSHOTS}.*")]:
        if stale.name != live:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def _build_id() -> str:
    return f"{time.time_ns()}-{os.getpid()}"


def _point(root: Path, build: Path) -> None:
    """Make ``snapshots`` name ``build``, atomically (a new link renamed over the old one)."""
    link = root / f".{SNAPSHOTS}.link-{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(build.name, link)
    os.replace(link, root / SNAPSHOTS)


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of the live build (read through the link, so it matches the partitions)."""
    for path in (root / SNAPSHOTS / f".{MANIFEST}", root / MANIFEST):
        if path.is_file():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
    return None


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


REUSED = "reused"
NEW = "new"
OPEN = "open labels"
DATA_CHANGED = "raw data changed"
DEFINITIONS_CHANGED = "settings or code changed"
ENGINE_CHANGED = "engine changed"
UNVERIFIED = "raw data not fingerprinted"
FULL = "--full"
"""Why a date's partition was reused or built, in the order they are checked."""


def plan_reuse(manifest: dict[str, Any] | None, fp: str, root: Path, dates: tuple[date, ...],
               prints: dict[date, dict[str, str]] | None, method: str | None,
               complete: set[date], full: bool = False) -> dict[date, str]:
    """For each date, ``REUSED`` when its stored partition is still right, else why not.

    Still right: same definitions (``fp``), labels complete then and now (``complete``: the
    dates whose horizon ends inside the history), and the rows its features and labels read
    unchanged, fingerprinted the same way. Without fingerprints (``prints`` None) nothing
    stored can be vouched for, so everything is built.
    """
    if full:
        return dict.fromkeys(dates, FULL)
    if prints is None:
        return dict.fromkeys(dates, UNVERIFIED)
    if manifest is None:
        return dict.fromkeys(dates, NEW)
    if manifest.get("fingerprint") != fp:
        return dict.fromkeys(dates, DEFINITIONS_CHANGED)
    if manifest.get("data_method") != method:
        return dict.fromkeys(dates, ENGINE_CHANGED)
    stored = {date.fromisoformat(e["as_of"]): e for e in manifest.get("partitions", [])}
    reasons = {}
    for as_of in dates:
        entry = stored.get(as_of)
        if entry is None or not (partition_dir(root, as_of) / PART).is_file():
            reasons[as_of] = NEW
        elif not entry.get("labelled") or as_of not in complete:
            reasons[as_of] = OPEN
        elif entry.get("data") != prints[as_of]:
            reasons[as_of] = DATA_CHANGED
        else:
            reasons[as_of] = REUSED
    return reasons


def write_partitions(root: Path, table: pa.Table, keep: set[date], dates: tuple[date, ...],
                     manifest: dict[str, Any],
                     prints: dict[date, dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """Write the new partitions, link the kept ones, swap the result in atomically.

    ``prints``: each date's fingerprints of the raw rows it read, kept in its entry.
    """
    root.mkdir(parents=True, exist_ok=True)
    recover(root)
    staging = root / f".{SNAPSHOTS}-{_build_id()}"
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
                        "reused": as_of in keep,
                        "data": None if prints is None else prints[as_of]})
    text = json.dumps({**manifest, "partitions": entries}, indent=2, default=str) + "\n"
    (staging / f".{MANIFEST}").write_text(text)
    _point(root, staging)
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(text)
    tmp.replace(root / MANIFEST)
    recover(root)
    return entries


def manifest_settings(spec: Any) -> dict[str, Any]:
    data = asdict(spec)
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in data.items()}
