"""Finding the five tables of a company's history and opening them as Ibis tables.

Nothing is read into Python here: a folder of Parquet or CSV files becomes DuckDB views, a
database URL becomes that database's tables, and every later step pushes its work down to the
engine. That is what lets validation and features run on a hundred million events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import ibis
import ibis.expr.types as ir

from churnlens.engines import duckdb_backend
from churnlens.raw.contract import CONTRACT
from churnlens.raw.mapping import Mapping, apply_mapping


class SourceError(ValueError):
    """A table cannot be found or read at all."""


@dataclass(frozen=True)
class RawSource:
    """The opened, not yet validated, tables of one history."""

    backend: ibis.BaseBackend
    tables: dict[str, ir.Table]
    """Contract table name to its raw table, with the mapping already applied."""
    locations: dict[str, str]
    """Where each table was read from, for messages."""


def is_url(data: str) -> bool:
    return "://" in data


def open_source(data: str | Path, mapping: Mapping, backend: ibis.BaseBackend | None = None,
                required: tuple[str, ...] | None = None) -> RawSource:
    """Open the contract tables found at ``data`` (a folder or an Ibis connection URL).

    Required tables that cannot be found raise :class:`SourceError`; optional ones that are
    absent are simply not in the result, and validation reports them as absent.
    """
    required = required or tuple(name for name, t in CONTRACT.items() if not t.optional)
    if backend is not None and backend.name == "pyspark":
        con = backend
        found = _spark_tables(con, str(data), mapping)
    elif isinstance(data, str) and is_url(data):
        con = backend or ibis.connect(data)
        found = _database_tables(con, mapping)
    else:
        folder = Path(data)
        if not folder.is_dir():
            raise SourceError(f"raw history folder {folder} does not exist "
                              "(run `churnlens synth` to generate a demo company)")
        con = backend or duckdb_backend()
        found = _folder_tables(con, folder, mapping)
    missing = [name for name in required if name not in found]
    if missing:
        where = data if isinstance(data, str) and is_url(data) else Path(data).resolve()
        raise SourceError(
            f"required table(s) {', '.join(missing)} not found in {where}; expected "
            + "; ".join(f"{m}.parquet, {m}.csv or a {m}/ folder of parts"
                        f"{_mapped_hint(m, mapping)}" for m in missing))
    tables = {name: apply_mapping(name, table, mapping) for name, (table, _) in found.items()}
    return RawSource(backend=con, tables=tables,
                     locations={name: where for name, (_, where) in found.items()})


def _mapped_hint(table: str, mapping: Mapping) -> str:
    source = mapping.source_name(table)
    return f" (mapped from {source!r})" if source != table else ""


def _folder_tables(con: ibis.BaseBackend, folder: Path, mapping: Mapping
                   ) -> dict[str, tuple[ir.Table, str]]:
    found = {}
    for name in CONTRACT:
        files, kind = _table_files(folder, mapping.source_name(name))
        if not files:
            continue
        empty = [os.path.relpath(f, folder) for f in files if os.path.getsize(f) == 0]
        if empty:
            raise SourceError(f"{name}: {', '.join(empty)} is empty (0 bytes); a table needs at "
                              "least a CSV header line or a Parquet schema")
        try:
            if kind == "parquet":
                table = con.read_parquet(files, table_name=f"raw_{name}",  # type: ignore[attr-defined]
                                         union_by_name=True)
            else:
                table = con.read_csv(files, table_name=f"raw_{name}",  # type: ignore[attr-defined]
                                     all_varchar=True, header=True, **CSV_DIALECT)
        except Exception as error:  # the engine's own message says what is wrong with the file
            raise read_error(name, _describe(files, folder), error, csv=kind == "csv") from error
        found[name] = (table, _describe(files, folder))
    return found


CSV_DIALECT = {"delim": ",", "quote": '"', "escape": '"', "strict_mode": True, "skip": 0,
               "comment": ""}
"""CSV as RFC 4180 says, stated rather than sniffed. A dialect guessed from the first rows can
read a stray quote as data, a quoted line break as two rows, or (given one line with a field
too many) take that line for the header and skip every line above it: rows lost or made up
without a word. A line that breaks the dialect stops the load instead."""


def read_error(table: str, where: str, error: Exception, csv: bool | None = None
               ) -> SourceError:
    """A file the engine cannot read, in the engine's own words minus its query text and hints.

    Raised when the file is opened and also when it is first scanned, since engines read a
    file's body (and find a bad line or a damaged page in it) only when a query needs it.
    """
    said = []
    for line in str(error).splitlines():
        if not line.strip() or line.startswith(("LINE ", "Possible", "The search space")):
            break
        said.append(line.strip()[:200])
    csv = where.endswith(".csv") if csv is None else csv
    csv_hint = (" (read as UTF-8, comma-separated, quoted with \"; look for a line with more "
                "or fewer fields than the header, an unclosed quote or bytes that are not "
                "UTF-8)") if csv else ""
    return SourceError(f"{table}: cannot read {where}{csv_hint}: {'; '.join(said) or error}")


def _spark_tables(con: ibis.BaseBackend, data: str, mapping: Mapping
                  ) -> dict[str, tuple[ir.Table, str]]:
    """The tables under ``data`` read by Spark: a local folder laid out as for DuckDB, or a
    path only the cluster can list (hdfs://, s3a://) holding ``name/`` or ``name.parquet``."""
    if not is_url(data):
        folder = Path(data)
        if not folder.is_dir():
            raise SourceError(f"raw history folder {folder} does not exist")
        found = {}
        for name in CONTRACT:
            files, kind = _table_files(folder, mapping.source_name(name))
            if files:
                # a folder of parts is read as the folder: Spark lists and merges it
                path = str(Path(files[0]).parent) if len(files) > 1 else files[0]
                found[name] = (_spark_read(con, name, path, kind), _describe(files, folder))
        return found
    found = {}
    for name in CONTRACT:
        source = mapping.source_name(name)
        for path, kind in ((f"{data}/{source}.parquet", "parquet"), (f"{data}/{source}", "parquet"),
                           (f"{data}/{source}.csv", "csv")):
            try:
                found[name] = (_spark_read(con, name, path, kind), path)
                break
            except SourceError:
                continue
    return found


def _spark_read(con: ibis.BaseBackend, name: str, path: str, kind: str) -> ir.Table:
    try:
        if kind == "parquet":
            return con.read_parquet(path, table_name=f"raw_{name}",  # type: ignore[attr-defined]
                                    mergeSchema=True)
        # every CSV column as text, as with DuckDB: validation types them and counts failures
        return con.read_csv(path, table_name=f"raw_{name}",  # type: ignore[attr-defined]
                            header=True, inferSchema=False)
    except Exception as error:  # Spark's own message says what is wrong with the path
        raise SourceError(f"{name}: cannot read {path}: {error}") from error


def _describe(files: list[str], folder: Path) -> str:
    if len(files) == 1:
        return os.path.relpath(files[0], folder)
    parent = os.path.relpath(os.path.dirname(files[0]), folder)
    return f"{parent}/ ({len(files)} parts)"


def _table_files(folder: Path, source: str) -> tuple[list[str], str]:
    """Files holding one table: ``name.parquet``, ``name.csv``, or a folder of either."""
    candidates = [folder / source] if Path(source).suffix else [
        folder / f"{source}.parquet", folder / f"{source}.csv", folder / source]
    for path in candidates:
        if path.is_file():
            return [str(path)], "csv" if path.suffix.lower() == ".csv" else "parquet"
        if path.is_dir():
            for kind in ("parquet", "csv"):
                parts = sorted(str(p) for p in path.glob(f"*.{kind}"))
                if parts:
                    return parts, kind
    return [], ""


def _database_tables(con: ibis.BaseBackend, mapping: Mapping) -> dict[str, tuple[ir.Table, str]]:
    available = set(con.list_tables())
    found = {}
    for name in CONTRACT:
        source = mapping.source_name(name)
        if source in available:
            found[name] = (con.table(source), source)
    return found
