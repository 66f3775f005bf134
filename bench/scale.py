"""Benchmark: the same feature build on DuckDB and on Spark in local mode, side by side.

Generates (or reuses) a company of about ten million usage events and, each in its own child
process, validates it and builds every snapshot with the full registry: once on embedded
DuckDB, once on Spark ``local[*]`` through the same Ibis expressions. Prints both times, the
ratio, and the largest difference between the two outputs (there should be none beyond
float rounding).

Spark will be slower on one machine: it pays for a JVM, task scheduling and shuffles that
only earn their keep once the history is spread over many machines. The figure tells a
user where that line is.

    uv run python bench/scale.py                      # 10k accounts x 36 months
    uv run python bench/scale.py --accounts 2000      # a quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from features import _in_child, _peak_rss_gb  # bench/features.py


def build(data: Path, engine: str, out: Path) -> dict[str, Any]:
    """Validation plus the whole registry on ``engine``, written to ``out`` as Parquet."""
    import pyarrow.parquet as pq

    from churnlens.engines import duckdb_backend, spark_backend
    from churnlens.features.snapshots import SnapshotSpec, plan, snapshot_table
    from churnlens.raw.loader import open_source
    from churnlens.raw.mapping import Mapping
    from churnlens.raw.validation import validate_history
    from churnlens.settings import Settings

    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix=f"churnlens-{engine}-"))
    backend = (duckdb_backend(scratch) if engine == "duckdb"
               else spark_backend(Settings(home=scratch)))
    opened = time.perf_counter()
    history = validate_history(open_source(data, Mapping(), backend=backend),
                               now=datetime(2100, 1, 1))
    validated = time.perf_counter()
    spec = SnapshotSpec()
    snapshot_plan = plan(history.tables, spec)
    table = snapshot_table(history.tables, history.backend, spec, snapshot_plan).to_pyarrow()
    done = time.perf_counter()
    pq.write_table(table, out)
    return {"engine": engine, "start_s": opened - started, "validate_s": validated - opened,
            "features_s": done - validated, "total_s": done - started, "rows": table.num_rows,
            "features": len(snapshot_plan.features), "dates": len(snapshot_plan.dates),
            "python_peak_rss_gb": _peak_rss_gb()}


def build_or_fail(data: Path, engine: str, out: Path) -> dict[str, Any]:
    """:func:`build`, with a failure reported as text (engine errors do not pickle)."""
    try:
        return build(data, engine, out)
    except Exception as error:
        return {"engine": engine, "error": f"{type(error).__name__}: {str(error)[:2000]}"}


def largest_difference(left: Path, right: Path) -> float:
    """The largest relative difference over every numeric cell of two snapshot tables."""
    import numpy as np
    import pandas as pd

    a = pd.read_parquet(left).sort_values(["as_of", "account_id"]).reset_index(drop=True)
    b = pd.read_parquet(right).sort_values(["as_of", "account_id"]).reset_index(drop=True)
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return float("inf")
    worst = 0.0
    for column in a.columns:
        if a[column].dtype.kind in "fiu":
            x, y = a[column].to_numpy(float), b[column].to_numpy(float)
            both = ~(np.isnan(x) | np.isnan(y))
            if (np.isnan(x) != np.isnan(y)).any():
                return float("inf")
            scale = np.maximum(np.abs(x[both]), 1e-300)
            worst = max(worst, float(np.max(np.abs(x[both] - y[both]) / scale, initial=0.0)))
        elif not (a[column].isna() & b[column].isna() | (a[column] == b[column])).all():
            return float("inf")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--data", type=Path, help="Reuse an existing raw folder.")
    args = parser.parse_args()

    data = args.data
    if data is None:
        from churnlens.synth import CompanyConfig, generate_company

        data = Path(tempfile.mkdtemp(prefix="churnlens-bench-")) / "raw"
        result = generate_company(CompanyConfig(accounts=args.accounts, months=args.months,
                                                seed=1, rollouts=4), data)
        print(f"generated {result.rows['usage_events']:,} events at {data}")
    events = sum(__import__("pyarrow.parquet", fromlist=["x"]).read_metadata(p).num_rows
                 for p in (data / "usage_events").glob("*.parquet"))
    outputs = Path(tempfile.mkdtemp(prefix="churnlens-scale-"))
    runs = [_in_child(build_or_fail, data, engine, outputs / f"{engine}.parquet")
            for engine in ("duckdb", "spark")]
    for run in runs:
        if "error" in run:
            raise SystemExit(f"{run['engine']} failed: {run['error']}")
    print(f"\nusage events: {events:,}; snapshots: {runs[0]['rows']:,} over "
          f"{runs[0]['dates']} dates, {runs[0]['features']} features")
    print(f"{'engine':8} {'start':>8} {'validate':>9} {'features':>9} {'total':>8}")
    for run in runs:
        print(f"{run['engine']:8} {run['start_s']:7.1f}s {run['validate_s']:8.1f}s "
              f"{run['features_s']:8.1f}s {run['total_s']:7.1f}s")
    ratio = runs[1]["total_s"] / runs[0]["total_s"]
    difference = largest_difference(outputs / "duckdb.parquet", outputs / "spark.parquet")
    print(f"Spark local / DuckDB: {ratio:.1f}x the time on this machine; largest relative "
          f"difference between the two outputs: {difference:.2e}")
    figures = {"events": events, "runs": runs, "spark_over_duckdb": ratio,
               "largest_relative_difference": difference}
    out = Path(__file__).parent / "results" / "scale.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
