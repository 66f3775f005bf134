"""What `churnlens train` prints on a narrow terminal: its stages as they finish, and result
tables whose cells are whole."""

from __future__ import annotations

import re

import pytest
from homes import TRAIN_OUTPUT, trained_home

pytestmark = pytest.mark.e2e


def test_train_prints_its_stages_and_cuts_no_cell_at_60_columns(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The trained home of the serving tests was trained at COLUMNS=60: before, the command
    printed nothing until the end, and its table read "LightGBM+…"."""
    output = (trained_home(tmp_path_factory).parent / TRAIN_OUTPUT).read_text()
    assert "…" not in output, output
    for stage in ("loading the snapshots", "fitting churn", "evaluating churn",
                  "fitting the RFM peers", "drawing the plots", "logging to MLflow"):
        assert re.search(rf"done {stage} \((\d+\.\d s|\d+ min \d\d s)\)", output), stage
    assert re.search(r"^Training took ", output, re.MULTILINE)
    assert re.search(r"LightGBM\+(platt|isotonic|identity)", output)  # the cell, whole
