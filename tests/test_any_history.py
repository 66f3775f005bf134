"""Any contract-valid history runs end to end, or is refused in words: never a library's crash.

Hypothesis draws small companies from one generated history, with tables dropped (no
subscriptions, tickets or surveys), optional columns emptied or made constant, one plan, ids
written as float-looking numbers, no expansions, and short histories, then runs every command a
user would (validate, features, train, score, kpis, forecast) in this process, exactly as the
command line does. Each must succeed (exit 0) or refuse in one line (exit 2); exit 1 is the
command line's verdict for an error raised inside a library or one no command expects, which is
what this test exists to catch.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import churnlens

OPTIONAL_COLUMNS = {"accounts": ("industry", "region", "csm"),
                    "usage_events": ("quantity",), "tickets": ("category", "csat"),
                    "surveys": ("comment",)}
COMMANDS = (("validate",), ("features",), ("train",), ("score", "--top", "0"), ("kpis",),
            ("forecast",))


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """A small generated company, read once: every example is a change of it."""
    home = tmp_path_factory.mktemp("source")
    churnlens(home, "synth", "--accounts", "90", "--months", "14", "--seed", "5",
              "--rollouts", "1")
    raw = home / "raw"
    return {name: pd.read_parquet(raw / (name if name == "usage_events" else f"{name}.parquet"))
            for name in ("accounts", "subscriptions", "usage_events", "tickets", "surveys")}


@st.composite
def changes(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "dropped": draw(st.sets(st.sampled_from(["subscriptions", "tickets", "surveys"]))),
        "emptied": draw(st.sets(st.sampled_from(
            [(t, c) for t, cs in OPTIONAL_COLUMNS.items() for c in cs]))),
        "constant": draw(st.sets(st.sampled_from([("accounts", "industry"),
                                                  ("accounts", "region"),
                                                  ("usage_events", "quantity")]))),
        "one_plan": draw(st.booleans()),
        "float_ids": draw(st.booleans()),
        "no_expansion": draw(st.booleans()),
        "months": draw(st.sampled_from([7, 10, 14])),
    }


def _changed(company: dict[str, pd.DataFrame], change: dict[str, Any]) -> dict[str, pd.DataFrame]:
    tables = {name: frame.copy() for name, frame in company.items()
              if name not in change["dropped"]}
    start = tables["usage_events"]["event_ts"].min()
    end = start + pd.DateOffset(months=change["months"])
    tables["usage_events"] = tables["usage_events"][tables["usage_events"]["event_ts"] < end]
    for table, column in change["emptied"]:
        if table in tables:
            tables[table][column] = None
    for table, column in change["constant"]:
        tables[table][column] = 1.0 if column == "quantity" else "same"
    if "subscriptions" in tables:
        subs = tables["subscriptions"]
        subs = subs[pd.to_datetime(subs["start_date"]) < end]
        if change["one_plan"]:
            subs = subs.assign(plan="standard")
        if change["no_expansion"]:
            subs = subs.assign(mrr=subs.groupby("account_id")["mrr"].transform("min"))
        tables["subscriptions"] = subs
    if change["float_ids"]:
        numbers = {a: float(12000 + i) for i, a in enumerate(tables["accounts"]["account_id"])}
        for frame in tables.values():
            frame["account_id"] = frame["account_id"].map(numbers)
    return tables


def _run(home: Path, *args: str) -> tuple[int, str]:
    """One command in this process, as `churnlens` runs it; (exit code, what it printed)."""
    from churnlens.cli import app

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            app(["--home", str(home), *args], prog_name="churnlens")
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return code, out.getvalue()


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(change=changes())
def test_any_valid_history_runs_or_is_refused_in_words(
        company: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory,
        change: dict[str, Any]) -> None:
    home = tmp_path_factory.mktemp("any")
    raw = home / "raw"
    raw.mkdir()
    for name, frame in _changed(company, change).items():
        frame.to_parquet(raw / f"{name}.parquet", index=False)
    inactivity = "subscriptions" in change["dropped"]
    (home / "churnlens.yaml").write_text(
        ("churn_definition: inactivity\n" if inactivity else "") + "bootstrap: 0\n")
    outcomes = []
    for command in COMMANDS:
        code, printed = _run(home, *command)
        outcomes.append((command[0], code))
        assert code in (0, 2), (f"`churnlens {' '.join(command)}` crashed on {change}:\n"
                                f"{printed[-3000:]}")
        assert "Traceback" not in printed and not re.search(r"\bnan\b", printed.lower()), (
            command, printed)
        if code == 2:
            assert printed.strip(), f"{command} refused without a word"
    shutil.rmtree(home, ignore_errors=True)
    # the first two steps never need more than two tables and a few months of events
    assert dict(outcomes)["validate"] == 0 and dict(outcomes)["features"] == 0, outcomes

