"""Hostile raw tables through the real loader and validator: a clear error or a counted row.

Every generated case ends one of two ways. Either the load stops with a churnlens error whose
message names the table (and the file or column at fault), or it goes through and, for every
table, the rows written equal the rows loaded plus the rows quarantined. Any other exception, or
a row that vanishes, fails the test.
"""

from __future__ import annotations

import csv
import io
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnlens.raw.contract import CONTRACT
from churnlens.raw.loader import SourceError, open_source
from churnlens.raw.mapping import Mapping
from churnlens.raw.validation import ContractError, History, validate_history
from conftest import NOW, churnlens, tiny_tables, write_tables

TABLES = tuple(CONTRACT)
FUZZ = settings(max_examples=20, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _fresh(root: Path, name: str = "raw") -> Path:
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def _load(folder: Path, written: dict[str, int]) -> History | SourceError | ContractError:
    """Load ``folder`` leniently and check the outcome: a named error or every row counted."""
    try:
        history = validate_history(open_source(folder, Mapping()), now=NOW,
                                   quarantine_dir=folder / "quarantine")
    except (SourceError, ContractError) as error:
        return error
    for table, rows in written.items():
        report = history.report.tables[table]
        assert report.rows_in == rows, (table, report)
        assert report.rows_loaded + report.rows_quarantined == rows, (table, report)
        assert history.tables[table].count().execute() == report.rows_loaded, table
        if report.rows_quarantined:
            assert report.quarantine_file is not None
            assert pq.read_metadata(report.quarantine_file).num_rows == report.rows_quarantined
        assert sum(issue.rows for issue in report.issues) >= report.rows_quarantined, table
    return history


def _written(tables: dict[str, list[dict[str, object]]]) -> dict[str, int]:
    return {name: len(rows) for name, rows in tables.items()}


def _assert_names(error: Exception, *parts: str) -> None:
    for part in parts:
        assert part in str(error), (part, str(error))


# --------------------------------------------------------------------------- wrong types, nulls

HOSTILE_COLUMNS: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "text": (pa.string(), st.one_of(
        st.sampled_from(["", " ", "twelve", "NaN", "-inf", "1e999", "2023-13-45", "null",
                         "9999-12-31 23:59:59", "0001-01-01", "monthly", "urgent", "a1",
                         "\u0000", "\ufeffa1", "é", "\U0001f600", "x" * 500]),
        st.text(max_size=12))),
    "int": (pa.int64(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    "float": (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    "bool": (pa.bool_(), st.booleans()),
    "timestamp": (pa.timestamp("us"), st.datetimes(min_value=datetime(1, 1, 1),
                                                   max_value=datetime(9999, 12, 31))),
    "date": (pa.date32(), st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))),
    "binary": (pa.binary(), st.binary(max_size=8)),
    "list": (pa.list_(pa.int64()), st.lists(st.integers(-5, 5), max_size=3)),
    "null": (pa.null(), st.none()),
}


@st.composite
def hostile_parquet(draw: st.DrawFn) -> tuple[str, dict[str, list[dict[str, object]]],
                                               dict[str, pa.Array], list[str]]:
    """The tiny company with one table's columns retyped, nulled, dropped or added to."""
    tables = tiny_tables()
    name = draw(st.sampled_from(TABLES))
    rows = tables[name]
    extra_rows = draw(st.integers(0, 3))
    rows.extend(dict(rows[i % len(rows)]) for i in range(extra_rows))
    columns = list(rows[0])
    hostile = draw(st.lists(st.sampled_from(columns), min_size=1, max_size=3, unique=True))
    replaced: dict[str, pa.Array] = {}
    for column in hostile:
        kind = draw(st.sampled_from(sorted(HOSTILE_COLUMNS)))
        dtype, values = HOSTILE_COLUMNS[kind]
        cells = draw(st.lists(st.one_of(st.none(), values), min_size=len(rows),
                              max_size=len(rows)))
        replaced[column] = pa.array(cells, type=dtype)
    dropped = draw(st.lists(st.sampled_from(columns), max_size=1))
    if draw(st.booleans()):
        replaced["unexpected_column"] = pa.array([None] * len(rows), type=pa.string())
    return name, tables, replaced, dropped


def _write_hostile(folder: Path, tables: dict[str, list[dict[str, object]]], name: str,
                   replaced: dict[str, pa.Array], dropped: list[str]) -> None:
    write_tables(folder, {k: v for k, v in tables.items() if k != name})
    write_tables(folder, {name: tables[name]})
    table = pq.read_table(folder / f"{name}.parquet")
    for column, values in replaced.items():
        if column in table.column_names:
            table = table.set_column(table.column_names.index(column), column, values)
        else:
            table = table.append_column(column, values)
    table = table.drop_columns([c for c in dropped if c not in replaced])
    pq.write_table(table, folder / f"{name}.parquet")


@FUZZ
@given(case=hostile_parquet())
def test_wrong_types_nulls_and_odd_columns_are_counted_or_named(
        tmp_path: Path, case: tuple[str, dict[str, list[dict[str, object]]],
                                    dict[str, pa.Array], list[str]]) -> None:
    name, tables, replaced, dropped = case
    folder = _fresh(tmp_path)
    _write_hostile(folder, tables, name, replaced, dropped)
    outcome = _load(folder, _written(tables))
    contract = CONTRACT[name]
    missing = [c for c in dropped if c not in replaced and contract.column(c).required]
    if missing:
        assert isinstance(outcome, ContractError), outcome
        _assert_names(outcome, name, *missing)
    elif isinstance(outcome, Exception):
        pytest.fail(f"a loadable table was refused: {outcome}")
    else:
        assert "unexpected_column" not in outcome.tables[name].columns
        if "unexpected_column" in replaced:
            assert "unexpected_column" in outcome.report.tables[name].ignored_columns


@pytest.mark.parametrize("table", TABLES)
def test_a_table_of_nulls_everywhere_is_quarantined_row_by_row(tmp_path: Path,
                                                                table: str) -> None:
    tables = tiny_tables()
    tables[table] = [dict.fromkeys(row) for row in tables[table]]
    folder = write_tables(tmp_path / "raw", tables, fmt="csv")
    outcome = _load(folder, _written(tables))
    assert isinstance(outcome, History), outcome
    report = outcome.report.tables[table]
    assert (report.rows_loaded, report.rows_quarantined) == (0, len(tables[table]))
    assert {issue.rule for issue in report.issues} == {"null_value"}


# --------------------------------------------------------------------------- empty and cut files


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("table", TABLES)
def test_an_empty_file_is_refused_naming_table_and_file(tmp_path: Path, table: str,
                                                        fmt: str) -> None:
    folder = write_tables(tmp_path / "raw", tiny_tables(), fmt=fmt)
    (folder / f"{table}.{fmt}").write_bytes(b"")
    outcome = _load(folder, {})
    assert isinstance(outcome, SourceError), outcome
    _assert_names(outcome, table, f"{table}.{fmt}", "empty")


@pytest.mark.parametrize("table", TABLES)
def test_a_header_only_csv_is_an_empty_table(tmp_path: Path, table: str) -> None:
    tables = tiny_tables()
    folder = write_tables(tmp_path / "raw", tables, fmt="csv")
    header = (folder / f"{table}.csv").read_text().splitlines()[0]
    (folder / f"{table}.csv").write_text(header + "\n")
    tables[table] = []
    outcome = _load(folder, _written(tables))
    assert isinstance(outcome, History), outcome
    assert outcome.report.tables[table].rows_in == 0
    if table == "accounts":  # every other row now names an unknown account: counted, not lost
        assert all(r.rows_quarantined == r.rows_in for r in outcome.report.tables.values())


@FUZZ
@given(table=st.sampled_from(TABLES), cut=st.floats(0.0, 0.999), parts=st.booleans())
def test_a_truncated_parquet_file_is_refused_naming_table_and_file(
        tmp_path: Path, table: str, cut: float, parts: bool) -> None:
    folder = write_tables(_fresh(tmp_path), tiny_tables())
    path = folder / f"{table}.parquet"
    if parts:  # the truncated file is one part of a folder, beside a good one
        (folder / table).mkdir()
        shutil.copy(path, folder / table / "part-0.parquet")
        path = path.rename(folder / table / "part-1.parquet")
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * cut)])
    outcome = _load(folder, {})
    assert isinstance(outcome, SourceError), outcome
    _assert_names(outcome, table, path.name)


@FUZZ
@given(table=st.sampled_from(TABLES), data=st.data())
def test_a_parquet_file_with_damaged_bytes_is_refused_or_fully_counted(
        tmp_path: Path, table: str, data: st.DataObject) -> None:
    tables = tiny_tables()
    folder = write_tables(_fresh(tmp_path), tables)
    path = folder / f"{table}.parquet"
    content = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(content) - 1))
        content[at] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(content))
    outcome = _load(folder, _written(tables))
    if isinstance(outcome, ContractError):  # a damaged column name: the table lacks a column
        _assert_names(outcome, table, "missing required column")
    elif isinstance(outcome, Exception):
        assert isinstance(outcome, SourceError), outcome
        _assert_names(outcome, table, path.name)


# --------------------------------------------------------------------------- CSV text


def _csv_bytes(rows: list[dict[str, object]]) -> tuple[bytes, list[list[str]]]:
    columns = list(rows[0])
    records = [[str("" if row[c] is None else row[c]) for c in columns] for row in rows]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(records)
    return buffer.getvalue().encode(), records


VALID_CSV = ("bom", "crlf", "quoted_comma", "quoted_newline", "quoted_quote", "nul_byte",
             "no_final_newline", "blank_line", "leading_hash")
BROKEN_CSV = ("latin1_byte", "unbalanced_quote", "extra_field", "missing_field",
              "stray_quote", "lone_cr_in_field")


def _damage(content: bytes, records: list[list[str]], kind: str, row: int, column: int
            ) -> bytes:
    """The CSV text of ``records`` with one damage of ``kind`` in one record and field."""
    lines = content.split(b"\n")
    header, body = lines[0], lines[1:-1]
    fields = records[row][:]
    if kind == "bom":
        return b"\xef\xbb\xbf" + content
    if kind == "crlf":
        return content.replace(b"\n", b"\r\n")
    if kind == "no_final_newline":
        return content.rstrip(b"\n")
    if kind == "leading_hash":  # not a comment line: CSV has none
        fields[0] = "#" + fields[0]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(fields)
        body[row] = buffer.getvalue().rstrip("\n").encode()
        return b"\n".join([header, *body]) + b"\n"
    if kind == "blank_line":
        body.insert(row + 1, b"")
        return b"\n".join([header, *body]) + b"\n"
    if kind in ("quoted_comma", "quoted_newline", "quoted_quote", "nul_byte", "latin1_byte",
                "lone_cr_in_field"):
        insert = {"quoted_comma": ",", "quoted_newline": "\n", "quoted_quote": '"',
                  "nul_byte": "\x00", "latin1_byte": "\udce9", "lone_cr_in_field": "\r"}[kind]
        fields[column] = fields[column][:1] + insert + fields[column][1:]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(fields)
        line = buffer.getvalue().rstrip("\n").encode("utf-8", errors="surrogateescape")
        if kind == "lone_cr_in_field":  # written unquoted, as a careless exporter would
            line = line.replace(b'"', b"")
    else:
        line = body[row]
        raw = line.split(b",")
        if kind == "unbalanced_quote":
            raw[column] = b'"' + raw[column]
        elif kind == "stray_quote":
            raw[column] = raw[column] + b'"x'
        elif kind == "extra_field":
            raw.append(b"surplus")
        elif kind == "missing_field":
            raw.pop(column)
        line = b",".join(raw)
    body[row] = line
    return b"\n".join([header, *body]) + b"\n"


def _check_damaged_csv(folder: Path, tables: dict[str, list[dict[str, object]]], table: str,
                       kind: str, row: int, column: int) -> None:
    content, records = _csv_bytes(tables[table])
    (folder / f"{table}.csv").write_bytes(_damage(content, records, kind, row, column))
    outcome = _load(folder, _written(tables))
    if kind in VALID_CSV:
        assert isinstance(outcome, History), f"valid CSV refused: {outcome}"
    elif isinstance(outcome, Exception):
        assert isinstance(outcome, SourceError), outcome
        _assert_names(outcome, table, f"{table}.csv")


@FUZZ
@given(table=st.sampled_from(TABLES), kind=st.sampled_from(VALID_CSV + BROKEN_CSV),
       data=st.data())
def test_damaged_csv_text_is_refused_naming_table_and_file_or_fully_counted(
        tmp_path: Path, table: str, kind: str, data: st.DataObject) -> None:
    tables = tiny_tables()
    folder = write_tables(_fresh(tmp_path), tables, fmt="csv")
    row = data.draw(st.integers(0, len(tables[table]) - 1))
    column = data.draw(st.integers(0, len(tables[table][0]) - 1))
    _check_damaged_csv(folder, tables, table, kind, row, column)


@pytest.mark.parametrize("kind", ("quoted_comma", "quoted_newline", "nul_byte", *BROKEN_CSV))
def test_damage_beyond_the_rows_duckdb_samples_is_refused_or_fully_counted(
        tmp_path: Path, kind: str) -> None:
    tables = tiny_tables()
    base = tables["usage_events"]
    tables["usage_events"] = [dict(base[i % len(base)], user_id=f"u{i}") for i in range(25_000)]
    folder = write_tables(tmp_path / "raw", tables, fmt="csv")
    _check_damaged_csv(folder, tables, "usage_events", kind, row=24_990, column=1)


def test_a_broken_line_deep_in_a_csv_is_named_by_line(tmp_path: Path) -> None:
    tables = tiny_tables()
    base = tables["usage_events"][0]
    tables["usage_events"] = [dict(base, user_id=f"u{i}") for i in range(30_000)]
    folder = write_tables(tmp_path / "raw", tables, fmt="csv")
    with open(folder / "usage_events.csv", "a", newline="") as handle:  # csv wrote \r\n
        handle.write("a1,u9,2023-01-06 10:00:00,dashboard_view,1.0,surplus\r\n")
    outcome = _load(folder, {})
    assert isinstance(outcome, SourceError), outcome
    _assert_names(outcome, "usage_events", "usage_events.csv", "30002")


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("damage", ["truncated_parquet", "latin1_csv_deep", "empty_csv"])
def test_validate_command_refuses_a_broken_file_without_a_traceback(tmp_path: Path,
                                                                     damage: str) -> None:
    tables = tiny_tables()
    home = tmp_path / "home"
    raw = write_tables(home / "raw", tables)
    if damage == "truncated_parquet":
        path = raw / "subscriptions.parquet"
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "latin1_csv_deep":
        base = tables["usage_events"][0]
        events = [dict(base, user_id=f"u{i}") for i in range(25_000)]
        (raw / "usage_events.parquet").unlink()
        path = write_tables(raw, {"usage_events": events}, fmt="csv") / "usage_events.csv"
        with open(path, "ab") as handle:
            handle.write(b"a1,caf\xe9,2023-01-06 10:00:00,dashboard_view,1.0\r\n")
    else:
        (raw / "tickets.parquet").unlink()
        path = raw / "tickets.csv"
        path.write_bytes(b"")
    result = churnlens(home, "validate", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    message = " ".join((result.stderr + result.stdout).split())
    _assert_names(ValueError(message), "Cannot load the history", path.stem, path.name)
