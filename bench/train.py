"""Benchmark: both models, calibration and the SHAP summary on about a million snapshots.

Generates (or reuses, with --home) a company, builds its snapshots, then times in one process
what `churnlens train` does per target: the leaves/trees search (on a sample of accounts),
the final fit on every fit + tuning snapshot, calibration, the logistic baseline, and the SHAP
summary. It then prints the size/quality trade-off of the searched candidates: total leaves,
validation AUC and Brier, and SHAP time per thousand accounts (what serving pays per score).

    uv run python bench/train.py                      # ~32k accounts x 36 months, ~1M snapshots
    uv run python bench/train.py --home churnlens-data
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _prepare(home: Path | None, accounts: int, months: int) -> Path:
    if home is not None and (home / "features" / "manifest.json").is_file():
        return home
    home = home or Path(tempfile.mkdtemp(prefix="churnlens-bench-train-"))
    for args in (["synth", "--accounts", str(accounts), "--months", str(months), "--seed", "2",
                  "--rollouts", "2"], ["features"]):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "churnlens.cli", "--home", str(home), *args],
                       check=True, stdout=subprocess.DEVNULL)
        print(f"{args[0]}: {time.perf_counter() - started:.1f}s")
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--accounts", type=int, default=32_000)
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args()
    home = _prepare(args.home, args.accounts, args.months)

    import pandas as pd

    from churnlens.settings import load_settings
    from churnlens.training import explain, models
    from churnlens.training.bundle import LABEL_OF, TARGETS
    from churnlens.training.matrix import feature_space, labels_of, load_snapshots
    from churnlens.training.metrics import brier, roc_auc
    from churnlens.training.train import _slices, fit_target, split_of

    settings = load_settings(home=home)
    started = time.perf_counter()
    frame, features = load_snapshots(settings.layout.features)
    labelled = frame[frame["labelled"].astype(bool)].reset_index(drop=True)
    split = split_of(sorted(set(labelled["as_of"])), settings)
    parts = _slices(labelled, split)
    space = feature_space(pd.concat([parts["fit"], parts["tuning"]]), features)
    loaded = time.perf_counter() - started
    figures: dict[str, Any] = {"snapshots": len(labelled), "features": len(features),
                               "load_s": loaded, "targets": {}}
    print(f"{len(labelled):,} labelled snapshots x {len(features)} features "
          f"(loaded in {loaded:.1f}s)")
    total = loaded
    for target in TARGETS:
        fit = fit_target(target, parts, space, settings)
        x_val = space.matrix(parts["validation"])
        clock = time.perf_counter()
        explain.importance(fit.model.booster, explain.sample_rows(x_val))
        shap_s = time.perf_counter() - clock
        seconds = {**fit.seconds, "shap_summary": shap_s}
        total += sum(seconds.values())
        y_val = labels_of(parts["validation"], LABEL_OF[target])
        tradeoff = []
        sample_x, sample_y = models.tuning_sample(parts["fit"], space.matrix(parts["fit"]),
                                                  labels_of(parts["fit"], LABEL_OF[target]),
                                                  settings.seed)
        for candidate in fit.search.candidates:
            booster = models.fit_lightgbm(sample_x, sample_y, candidate)
            p = models.predict_lightgbm(booster, x_val)
            rows = x_val.head(2000)
            clock = time.perf_counter()
            explain.shap_values(booster, rows)
            per_thousand = (time.perf_counter() - clock) / len(rows) * 1000
            tradeoff.append({"num_leaves": candidate.params["num_leaves"],
                             "trees": candidate.rounds, "leaves_total": candidate.leaves_total,
                             "validation_auc": roc_auc(y_val, p),
                             "validation_brier_uncalibrated": brier(y_val, p),
                             "shap_ms_per_1000": per_thousand * 1000,
                             "chosen": candidate is fit.search.chosen})
        figures["targets"][target] = {"seconds": seconds, "tradeoff": tradeoff,
                                      "validation_auc": roc_auc(y_val, fit.validation)}
        print(f"\n{target}: " + ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items())
              + f"  (validation AUC {roc_auc(y_val, fit.validation):.4f})")
        print(f"  {'leaves':>6} {'trees':>6} {'leaves x trees':>14} {'val AUC':>8} "
              f"{'Brier':>8} {'SHAP ms/1000':>13}")
        for row in tradeoff:
            print(f"  {row['num_leaves']:>6} {row['trees']:>6} {row['leaves_total']:>14} "
                  f"{row['validation_auc']:>8.4f} {row['validation_brier_uncalibrated']:>8.5f} "
                  f"{row['shap_ms_per_1000']:>13.1f}" + ("  <- chosen" if row["chosen"] else ""))
    figures["total_s"] = total
    figures["peak_rss_gb"] = _peak_rss_gb()
    print(f"\nboth targets, search + fit + calibration + baseline + SHAP summary: {total:.1f}s "
          f"(target < 120 s); peak RSS {figures['peak_rss_gb']:.2f} GB")
    out = Path(__file__).parent / "results" / "train.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2, default=float) + "\n")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
