"""Benchmark: generating a synthetic company, then validating its raw history in DuckDB.

Why this exists: churnlens claims that synth writes month by month (memory bounded by one month
of events) and that validation runs in the engine, so a hundred million events never pass through
pandas. This script puts numbers on both claims:

1. ``generate_company`` throughput (usage events/s and rows/s of the five tables) and peak RSS;
2. ``load_history`` (all five tables validated in DuckDB via Ibis) throughput and peak RSS;
3. the same validation restricted to ``usage_events`` (plus ``accounts``, which it references),
   against a plain pandas baseline that reads ``usage_events`` with pyarrow and applies the same
   per-row rules to that one table.

Every phase runs in a fresh interpreter (``spawn``), and reads its own ``ru_maxrss`` at the end,
so one phase's allocations (pyarrow pools, DuckDB buffers) never inflate another's peak.

Usage::

    uv run python bench/synth_validate.py       # 10k accounts x 36 months, ~10M events
    uv run python bench/synth_validate.py --accounts 100000 --synth-only --out /tmp/cl100k
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path
from typing import Any

NOW = datetime(2030, 1, 1)
"""Reference time for 'in the future' checks: after every generated timestamp, so no row fails."""

RESULTS_DIR = Path(__file__).resolve().parent / "results"
EVENTS_ONLY = ("accounts", "usage_events")
"""Tables of the restricted validation: usage_events needs accounts for its reference check."""

BYTES_PER_ACCOUNT_MONTH = 400
"""Rough on-disk size of the generated Parquet per account and month (measured at 1k x 36)."""


# --------------------------------------------------------------------------- measurement helpers


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def folder_bytes(folder: Path) -> int:
    """Total size of the files under ``folder``, to report what the generated data weighs."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_isolated(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run one phase in a freshly spawned interpreter so that its peak RSS is its own.

    A forked child would inherit the parent's pages and a reused worker would carry the previous
    phase's high-water mark; a new ``spawn`` process per phase avoids both.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run_repeated(repeat: int, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """The median of ``repeat`` isolated runs, since one run on a small machine is noisy.

    The figures are the median run's (by time), except the peak RSS, which is the worst of all
    runs; every run's time is kept under ``runs_seconds``.
    """
    runs = sorted((run_isolated(fn, *args) for _ in range(repeat)), key=lambda r: r["seconds"])
    median = dict(runs[(len(runs) - 1) // 2])
    median["runs_seconds"] = [r["seconds"] for r in runs]
    median["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in runs)
    return median


def month_printer(started: float, months: int) -> Callable[[int, int], None]:
    """A progress callback that reports every sixth of the run, so long runs show life."""
    step = max(1, months // 6)

    def report(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            print(f"  synth: month {done}/{total} after {time.perf_counter() - started:.1f} s",
                  file=sys.stderr, flush=True)

    return report


# --------------------------------------------------------------------------- phases (children)


def synth_phase(out: str, accounts: int, months: int, seed: int, rollouts: int) -> dict[str, Any]:
    """Generate the company under ``out``; timed from the call, after the imports."""
    from churnlens.synth import CompanyConfig, generate_company

    config = CompanyConfig(accounts=accounts, months=months, seed=seed, rollouts=rollouts)
    start_rss = peak_rss_bytes()
    started = time.perf_counter()
    result = generate_company(config, Path(out), progress=month_printer(started, months))
    seconds = time.perf_counter() - started
    peak = peak_rss_bytes()
    rows = dict(result.rows)
    truth_rows = rows.pop("truth", 0)  # the oracle's file, not one of the five history tables
    return {"seconds": seconds, "rows": rows, "truth_rows": truth_rows,
            "start_rss_bytes": start_rss, "peak_rss_bytes": peak,
            "disk_bytes": folder_bytes(Path(out))}


def validate_phase(data: str, home: str, required: tuple[str, ...] | None) -> dict[str, Any]:
    """Validate the history at ``data`` through the public entry point, as `churnlens validate`.

    ``required=None`` validates every table found; a folder holding only some tables plus
    ``required`` naming them is how the validation is restricted to those tables. The time
    covers everything ``load_history`` does: opening the files, the rule counts, the report,
    and the pandera guard that re-checks the clean tables.
    """
    from churnlens.raw.history import load_history
    from churnlens.settings import load_settings

    settings = load_settings(home=Path(home), data=data, now=NOW)
    start_rss = peak_rss_bytes()
    started = time.perf_counter()
    history = load_history(settings, required=required)
    seconds = time.perf_counter() - started
    peak = peak_rss_bytes()
    tables = {name: r for name, r in history.report.tables.items() if not r.absent}
    return {"seconds": seconds, "rows": {name: r.rows_in for name, r in tables.items()},
            "rows_quarantined": sum(r.rows_quarantined for r in tables.values()),
            "start_rss_bytes": start_rss, "peak_rss_bytes": peak}


def pandas_phase(data: str) -> dict[str, Any]:
    """The naive alternative: usage_events into pandas (pyarrow reader), rules as masks.

    The rules are those the contract gives usage_events: no nulls in any column, a finite and
    non-negative quantity, no timestamp after ``NOW``, and an account_id present in accounts.
    """
    import numpy as np
    import pandas as pd

    start_rss = peak_rss_bytes()
    started = time.perf_counter()
    events = pd.read_parquet(Path(data) / "usage_events", engine="pyarrow")
    known = pd.read_parquet(Path(data) / "accounts.parquet", engine="pyarrow",
                            columns=["account_id"])["account_id"]
    read_seconds = time.perf_counter() - started

    quantity = events["quantity"]
    flags = {f"null_value:{column}": events[column].isna() for column in events.columns}
    flags["out_of_range:quantity_not_finite"] = quantity.notna() & ~np.isfinite(quantity)
    flags["out_of_range:quantity_negative"] = quantity < 0
    flags["future_timestamp:event_ts"] = events["event_ts"] > pd.Timestamp(NOW)
    flags["unknown_account:account_id"] = (events["account_id"].notna()
                                           & ~events["account_id"].isin(known))
    bad = np.logical_or.reduce([flag.to_numpy(dtype=bool) for flag in flags.values()])
    counts = {name: int(flag.sum()) for name, flag in flags.items()}
    rows_bad = int(bad.sum())
    seconds = time.perf_counter() - started
    peak = peak_rss_bytes()
    return {"seconds": seconds, "read_seconds": read_seconds,
            "check_seconds": seconds - read_seconds, "rows": {"usage_events": len(events)},
            "rows_quarantined": rows_bad, "rule_counts": counts,
            "start_rss_bytes": start_rss, "peak_rss_bytes": peak}


# --------------------------------------------------------------------------- results


@dataclass
class Phase:
    """One timed phase, with the figures derived from it."""

    name: str
    label: str
    seconds: float
    rows: dict[str, int]
    peak_rss_bytes: int
    start_rss_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def events(self) -> int:
        return self.rows.get("usage_events", 0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(total_rows=self.total_rows, rows_per_s=self.total_rows / self.seconds,
                    events_per_s=self.events / self.seconds)
        return data


def make_phase(name: str, label: str, raw: dict[str, Any]) -> Phase:
    """A :class:`Phase` from a child's raw figures; the rest of the dict becomes ``extra``."""
    return Phase(name=name, label=label, seconds=raw.pop("seconds"), rows=raw.pop("rows"),
                 peak_rss_bytes=raw.pop("peak_rss_bytes"),
                 start_rss_bytes=raw.pop("start_rss_bytes"), extra=raw)


def environment() -> dict[str, Any]:
    """What the figures depend on besides the code: cores, memory, library versions."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    versions = {name: metadata.version(name)
                for name in ("duckdb", "ibis-framework", "pyarrow", "pandas", "numpy")}
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "memory_bytes": pages, "versions": versions}


def gib(n: float) -> str:
    """A byte count for people: MiB below one GiB, GiB above."""
    return f"{n / 2**20:.0f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def print_report(config: dict[str, Any], phases: list[Phase],
                 comparisons: dict[str, float]) -> None:
    """A table of every phase, then the comparisons, via rich."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)  # wide even when piped to a file
    table = Table(title=(f"churnlens synth + validate: {config['accounts']:,} accounts x "
                         f"{config['months']} months, rollouts={config['rollouts']}"))
    for column in ("phase", "time (s)", "rows", "rows/s", "events/s", "peak RSS", "RSS at start"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for p in phases:
        table.add_row(p.label, f"{p.seconds:,.1f}", f"{p.total_rows:,}",
                      f"{p.total_rows / p.seconds:,.0f}",
                      f"{p.events / p.seconds:,.0f}" if p.events else "-",
                      gib(p.peak_rss_bytes), gib(p.start_rss_bytes))
    console.print(table)
    for p in phases:
        details = ", ".join(f"{name}={count:,}" for name, count in p.rows.items())
        console.print(f"[bold]{p.name}[/bold] rows: {details}")
        if "disk_bytes" in p.extra:
            console.print(f"  on disk: {gib(p.extra['disk_bytes'])} (with truth.parquet, "
                          f"{p.extra['truth_rows']:,} oracle rows not counted above)")
        if "rows_quarantined" in p.extra:
            console.print(f"  rows flagged bad: {p.extra['rows_quarantined']:,}")
        if len(p.extra.get("runs_seconds", [])) > 1:
            runs = ", ".join(f"{t:.1f}" for t in p.extra["runs_seconds"])
            console.print(f"  median of runs taking {runs} s; peak RSS is the worst run's")
        if "read_seconds" in p.extra:
            console.print(f"  read {p.extra['read_seconds']:.1f} s + checks "
                          f"{p.extra['check_seconds']:.1f} s")
    for label, ratio in comparisons.items():
        console.print(f"{label}: [bold]{ratio:.2f}x[/bold]")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=36,
                        help="history length; 10k accounts x 36 months gives ~10M usage events")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rollouts", type=int, default=32,
                        help="oracle rollouts per account and month (CompanyConfig default)")
    parser.add_argument("--out", type=Path, default=None,
                        help="working folder (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--synth-only", action="store_true",
                        help="only time generation (for sizes too large to validate quickly)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each validation phase (median reported; synth runs once)")
    parser.add_argument("--json", type=Path, default=None,
                        help="results file (default bench/results/synth_validate.json, or "
                             "synth_validate_synth_only.json with --synth-only)")
    return parser.parse_args(argv)


def check_disk(folder: Path, accounts: int, months: int) -> None:
    """Refuse to start when the data would clearly not fit, rather than fail mid-run."""
    estimate = accounts * months * BYTES_PER_ACCOUNT_MONTH
    free = shutil.disk_usage(folder).free
    print(f"estimated data size {gib(estimate)}, free at {folder}: {gib(free)}", file=sys.stderr)
    if free < 2 * estimate:
        raise SystemExit(f"not enough free disk under {folder} for ~{gib(estimate)} of data")


def events_only_folder(raw: Path, folder: Path) -> Path:
    """A folder linking only accounts and usage_events, so load_history validates just those."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "accounts.parquet").symlink_to(raw / "accounts.parquet")
    (folder / "usage_events").symlink_to(raw / "usage_events", target_is_directory=True)
    return folder


def run(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Every phase in its own process; returns the JSON-ready results."""
    raw = out / "raw"
    config = {"accounts": args.accounts, "months": args.months, "seed": args.seed,
              "rollouts": args.rollouts, "repeat": args.repeat,
              "synth_only": args.synth_only, "now": NOW.isoformat()}
    print(f"generating into {raw}", file=sys.stderr)
    phases = [make_phase("synth", "synth (generate_company)", run_isolated(
        synth_phase, str(raw), args.accounts, args.months, args.seed, args.rollouts))]
    comparisons: dict[str, float] = {}
    if not args.synth_only:
        print("validating all tables", file=sys.stderr)
        full = make_phase("validate_all", "validate all 5 tables (DuckDB)",
                          run_repeated(args.repeat, validate_phase, str(raw),
                                       str(out / "home-all"), None))
        print("validating usage_events (+accounts)", file=sys.stderr)
        restricted_data = events_only_folder(raw, out / "events-only")
        restricted = make_phase(
            "validate_events", "validate usage_events+accounts (DuckDB)",
            run_repeated(args.repeat, validate_phase, str(restricted_data),
                         str(out / "home-events"), EVENTS_ONLY))
        print("pandas baseline on usage_events", file=sys.stderr)
        baseline = make_phase("pandas_events", "pandas baseline, usage_events only",
                              run_repeated(args.repeat, pandas_phase, str(raw)))
        phases += [full, restricted, baseline]
        comparisons = {
            "time: DuckDB load_history on usage_events+accounts / pandas on usage_events "
            "(>1: DuckDB slower)": restricted.seconds / baseline.seconds,
            "time: DuckDB load_history on ALL 5 tables / pandas on usage_events ONLY "
            "(>1: DuckDB slower)": full.seconds / baseline.seconds,
            "peak RSS: DuckDB usage_events+accounts / pandas usage_events":
                restricted.peak_rss_bytes / baseline.peak_rss_bytes,
            "peak RSS: DuckDB all 5 tables / pandas usage_events only":
                full.peak_rss_bytes / baseline.peak_rss_bytes,
        }
    print_report(config, phases, comparisons)
    return {"config": config, "environment": environment(), "timestamp": datetime.now().isoformat(),
            "phases": [p.to_dict() for p in phases], "comparisons": comparisons}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    made_temp = args.out is None
    out = Path(tempfile.mkdtemp(prefix="churnlens-bench-")) if made_temp else args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        check_disk(out, args.accounts, args.months)
        results = run(args, out)
    finally:
        if args.keep:
            print(f"data kept under {out}", file=sys.stderr)
        elif made_temp:
            shutil.rmtree(out, ignore_errors=True)
        else:  # only what this script created; the folder may hold other things
            for name in ("raw", "raw.tmp", "home-all", "events-only", "home-events"):
                shutil.rmtree(out / name, ignore_errors=True)
    name = "synth_validate_synth_only.json" if args.synth_only else "synth_validate.json"
    target = args.json or RESULTS_DIR / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
