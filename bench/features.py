"""Benchmark: the full feature registry on DuckDB versus a plain pandas baseline.

Generates (or reuses) a company of about ten million usage events, then in one process:

1. validates it and builds every snapshot with the full registry on DuckDB (the product path);
2. computes ten core features over the same snapshots with plain pandas, the way a data
   scientist would write them without churnlens (load the tables, loop over snapshot dates,
   mask and group), as the baseline;
3. prints both times, the ratio, and peak memory of each (each run in its own child process,
   so one's memory does not hide in the other's).

    uv run python bench/features.py                       # 10k accounts x 36 months
    uv run python bench/features.py --accounts 100000 --memory-limit 3GB   # ~100M events
    uv run python bench/features.py --ibis-overhead       # also the build as one query, through
                                                          # Ibis and as plain SQL
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

BASELINE_FEATURES = ("active_users_7d", "active_users_30d", "active_users_90d", "events_30d",
                     "features_used_30d", "days_since_last_activity", "tickets_90d",
                     "high_urgent_tickets_90d", "mean_nps_180d", "mrr")


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _ibis_overhead(backend: Any, build: Any) -> dict[str, Any]:
    """The build as one query, through Ibis and as the SQL Ibis generates run by DuckDB
    directly: what Ibis adds. (One query: the product's build computes its per-user rollup
    first, in a query of its own, which plain SQL would then only read.)"""
    import ibis

    started = time.perf_counter()
    build(materialize=False).to_pyarrow()
    through_ibis = time.perf_counter()
    expr = build(materialize=False)
    sql = ibis.to_sql(expr, dialect="duckdb")
    compiled = time.perf_counter()
    backend._run_pre_execute_hooks(expr)  # registers the in-memory tables the SQL names
    backend.con.execute(str(sql)).fetch_arrow_table()
    ran = time.perf_counter()
    return {"ibis_compile_s": compiled - through_ibis, "plain_sql_s": ran - compiled,
            "through_ibis_s": through_ibis - started}


def run_churnlens(data: Path, memory_limit: str | None,
                  only: tuple[str, ...] | None = None, measure_ibis: bool = False
                  ) -> dict[str, Any]:
    """Validation plus the whole registry (or only ``only``), as `churnlens features` runs."""
    from dataclasses import replace

    from churnlens.engines import duckdb_backend
    from churnlens.features.snapshots import SnapshotSpec, plan, snapshot_table
    from churnlens.raw.loader import open_source
    from churnlens.raw.mapping import Mapping
    from churnlens.raw.validation import validate_history

    started = time.perf_counter()
    backend = duckdb_backend(Path(tempfile.mkdtemp()), memory_limit=memory_limit)
    history = validate_history(open_source(data, Mapping(), backend=backend),
                               now=datetime(2100, 1, 1))
    validated = time.perf_counter()
    spec = SnapshotSpec()
    snapshot_plan = plan(history.tables, spec)
    if only:
        snapshot_plan = replace(snapshot_plan, features=only)
    expr = snapshot_table(history.tables, history.backend, spec, snapshot_plan)
    table = expr.to_pyarrow()
    done = time.perf_counter()
    overhead = _ibis_overhead(backend, partial(snapshot_table, history.tables, history.backend,
                                               spec, snapshot_plan)) if measure_ibis else {}
    return {**overhead, "validate_s": validated - started, "features_s": done - validated,
            "rows": table.num_rows, "features": len(snapshot_plan.features),
            "dates": len(snapshot_plan.dates), "peak_rss_gb": _peak_rss_gb(),
            "dates_list": [d.isoformat() for d in snapshot_plan.dates]}


def run_pandas(data: Path, dates: list[str]) -> dict[str, Any]:
    """Ten core features in plain pandas, one snapshot date at a time."""
    import pandas as pd

    started = time.perf_counter()
    events = pd.read_parquet(data / "usage_events")
    tickets = pd.read_parquet(data / "tickets.parquet")
    surveys = pd.read_parquet(data / "surveys.parquet")
    subs = pd.read_parquet(data / "subscriptions.parquet")
    loaded = time.perf_counter()
    frames = []
    for text in dates:
        as_of = pd.Timestamp(text)
        held = subs[(pd.to_datetime(subs.start_date) < as_of)
                    & ~(pd.to_datetime(subs.end_date) < as_of)].set_index("account_id")
        out = pd.DataFrame(index=held.index)
        out["mrr"] = held["mrr"]
        past = events[(events.event_ts < as_of) & (events.event_ts >= as_of - timedelta(days=180))]
        for days in (7, 30, 90):
            window = past[past.event_ts >= as_of - timedelta(days=days)]
            out[f"active_users_{days}d"] = window.groupby("account_id").user_id.nunique()
            if days == 30:
                out["events_30d"] = window.groupby("account_id").size()
                out["features_used_30d"] = window.groupby("account_id").event.nunique()
        last = past.groupby("account_id").event_ts.max()
        out["days_since_last_activity"] = (as_of.normalize() - last.dt.normalize()).dt.days
        recent = tickets[(tickets.created_at < as_of)
                         & (tickets.created_at >= as_of - timedelta(days=90))]
        out["tickets_90d"] = recent.groupby("account_id").size()
        severe = recent[recent.priority.isin(["high", "urgent"])]
        out["high_urgent_tickets_90d"] = severe.groupby("account_id").size()
        answers = surveys[(surveys.responded_at < as_of)
                          & (surveys.responded_at >= as_of - timedelta(days=180))]
        out["mean_nps_180d"] = answers.groupby("account_id").score.mean()
        out["as_of"] = as_of
        frames.append(out.reset_index())
    result = pd.concat(frames)
    done = time.perf_counter()
    return {"load_s": loaded - started, "features_s": done - loaded, "total_s": done - started,
            "rows": len(result), "features": len(BASELINE_FEATURES),
            "peak_rss_gb": _peak_rss_gb()}


def _in_child(fn: Any, *args: Any) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--data", type=Path, help="Reuse an existing raw folder.")
    parser.add_argument("--memory-limit", default=None,
                        help="DuckDB memory limit, e.g. 3GB (100M events: 4.3 GB peak RSS).")
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--ibis-overhead", action="store_true",
                        help="Also run the build as one query through Ibis and as the SQL Ibis "
                        "generates, directly on DuckDB, and print what Ibis adds.")
    args = parser.parse_args()

    data = args.data
    if data is None:
        from churnlens.synth import CompanyConfig, generate_company

        data = Path(tempfile.mkdtemp(prefix="churnlens-bench-")) / "raw"
        started = time.perf_counter()
        result = generate_company(CompanyConfig(accounts=args.accounts, months=args.months,
                                                seed=1, rollouts=4), data)
        print(f"generated {result.rows['usage_events']:,} events in "
              f"{time.perf_counter() - started:.1f}s at {data}")
    events = sum(__import__("pyarrow.parquet", fromlist=["x"]).read_metadata(p).num_rows
                 for p in (data / "usage_events").glob("*.parquet"))

    ours = _in_child(run_churnlens, data, args.memory_limit, None, args.ibis_overhead)
    figures: dict[str, Any] = {"events": events, "churnlens": ours}
    print(f"\nusage events: {events:,}; snapshots: {ours['rows']:,} over {ours['dates']} dates")
    print(f"churnlens  validate {ours['validate_s']:6.1f}s   all {ours['features']} features "
          f"{ours['features_s']:6.1f}s   peak RSS {ours['peak_rss_gb']:.2f} GB")
    if args.ibis_overhead:
        print(f"ibis       the build as one query: {ours['through_ibis_s']:.1f}s through Ibis "
              f"(compiling {ours['ibis_compile_s']:.2f}s of it), {ours['plain_sql_s']:.1f}s as "
              f"the same SQL run by DuckDB directly (ratio "
              f"{ours['through_ibis_s'] / ours['plain_sql_s']:.2f})")
    if not args.skip_pandas:
        same = _in_child(run_churnlens, data, args.memory_limit, BASELINE_FEATURES)
        figures["churnlens_same_ten"] = {k: v for k, v in same.items() if k != "dates_list"}
        print(f"churnlens  the same ten features as pandas {same['features_s']:6.1f}s   "
              f"peak RSS {same['peak_rss_gb']:.2f} GB")
        base = _in_child(run_pandas, data, ours["dates_list"])
        figures["pandas"] = base
        ratio = base["features_s"] / ours["features_s"]
        per_feature = (base["features_s"] / base["features"]) / (
            ours["features_s"] / ours["features"])
        figures["ratio_time"] = ratio
        figures["ratio_per_feature"] = per_feature
        print(f"pandas     load     {base['load_s']:6.1f}s   {base['features']} features "
              f"{base['features_s']:6.1f}s   peak RSS {base['peak_rss_gb']:.2f} GB")
        same_ratio = base["features_s"] / same["features_s"]
        figures["ratio_same_ten"] = same_ratio
        print(f"speed-up: {same_ratio:.1f}x on the same ten features; {ratio:.1f}x for the "
              f"whole registry versus pandas' ten; {per_feature:.1f}x per feature")
    out = Path(__file__).parent / "results" / "features.json"
    out.parent.mkdir(exist_ok=True)
    figures["churnlens"].pop("dates_list")
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
