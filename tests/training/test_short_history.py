"""A short history without a single price rise, end to end: ``churnlens train`` chooses its
slices from the 7 labelled dates a 10-month company has, trains the churn model alone, and
the expansion model is absent from the report, MLflow, the bundle and the score table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from churnlens.training.bundle import load_bundle
from conftest import FAST_TRAIN, churnlens

pytestmark = pytest.mark.e2e


def flatten_prices(raw: Path) -> None:
    """No subscription ever costs more than the account's previous one: no expansions."""
    path = raw / "subscriptions.parquet"
    subscriptions = pd.read_parquet(path).sort_values(["account_id", "start_date"],
                                                      kind="stable")
    subscriptions["mrr"] = subscriptions.groupby("account_id")["mrr"].cummin()
    subscriptions.sort_index().to_parquet(path, index=False)


def test_nine_months_without_expansions_train_a_churn_model_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    churnlens(home, "synth", "--accounts", "150", "--months", "10", "--seed", "3",
              "--rollouts", "2")
    flatten_prices(home / "raw")
    churnlens(home, "features")
    out = churnlens(home, "train", env=FAST_TRAIN).stdout
    assert "7 labelled snapshot dates" in out
    assert "fit 3 (chosen) | tuning 1 (chosen) | calibration 1 (chosen) | validation 2" in out
    assert "no expansion model: the fit slice" in out and "has no expanding accounts" in out
    assert "nan" not in out.lower().replace("nanoseconds", "")

    report = json.loads((home / "reports" / "train.json").read_text())
    assert report["split_sizes"]["dates"] == {"fit": 3, "tuning": 1, "calibration": 1,
                                              "validation": 2}
    assert "expansion" not in report and set(report["absent_models"]) == {"expansion"}
    assert report["registered_versions"] == {"churn": "1"}
    assert report["promoted"], report["reason"]

    bundle = load_bundle(home / "models" / "v1")
    assert set(bundle.models) == {"churn"}
    assert "expansion" in bundle.manifest["absent_models"]

    churnlens(home, "score", "--top", "0")
    table = pq.read_table(next((home / "scores").glob("*.parquet")))
    assert table.column("expansion_probability").null_count == table.num_rows > 0
    assert table.column("churn_probability").null_count == 0
