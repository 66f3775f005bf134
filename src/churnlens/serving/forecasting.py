"""``churnlens forecast``: next quarter's GRR and NRR for the portfolio and each segment, and
the backtest that says how far to trust them.

The forward forecast reads the champion's probabilities for the accounts of the latest
snapshot (the same numbers as the score table and the API); the backtest refits the
champion's model shape at past quarter starts (``training.forecast.backtest``).
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from churnlens.serving.score import champion, latest_snapshot, score_probabilities
from churnlens.serving.state import revenue_of
from churnlens.settings import Settings
from churnlens.training.bundle import BundleError
from churnlens.training.evaluation import touch_segment
from churnlens.training.forecast import Refit, backtest, refit_params
from churnlens.training.matrix import load_snapshots

REPORT = "forecast.json"


class NoRevenue(ValueError):
    """The history holds no ARR to forecast: retraining cannot help, only subscriptions can."""


def report_path(settings: Settings) -> Path:
    return settings.layout.reports / REPORT


def run_forecast(settings: Settings, quarters: int = 12) -> dict[str, Any]:
    """The forward forecast and the backtest, written to HOME/reports/forecast.json."""
    bundle = champion(settings)
    snapshot, as_of = latest_snapshot(settings)
    if "mrr" not in snapshot or not (pd.to_numeric(snapshot["mrr"], errors="coerce") > 0).any():
        raise NoRevenue(
            f"no ARR to forecast: the snapshots of {as_of} carry no MRR (no subscriptions "
            "table in the history); GRR and NRR need subscriptions with MRR")
    if bundle.revenue is None:
        raise BundleError(f"model {bundle.version} has no revenue model (trained before "
                          "churnlens forecast existed, or on snapshots without ARR a horizon "
                          "apart): retrain it with `churnlens train`")
    ranking = score_probabilities(bundle, snapshot, settings)
    ahead: dict[str, Any] = {"portfolio": revenue_of(ranking, bundle.revenue)}
    for segment, rows in ranking.groupby("segment"):
        ahead[str(segment)] = revenue_of(rows, bundle.revenue)

    frame, _ = load_snapshots(settings.layout.features)
    segments = pd.Series(touch_segment(pd.to_numeric(frame["mrr"], errors="coerce"),
                                       settings.high_touch_arr, settings.mid_touch_arr
                                       ).to_numpy(), index=frame.index)
    threads = settings.cores
    refit = Refit(matrix=bundle.space.matrix,
                  params={target: refit_params(model.booster, settings.seed, threads)
                          for target, model in bundle.models.items()})
    checked = backtest(frame, refit, bundle.revenue.horizon_days, quarters=quarters,
                       segments=segments, seed=settings.seed)
    report = {"as_of": as_of.isoformat(), "model_version": bundle.version,
              "forecast": ahead, "backtest": checked}
    path = report_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=_plain))
    os.replace(tmp, path)
    return report


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else str(value)


def read_report(settings: Settings) -> dict[str, Any] | None:
    """The last ``churnlens forecast`` report, if any (the model page shows its backtest)."""
    path = report_path(settings)
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
