"""Training's rules on tiny in-memory slices: which targets can be learnt, and what the
gate refuses to promote on."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pandas as pd

from churnlens.cli import console, print_train_report
from churnlens.settings import Settings
from churnlens.training import tracking
from churnlens.training.matrix import FeatureSpace
from churnlens.training.metrics import evaluate, reportable
from churnlens.training.train import _gate, unlearnable


def _slice(as_of: date, churned: list[bool], expanded: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"account_id": [f"a{i}" for i in range(len(churned))],
                         "as_of": as_of, "churned": churned, "expanded": expanded})


def test_a_target_without_positives_in_a_slice_cannot_be_learnt_and_says_where() -> None:
    both = [True, False, False]
    parts = {"fit": _slice(date(2024, 1, 1), both, [False] * 3),
             "tuning": _slice(date(2024, 2, 1), both, [True, False, False]),
             "calibration": _slice(date(2024, 3, 1), both, [True, False, False])}
    assert unlearnable("churn", parts) is None
    assert unlearnable("expansion", parts) == (
        "the fit slice (1 snapshot dates, 2024-01-01 to 2024-01-01, 3 snapshots) has no "
        "expanding accounts")
    parts["calibration"] = _slice(date(2024, 3, 1), [True] * 3, [True, False, False])
    assert "the calibration slice" in str(unlearnable("churn", parts))
    assert "has only churned accounts" in str(unlearnable("churn", parts))


def test_the_gate_does_not_promote_on_an_auc_it_could_not_compute(tmp_path: Path) -> None:
    """No churner among the validation snapshots: no AUC, so no automatic promotion, even
    without a champion to beat; the expansion model, computable, is not named."""
    settings = Settings(home=tmp_path)
    client = tracking.connect(settings.layout, None)
    val = _slice(date(2024, 4, 1), [False] * 4, [True, False, True, False])
    fits = {"churn": SimpleNamespace(validation=np.array([0.1, 0.2, 0.3, 0.4])),
            "expansion": SimpleNamespace(validation=np.array([0.6, 0.2, 0.7, 0.1]))}
    promote, reason, _ = _gate(client, settings, val, cast(Any, fits),
                               FeatureSpace(features=(), categories={}))
    assert not promote
    assert reason.startswith("not promoted: churn: ROC AUC n/a, the validation slice has no "
                             "churned accounts")
    assert "expansion" not in reason


def test_the_printed_table_says_n_a_and_why_never_nan() -> None:
    y, p = np.zeros(30, dtype=np.int8), np.linspace(0.01, 0.3, 30)
    figures = reportable(evaluate(y, p), "the validation slice", "churned accounts")
    report = {"split": {"validation": ["2024-04-01"]}, "promoted": False, "reason": "r",
              "split_sizes": {"summary": "6 labelled snapshot dates, 2024-01-01 to "
                                         "2024-06-01: fit 3 (chosen)"},
              "absent_models": {"expansion": "no expansion model: the fit slice has no "
                                             "expanding accounts"},
              "churn": {"calibrator": "platt", "validation": figures, "baseline": figures}}
    with console.capture() as captured:
        print_train_report(report)
    text = captured.get()
    assert "nan" not in text.lower()
    assert "churn AUC: n/a, the validation slice has no churned accounts" in text
    assert "Slices: 6 labelled snapshot dates" in text
    assert "no expansion model: the fit slice has no expanding accounts" in text
