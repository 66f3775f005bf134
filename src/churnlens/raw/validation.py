"""Checking raw history against the contract, in the engine, and setting bad rows aside.

Every rule is derived from the contract's declarations and compiled to one Ibis expression per
table, so the checks run where the data lives (DuckDB by default) and a hundred million events
never pass through pandas. A row that breaks a rule is never silently dropped: strict mode
refuses the whole load, lenient mode writes it to ``quarantine/<table>.parquet`` with the rule it
broke, and the report counts it. The clean rows that remain are then checked once more against
a pandera schema built from the same contract, as a guard on this module itself.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import ibis
import ibis.expr.types as ir
import pandera.ibis as pa
import pyarrow
from pandera.errors import SchemaError, SchemaErrors

from churnlens.raw.contract import CONTRACT, ColumnSpec, TableContract
from churnlens.raw.loader import RawSource, read_error
from churnlens.spreadsheet import FORMULA_PREFIXES

RAW_PREFIX = "__raw_"
EXAMPLES = 5
STREAMED_TABLES = frozenset({"usage_events"})
"""Tables too large to copy: read where they lie. When validation set rows of one aside, every
later scan re-runs the checks to leave them out; when none failed, scans read it plainly."""
FAR_FUTURE = date(9999, 12, 31)

RULE_TEXT = {
    "wrong_type": "value cannot be read as {dtype}",
    "null_value": "required value is missing",
    "out_of_range": "value outside {range}",
    "invalid_value": "value not one of {allowed}",
    "future_timestamp": "timestamp after {now}",
    "end_before_start": "end_date before start_date",
    "resolved_before_created": "resolved_at before created_at",
    "duplicate_id": "duplicate {column} (first occurrence kept)",
    "unknown_account": "account_id not in accounts",
    "overlapping_subscription": "starts before the account's previous subscription ended",
    "fractional_id": "id is a number with a fraction; an id read as a number must be whole",
    "mixed_id_forms": "id written as a decimal number (12347.0) in a column whose other ids "
                      "are written otherwise (12347, acc_1): one id, one form",
}
"""Every rule the validator applies, with the wording its messages use."""

FORMULA_TEXT = ("text starts with =, +, -, @, a tab or a carriage return: a spreadsheet would run "
                "it as a formula. The rows are loaded; churnlens' CSV files write such cells "
                "with a leading '")
SPREADSHEET_COLUMNS = {"accounts": ("account_id", "name", "industry", "region", "csm")}
"""Text that reaches the score table's CSV and the pages: the account's id and descriptions.
A value a spreadsheet would run as a formula is warned about, not refused: it may be a real
id, and every CSV churnlens writes neutralises it (``churnlens.spreadsheet``)."""

WHOLE_NUMBER_ID = ("ids read as whole numbers written as decimals (12347.0); loaded as "
                   "integers written as text (12347)")
"""The warning for an id column a spreadsheet or pandas turned into floats: the values are
kept, but the other tables must write the same ids as 12347 for them to join."""
DECIMAL_TEXT = r"^-?[0-9]+\.[0-9]+$"
WHOLE_DECIMAL_TEXT = r"^-?[0-9]+\.0+$"


def is_id(spec: ColumnSpec) -> bool:
    """Identifier columns (account_id, user_id, ...): text that joins tables."""
    return spec.dtype == "string" and spec.name.endswith("_id")


class ContractError(ValueError):
    """The input cannot be loaded at all (a table lacks a required column)."""


class ValidationFailed(ValueError):
    """Strict mode found bad rows and refused the load."""

    def __init__(self, report: ValidationReport):
        self.report = report
        problems = "; ".join(f"{i.table}.{i.column}: {i.rows} row(s) {i.message}"
                             for i in report.issues)
        super().__init__(f"strict validation refused the load: {problems}")


@dataclass(frozen=True)
class Issue:
    table: str
    rule: str
    column: str
    rows: int
    message: str
    examples: list[dict[str, Any]]


@dataclass(frozen=True)
class LoadWarning:
    """Rows loaded, but read in a way the user should know about."""

    table: str
    column: str
    rows: int
    message: str
    examples: list[dict[str, Any]]
    rule: str = "read_as"
    """What kind of warning: ``whole_number_id`` (an id read from decimals), ``formula_text``."""


@dataclass
class TableReport:
    table: str
    source: str | None
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    absent: bool = False
    ignored_columns: list[str] = field(default_factory=list)
    defaulted_columns: list[str] = field(default_factory=list)
    quarantine_file: str | None = None
    issues: list[Issue] = field(default_factory=list)
    warnings: list[LoadWarning] = field(default_factory=list)


@dataclass
class ValidationReport:
    mode: str
    now: str
    tables: dict[str, TableReport]

    @property
    def issues(self) -> list[Issue]:
        return [issue for report in self.tables.values() for issue in report.issues]

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def absent_tables(self) -> list[str]:
        return [name for name, report in self.tables.items() if report.absent]

    @property
    def absent_meaning(self) -> dict[str, str]:
        """Each absent table and what the history cannot give without it."""
        return {name: CONTRACT[name].without for name in self.absent_tables}

    @property
    def warnings(self) -> list[LoadWarning]:
        return [warning for report in self.tables.values() for warning in report.warnings]

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "now": self.now, "ok": self.ok,
                "rows_quarantined": sum(r.rows_quarantined for r in self.tables.values()),
                "absent": self.absent_meaning,
                "tables": {name: asdict(report) for name, report in self.tables.items()}}

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        tmp.replace(path)
        return path


@dataclass(frozen=True)
class History:
    """The validated history: clean tables as engine expressions, and the report."""

    backend: ibis.BaseBackend
    tables: dict[str, ir.Table]
    report: ValidationReport

    def table(self, name: str) -> ir.Table | None:
        return self.tables.get(name)


@dataclass(frozen=True)
class _Rule:
    name: str
    column: str
    flag: str
    """Name of the boolean column that marks rows breaking this rule (or, for a note, the rows
    it is about)."""
    message: str


# --------------------------------------------------------------------------- public entry


def validate_history(source: RawSource, *, now: datetime, strict: bool = False,
                     quarantine_dir: Path | None = None,
                     required: tuple[str, ...] | None = None) -> History:
    """Validate every contract table of ``source``; quarantine or refuse bad rows.

    Tables are checked in contract order, so references to accounts are resolved against the
    accounts that passed their own checks.
    """
    required = required or tuple(name for name, t in CONTRACT.items() if not t.optional)
    reports: dict[str, TableReport] = {}
    checked: dict[str, tuple[ir.Table, list[_Rule], TableContract]] = {}
    clean: dict[str, ir.Table] = {}
    for name, contract in CONTRACT.items():
        raw = source.tables.get(name)
        if raw is None:
            if name in required:
                raise ContractError(f"{name}: required table is missing")
            reports[name] = TableReport(table=name, source=None, absent=True)
            continue
        with _reading(source, name):
            table_report = TableReport(table=name, source=source.locations.get(name))
            flagged, rules, notes = _flag_rows(contract, raw, now, clean.get("accounts"),
                                               table_report)
            dotted = _count(flagged, rules, notes, table_report, name, _text_ids(contract, raw))
            id_forms = _text_id_forms(raw, dotted)
            if id_forms:  # rare: a text id column holds decimal numbers; check again, knowing
                table_report = TableReport(table=name, source=source.locations.get(name))
                flagged, rules, notes = _flag_rows(contract, raw, now, clean.get("accounts"),
                                                   table_report, id_forms)
                _count(flagged, rules, notes, table_report, name, [])
            _warn_formulas(flagged, contract, table_report)
            checked[name] = (flagged, rules, contract)
            if name in STREAMED_TABLES and table_report.rows_quarantined == 0:
                # every row passed: later scans need not re-run the checks (at 100 million
                # events the lookup of each row's account alone cost 5 CPU-seconds a scan)
                clean[name] = _typed_table(contract, raw, id_forms).select(
                    *contract.column_names)
            else:
                clean[name] = _clean(source.backend, flagged, contract,
                                     materialize=name not in STREAMED_TABLES)
        reports[name] = table_report

    report = ValidationReport(mode="strict" if strict else "lenient", now=now.isoformat(),
                              tables=reports)
    if strict and not report.ok:
        raise ValidationFailed(report)
    if quarantine_dir is not None:
        for name, (flagged, _, _) in checked.items():
            with _reading(source, name):
                reports[name].quarantine_file = _write_quarantine(
                    flagged, name, reports[name].rows_quarantined, quarantine_dir)
    for name, table in clean.items():
        # Small tables are checked value by value; event tables by schema, as a full second
        # scan would cost more than the validation itself. An empty table has nothing to
        # check (and pandera's null check reads an empty table as a failure).
        if reports[name].rows_loaded:
            with _reading(source, name):
                _assert_contract(CONTRACT[name], table)
    return History(backend=source.backend, tables=clean, report=report)


ENGINE_READ_ERRORS: tuple[type[Exception], ...] = (duckdb.Error, pyarrow.ArrowException)
"""What the engine raises when a file's body turns out unreadable mid-scan: a CSV line that
breaks the dialect or is not UTF-8, a damaged Parquet page."""


@contextmanager
def _reading(source: RawSource, table: str) -> Iterator[None]:
    """Scans of ``table``: an engine error becomes a :class:`SourceError` naming table and file.

    Files are opened lazily, so a bad line deep in a CSV or a damaged Parquet page is found
    only when validation first reads every row, not when the loader opens the file.
    """
    try:
        yield
    except ENGINE_READ_ERRORS as error:
        raise read_error(table, source.locations.get(table, table), error) from error


# --------------------------------------------------------------------------- rules


ENGINE_DTYPES = {"timestamp": "timestamp(6)"}
"""Contract types as the engine stores them: timestamps at microsecond precision."""


def engine_dtype(spec: ColumnSpec) -> ibis.expr.datatypes.DataType:
    return ibis.dtype(ENGINE_DTYPES.get(spec.dtype, spec.dtype))


def _whole(raw: ir.FloatingColumn) -> ir.BooleanValue:
    return ~raw.isnan() & ~raw.isinf() & (raw == raw.floor())


def _typed(spec: ColumnSpec, raw: ir.Column, id_form: str | None = None) -> ir.Value:
    """``raw`` as the contract's type. An id read as floats reads 12347.0 as "12347", as
    does a text id column written that way throughout (``id_form`` "decimal"); a fraction
    stays as written, and a rule sets its row aside."""
    target = engine_dtype(spec)
    if is_id(spec) and raw.type().is_floating():
        return ibis.ifelse(_whole(raw), raw.try_cast("int64").cast("string"),  # type: ignore[arg-type]
                           raw.cast("string"))
    if id_form == "decimal":
        return ibis.ifelse(raw.re_search(WHOLE_DECIMAL_TEXT),  # type: ignore[attr-defined]
                           raw.re_replace(r"\.0+$", ""), raw)  # type: ignore[attr-defined]
    if raw.type() == target:
        return raw
    if spec.dtype == "date" and raw.type().is_timestamp():
        return raw.cast("timestamp").date()  # type: ignore[attr-defined]
    if spec.dtype == "timestamp" and raw.type().is_timestamp():
        return raw.cast(target)
    return raw.try_cast(target)


def _typed_table(contract: TableContract, raw: ir.Table,
                 id_forms: dict[str, str] | None = None) -> ir.Table:
    """The raw columns (prefixed with ``RAW_PREFIX``) and every contract column, typed, or its
    default where the table lacks it. ``id_forms``: text id columns holding decimal numbers
    (:func:`_text_id_forms`)."""
    present = set(raw.columns)
    work = raw.rename({f"{RAW_PREFIX}{c}": c for c in raw.columns})
    typed: dict[str, ir.Value] = {}
    for spec in contract.columns:
        if spec.name in present:
            typed[spec.name] = _typed(spec, work[f"{RAW_PREFIX}{spec.name}"],
                                      (id_forms or {}).get(spec.name))
        else:
            typed[spec.name] = ibis.literal(spec.default, type=engine_dtype(spec))
    return work.mutate(**typed)  # type: ignore[arg-type]


def _flag_rows(contract: TableContract, raw: ir.Table, now: datetime,
               accounts: ir.Table | None, report: TableReport,
               id_forms: dict[str, str] | None = None
               ) -> tuple[ir.Table, list[_Rule], list[_Rule]]:
    """The raw table with typed contract columns, one flag per rule and the first reason; and
    the notes (rows loaded but read in a way worth a warning), flagged the same way."""
    present = set(raw.columns)
    missing = [c.name for c in contract.columns if c.required and c.name not in present]
    if missing:
        raise ContractError(
            f"{contract.name}: missing required column(s) {', '.join(missing)}; "
            f"the table has {len(raw.columns)} column(s): {', '.join(raw.columns)}. "
            "Rename them in the data or map them with --mapping.")
    report.ignored_columns = [c for c in raw.columns if c not in contract.column_names]
    report.defaulted_columns = [c.name for c in contract.columns if c.name not in present]

    id_forms = id_forms or {}
    work = _typed_table(contract, raw, id_forms)

    rules: list[_Rule] = []
    notes: list[_Rule] = []
    flags: dict[str, ir.BooleanValue] = {}
    noted: dict[str, ir.BooleanValue] = {}

    def add(rule: str, column: str, condition: ir.BooleanValue, **fmt: Any) -> None:
        flag = f"_bad_{len(rules)}"
        flags[flag] = condition.fill_null(False)
        rules.append(_Rule(rule, column, flag,
                           RULE_TEXT[rule].format(column=column, **fmt)))

    def note(column: str, condition: ir.BooleanValue, message: str) -> None:
        flag = f"_note_{len(notes)}"
        noted[flag] = condition.fill_null(False)
        notes.append(_Rule("note", column, flag, message))

    for spec in contract.columns:
        value = work[spec.name]
        if spec.name in present:
            original = work[f"{RAW_PREFIX}{spec.name}"]
            if is_id(spec) and original.type().is_floating():
                add("fractional_id", spec.name, original.notnull() & ~_whole(original))
                note(spec.name, _whole(original), WHOLE_NUMBER_ID)
            elif id_forms.get(spec.name) == "decimal":
                whole = original.re_search(WHOLE_DECIMAL_TEXT)  # type: ignore[attr-defined]
                add("fractional_id", spec.name, original.notnull() & ~whole)
                note(spec.name, whole, WHOLE_NUMBER_ID)
            elif id_forms.get(spec.name) == "mixed":
                add("mixed_id_forms", spec.name,
                    original.re_search(DECIMAL_TEXT))  # type: ignore[attr-defined]
            if original.type() != engine_dtype(spec):
                add("wrong_type", spec.name, original.notnull() & value.isnull(),
                    dtype=spec.dtype)
            if not spec.nullable:
                add("null_value", spec.name, original.isnull())
        if spec.dtype == "float64":
            add("out_of_range", spec.name, value.isnan() | value.isinf(),  # type: ignore[attr-defined]
                range="finite numbers")
        if spec.min_value is not None or spec.max_value is not None:
            low = -float("inf") if spec.min_value is None else spec.min_value
            high = float("inf") if spec.max_value is None else spec.max_value
            add("out_of_range", spec.name, (value < low) | (value > high),  # type: ignore[operator]
                range=f"[{spec.min_value if spec.min_value is not None else '-inf'}, "
                      f"{spec.max_value if spec.max_value is not None else 'inf'}]")
        if spec.allowed:
            add("invalid_value", spec.name, value.notin(spec.allowed),
                allowed=", ".join(spec.allowed))
        if spec.not_in_future:
            limit = now.date() if spec.dtype == "date" else now
            add("future_timestamp", spec.name, value > limit, now=now.isoformat())  # type: ignore[operator]
    for earlier, later, rule in contract.ordered_pairs:
        add(rule, later, work[later] < work[earlier])  # type: ignore[operator]
    work = work.mutate(**flags, **noted)  # type: ignore[arg-type]
    work = work.mutate(_ok=_none_of(work, [r.flag for r in rules]))

    if contract.unique_key:
        key = contract.unique_key
        order = [work[c.name] for c in contract.columns if c.name != key]
        rank = ibis.row_number().over(group_by=[work[key], work._ok], order_by=order)
        rules.append(_Rule("duplicate_id", key, "_bad_dup",
                           RULE_TEXT["duplicate_id"].format(column=key)))
        work = work.mutate(_bad_dup=work._ok & (rank > 0))
        work = work.mutate(_ok=work._ok & ~work._bad_dup)

    if contract.references_accounts and accounts is not None:
        rules.append(_Rule("unknown_account", "account_id", "_bad_account",
                           RULE_TEXT["unknown_account"]))
        known = work.account_id.isin(accounts.account_id)
        work = work.mutate(_bad_account=work._ok & ~known.fill_null(False))
        work = work.mutate(_ok=work._ok & ~work._bad_account)

    if contract.no_overlap:
        group, start, end = contract.no_overlap
        window = ibis.window(group_by=[work[group], work._ok],
                             order_by=[work[start], work[contract.unique_key or start]],
                             rows=(None, -1))
        previous_end = work[end].fill_null(FAR_FUTURE).max().over(window)
        rules.append(_Rule("overlapping_subscription", start, "_bad_overlap",
                           RULE_TEXT["overlapping_subscription"]))
        work = work.mutate(_bad_overlap=work._ok & (work[start] < previous_end).fill_null(False))
        work = work.mutate(_ok=work._ok & ~work._bad_overlap)

    reason = ibis.cases(*[(work[r.flag], r.name) for r in rules], else_=ibis.null("string"))
    column = ibis.cases(*[(work[r.flag], r.column) for r in rules], else_=ibis.null("string"))
    return work.mutate(_reason=reason, _column=column), rules, notes


def _none_of(work: ir.Table, flags: list[str]) -> ir.BooleanValue:
    ok: ir.BooleanValue = ibis.literal(True)
    for flag in flags:
        ok = ok & ~work[flag]
    return ok


# --------------------------------------------------------------------------- outputs


def _raw_columns(flagged: ir.Table) -> dict[str, ir.Column]:
    return {c[len(RAW_PREFIX):]: flagged[c] for c in flagged.columns if c.startswith(RAW_PREFIX)}


def _count(flagged: ir.Table, rules: list[_Rule], notes: list[_Rule], report: TableReport,
           table: str, text_ids: list[str]) -> dict[str, int]:
    """Row counts for every rule and note in one pass over the table, then a few examples of
    each. Returns, for each of ``text_ids``, how many of its values hold a dot: a cheap probe
    in the same pass for ids a spreadsheet wrote as decimals (12347.0)."""
    metrics = {"rows_in": flagged.count(), "rows_bad": flagged._reason.notnull().sum()}
    metrics.update({r.flag: flagged[r.flag].sum() for r in rules})
    metrics.update({n.flag: (flagged[n.flag] & flagged._reason.isnull()).sum() for n in notes})
    metrics.update({f"_dots_{c}": flagged[f"{RAW_PREFIX}{c}"].contains(".").fill_null(False)
                    .sum() for c in text_ids})
    counts = flagged.aggregate(**metrics).execute().iloc[0]
    report.rows_in = int(counts["rows_in"])
    report.rows_quarantined = int(counts["rows_bad"] or 0)
    report.rows_loaded = report.rows_in - report.rows_quarantined
    raw = _raw_columns(flagged)
    for rule in rules:
        rows = int(counts[rule.flag] or 0)
        if rows == 0:
            continue
        sample = flagged.filter(flagged[rule.flag]).select(**raw).limit(EXAMPLES).execute()
        report.issues.append(Issue(
            table=table, rule=rule.name, column=rule.column, rows=rows, message=rule.message,
            examples=[{k: _jsonable(v) for k, v in row.items()}
                      for row in sample.to_dict(orient="records")]))
    for note in notes:
        rows = int(counts[note.flag] or 0)
        if rows == 0:
            continue
        sample = flagged.filter(flagged[note.flag]).select(
            **{note.column: flagged[f"{RAW_PREFIX}{note.column}"]}).distinct().limit(
            EXAMPLES).execute()
        report.warnings.append(LoadWarning(
            table=table, column=note.column, rows=rows, message=note.message,
            rule="whole_number_id",
            examples=[{k: _jsonable(v) for k, v in row.items()}
                      for row in sample.to_dict(orient="records")]))
    return {c: int(counts[f"_dots_{c}"] or 0) for c in text_ids}


def _text_ids(contract: TableContract, raw: ir.Table) -> list[str]:
    """The id columns of ``raw`` held as text (the ones to probe for decimal numbers)."""
    return [spec.name for spec in contract.columns
            if is_id(spec) and spec.name in raw.columns and raw[spec.name].type().is_string()]


def _text_id_forms(raw: ir.Table, dotted: dict[str, int]) -> dict[str, str]:
    """How each text id column holding dots writes its ids: "decimal" when every id is a
    decimal number (a float column exported as text: whole ones read as integers), "mixed"
    when decimal numbers sit beside other forms (12347.0 beside 12347): ambiguous, so the
    decimal ones are set aside. Columns without a decimal number are left out."""
    columns = [c for c, rows in dotted.items() if rows]
    if not columns:
        return {}
    counts = raw.aggregate(**{
        f"{c}__{what}": metric for c in columns for what, metric in (
            ("decimal", raw[c].re_search(DECIMAL_TEXT).fill_null(False).sum()),  # type: ignore[attr-defined]
            ("present", raw[c].notnull().sum()))}).execute().iloc[0]
    forms = {}
    for c in columns:
        decimal, present = int(counts[f"{c}__decimal"] or 0), int(counts[f"{c}__present"] or 0)
        if decimal:
            forms[c] = "decimal" if decimal == present else "mixed"
    return forms


def _warn_formulas(flagged: ir.Table, contract: TableContract, report: TableReport) -> None:
    """Warn about loaded text cells a spreadsheet would run as formulas (one pass, then a few
    examples of each column that has any)."""
    columns = [c for c in SPREADSHEET_COLUMNS.get(contract.name, ())
               if contract.column(c).dtype == "string"]
    if not columns or report.rows_loaded == 0:
        return
    loaded = flagged.filter(flagged._reason.isnull())
    starts = {c: loaded[c].substr(0, 1).isin(FORMULA_PREFIXES).fill_null(False)  # type: ignore[attr-defined]
              for c in columns}
    counts = loaded.aggregate(**{c: starts[c].sum() for c in columns}).execute().iloc[0]
    for column in columns:
        rows = int(counts[column] or 0)
        if rows == 0:
            continue
        sample = loaded.filter(starts[column]).select(column).limit(EXAMPLES).execute()
        report.warnings.append(LoadWarning(
            table=contract.name, rule="formula_text", column=column, rows=rows,
            message=FORMULA_TEXT,
            examples=[{column: _jsonable(v)} for v in sample[column]]))


def _jsonable(value: Any) -> Any:
    import pandas as pd

    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value


def _clean(backend: ibis.BaseBackend, flagged: ir.Table, contract: TableContract,
           materialize: bool) -> ir.Table:
    """The rows that passed, typed to the contract.

    Small tables are materialized once in the engine, so every later query (and the pandera
    guard) reads a plain table instead of re-running the checks; event-sized tables stay lazy
    and the engine streams them.
    """
    clean = flagged.filter(flagged._reason.isnull()).select(*contract.column_names)
    if not materialize:
        return clean
    return clean.cache()  # a temporary table in DuckDB and Postgres, a persisted frame in Spark


def _write_quarantine(flagged: ir.Table, table: str, bad_rows: int, folder: Path) -> str | None:
    target = folder / f"{table}.parquet"
    if bad_rows == 0:
        target.unlink(missing_ok=True)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    rows = flagged.filter(flagged._reason.notnull()).select(
        **_raw_columns(flagged), _reason=flagged._reason, _column=flagged._column)
    tmp = folder / f".{table}.parquet.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rows.to_parquet(tmp)
    tmp.replace(target)
    return str(target)


# --------------------------------------------------------------------------- pandera guard

_PANDERA_DTYPES = {"string": str, "int64": int, "float64": float}


def pandera_schema(contract: TableContract, values: bool = True,
                   timestamp: ibis.expr.datatypes.DataType | None = None) -> pa.DataFrameSchema:
    """The contract as a pandera schema, for the clean side of the validation.

    ``values=False`` keeps only column names and types, which pandera checks from the schema
    alone without reading a row: the guard for tables too large to scan once more.
    ``timestamp`` is the engine's own timestamp type where it stores no precision (Spark).
    """
    columns = {}
    for spec in contract.columns:
        dtype = _PANDERA_DTYPES.get(spec.dtype) or (
            timestamp if timestamp is not None and spec.dtype == "timestamp"
            else engine_dtype(spec))
        if not values:
            columns[spec.name] = pa.Column(dtype, nullable=True)
            continue
        checks = []
        if spec.min_value is not None:
            checks.append(pa.Check.ge(spec.min_value))
        if spec.max_value is not None:
            checks.append(pa.Check.le(spec.max_value))
        if spec.allowed:
            checks.append(pa.Check.isin(list(spec.allowed)))
        columns[spec.name] = pa.Column(dtype, checks=checks, nullable=spec.nullable)
    return pa.DataFrameSchema(columns, name=contract.name, strict=True)


def _assert_contract(contract: TableContract, clean: ir.Table) -> None:
    try:
        schema = pandera_schema(contract, values=contract.name not in STREAMED_TABLES,
                                timestamp=_engine_timestamp(clean))
        schema.validate(clean, lazy=True)
    except (SchemaError, SchemaErrors) as error:  # pragma: no cover - a bug in this module
        raise AssertionError(
            f"{contract.name}: rows that passed validation still break the contract: {error}"
        ) from error


def _engine_timestamp(clean: ir.Table) -> ibis.expr.datatypes.DataType | None:
    """Spark's timestamps carry no precision; DuckDB's and Postgres' carry microseconds."""
    for dtype in clean.schema().values():
        if dtype.is_timestamp() and dtype.scale is None:
            return dtype
    return None
