"""The feature build of two source trees, interleaved, and where one build's time goes.

A shared 2-core machine moves wall-clock times by a third from one run to the next, so two
versions are compared in rounds (A, B, A, B, ...) on the same raw folder, each build in a fresh
process, with its wall time, its CPU time (less moved by other work) and its peak RSS:

    uv run python bench/feature_build_ab.py --data RAW --rounds 2 . ../old-checkout
    uv run python bench/feature_build_ab.py --data RAW --profile .   # DuckDB's operators

``--profile`` runs one build with DuckDB's profiler and prints its costliest operators (CPU
seconds, rows out, what they compute). Take it on a quiet machine: under load the operators
that spill or wait read as far costlier than they are.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import json, resource, sys, tempfile, time
from datetime import datetime
from pathlib import Path

from churnlens.engines import duckdb_backend
from churnlens.features.snapshots import SnapshotSpec, plan, snapshot_table
from churnlens.raw.loader import open_source
from churnlens.raw.mapping import Mapping
from churnlens.raw.validation import validate_history


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


data, memory, profile = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
backend = duckdb_backend(Path(tempfile.mkdtemp()), memory_limit=memory)
history = validate_history(open_source(data, Mapping(), backend=backend),
                           now=datetime(2100, 1, 1))
spec = SnapshotSpec()
snapshot_plan = plan(history.tables, spec)
if profile:
    backend.con.execute("PRAGMA enable_profiling='json'")
    backend.con.execute(f"PRAGMA profiling_output='{profile}'")
cpu_before, started = cpu(), time.perf_counter()
table = snapshot_table(history.tables, history.backend, spec, snapshot_plan).to_pyarrow()
print("RESULT " + json.dumps({
    "wall_s": time.perf_counter() - started, "cpu_s": cpu() - cpu_before,
    "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
    "features": len(snapshot_plan.features), "rows": table.num_rows}))
'''


def build(tree: Path, data: Path, memory: str, profile: str = "") -> dict[str, float]:
    """One feature build with ``tree``'s source, in a process of its own."""
    import json

    done = subprocess.run([sys.executable, "-c", CHILD, str(data), memory, profile],
                          env={**os.environ, "PYTHONPATH": str(tree.resolve() / "src")},
                          capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        sys.exit(f"the build of {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[0][len("RESULT "):])  # type: ignore[no-any-return]


def operators(path: Path, top: int) -> list[tuple[float, int, str, str]]:
    """(seconds, rows, operator, detail) of the profile's costliest operators."""
    import json

    found = []
    pending = [json.loads(path.read_text())]
    while pending:
        node = pending.pop()
        found.append((float(node.get("operator_timing", 0.0)),
                      int(node.get("operator_cardinality", 0)),
                      str(node.get("operator_name") or node.get("operator_type") or ""),
                      str(node.get("extra_info", ""))[:110]))
        pending.extend(node.get("children", []))
    return sorted(found, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path, help="Checkouts whose src/ to build.")
    parser.add_argument("--data", type=Path, required=True, help="A raw folder.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--profile", action="store_true",
                        help="Profile one build of the first tree instead.")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()

    if args.profile:
        path = Path(os.environ.get("TMPDIR", "/tmp")) / "churnlens-feature-profile.json"
        figures = build(args.trees[0], args.data, args.memory_limit, str(path))
        print(f"{figures['wall_s']:.1f} s wall, {figures['cpu_s']:.1f} s CPU")
        for seconds, rows, name, detail in operators(path, args.top):
            print(f"{seconds:8.2f} s {rows:>13,} {name:16s} {detail}")
        return
    runs: dict[Path, list[dict[str, float]]] = {tree: [] for tree in args.trees}
    for round_ in range(1, args.rounds + 1):
        for tree in args.trees:
            figures = build(tree, args.data, args.memory_limit)
            runs[tree].append(figures)
            print(f"round {round_} {tree}: {figures['wall_s']:.1f} s wall, "
                  f"{figures['cpu_s']:.1f} s CPU, peak RSS {figures['peak_rss_gb']:.2f} GB, "
                  f"{figures['features']:.0f} features, {figures['rows']:,.0f} rows", flush=True)
    first = args.trees[0]
    for tree in args.trees:
        wall = statistics.median(r["wall_s"] for r in runs[tree])
        ratio = wall / statistics.median(r["wall_s"] for r in runs[first])
        print(f"{tree}: median {wall:.1f} s wall ({ratio:.2f} x {first}), "
              f"{statistics.median(r['cpu_s'] for r in runs[tree]):.1f} s CPU")


if __name__ == "__main__":
    main()
