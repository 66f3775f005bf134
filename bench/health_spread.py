"""Benchmark: does the health score spread, do drivers read as levers, what do improvements cost?

Scores the latest snapshot of a trained home with explanations (``score_frame``, as
``churnlens score`` does) and prints:

- the health score's spread: accounts at exactly 0 and exactly 100 (target: at most 2% each),
  distinct values in the riskiest decile (target: at least 15), accounts whose risk moved by a
  percentage point or more while their health "held" (target: none), and the same figures for
  the former linear map (0 at twice the reference rate) for comparison;
- how often the top driver is context (none: drivers are levers), the commonest first
  driver, context and failing pillar, and the playbooks;
- improvements: accounts with at least one, and their cost per 1,000 accounts (targets and
  one model call per lever, timed apart from the rest of scoring).

    uv run python bench/health_spread.py --home churnlens-data          # a trained home
    uv run python bench/health_spread.py --accounts 2000 --months 30 --seed 21   # builds one
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _build(home: Path, accounts: int, months: int, seed: int) -> None:
    for args in (("synth", "--accounts", str(accounts), "--months", str(months), "--seed",
                  str(seed)), ("features",), ("train",)):
        subprocess.run([sys.executable, "-m", "churnlens.cli", "--home", str(home), *args],
                       check=True, env={**os.environ, "CHURNLENS_BOOTSTRAP": "0"})


def _old_health(churn: np.ndarray, reference: float) -> np.ndarray:
    """The map churnlens used before: linear, 0 at twice the reference rate."""
    return np.rint(100.0 * (1.0 - np.clip(churn / (2.0 * reference), 0.0, 1.0)))


def _spread(health: pd.Series, churn: pd.Series) -> dict[str, float]:
    riskiest = health[churn >= churn.quantile(0.9)]
    return {"at 0 (%)": 100.0 * float((health == 0).mean()),
            "at 100 (%)": 100.0 * float((health == 100).mean()),
            "riskiest decile: distinct values": float(riskiest.nunique()),
            "riskiest decile: lowest": float(riskiest.min()),
            "riskiest decile: highest": float(riskiest.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a home with features and a champion")
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--months", type=int, default=30)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()

    from churnlens.features.registry import REGISTRY, load_all
    from churnlens.serving import explain
    from churnlens.serving import score as scoring
    from churnlens.serving.changes import previous_snapshot
    from churnlens.serving.improve import improvements
    from churnlens.serving.playbooks import load_playbooks
    from churnlens.settings import load_settings

    home = args.home
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="health-spread-")) / "home"
        print(f"building a company of {args.accounts} accounts, {args.months} months, seed "
              f"{args.seed} in {home}")
        _build(home, args.accounts, args.months, args.seed)
    settings = load_settings(home=home)
    bundle = scoring.champion(settings)
    frame, as_of = scoring.latest_snapshot(settings)
    frame = frame.reset_index(drop=True)
    playbooks = load_playbooks(settings.playbooks)
    previous = previous_snapshot(settings.layout.features, as_of, frame["account_id"])
    started = time.perf_counter()
    table = scoring.score_frame(bundle, frame, settings, playbooks, previous=previous)
    scored_in = time.perf_counter() - started

    # improvements alone: the run's targets, then one model call per lever
    rows = scoring.Rows.of(bundle, frame)
    new = explain.new_accounts(bundle, rows.meta, len(rows))
    churn_now = explain.churn_probability(bundle, rows.x, new)
    started = time.perf_counter()
    targets = scoring.run_targets(bundle, frame, settings)
    helped = improvements(bundle, rows.x, new, churn_now, targets, playbooks)
    improved_in = time.perf_counter() - started

    reference = scoring.average_rate(bundle)
    churn, health = table["churn_probability"], table["health_score"]
    print(f"\n{len(table)} accounts scored at {as_of} by model {bundle.version}; reference "
          f"risk (validation churn rate) {reference:.2%}; explained in {scored_in:.1f} s")
    print("\nhealth score          now      former linear map")
    old = _spread(pd.Series(_old_health(churn.to_numpy(), reference)), churn)
    for key, value in _spread(health, churn).items():
        print(f"  {key:34s} {value:8.1f} {old[key]:8.1f}")
    moved = table["churn_change"].abs() >= 1.0
    held = int((moved & (table["health_change"] == 0)).sum())
    print(f"  risk moved >= 1 point, health held: {held} of {int(moved.sum())}")

    load_all()
    context_first = int(table["driver_1"].dropna().map(lambda n: not REGISTRY[n].is_lever)
                        .sum())
    print(f"\ntop driver is context: {context_first} of {int(table['driver_1'].notna().sum())}")
    for column in ("driver_1", "context_1", "failing_pillar", "playbook"):
        counts = table[column].value_counts(dropna=False).head(5)
        print(f"{column}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    with_one = sum(1 for h in helped if h)
    high = (table["tier"] == "high").to_numpy()
    high_helped = int(table.loc[high, "improvement_1"].notna().sum())
    print(f"\nimprovements: {with_one} of {len(helped)} accounts have at least one; "
          f"{high_helped} of {int(high.sum())} high-risk accounts")
    print(f"  cost: {improved_in:.2f} s for {len(frame)} accounts = "
          f"{1000 * improved_in / max(len(frame), 1):.2f} s per 1,000 accounts "
          f"({len(targets.values)} levers with a target, from {targets.accounts} low-tier "
          "accounts)")
    first = table[table["improvement_1"].notna()].head(3)
    for sentence, play in zip(first["improvement_1_sentence"], first["improvement_1_playbook"],
                              strict=True):
        print(f"  {sentence} [{play}]")


if __name__ == "__main__":
    main()
