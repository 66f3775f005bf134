"""Reading the history from Parquet, CSV, a mapped foreign layout and a database."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import ibis
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnlens.raw.loader import SourceError, open_source
from churnlens.raw.mapping import Mapping, MappingError, load_mapping
from churnlens.raw.validation import validate_history
from conftest import NOW, tiny_tables, write_tables


def _load(data: str | Path, mapping: Mapping | None = None, strict: bool = True):  # type: ignore[no-untyped-def]
    source = open_source(data, mapping or Mapping())
    return validate_history(source, now=NOW, strict=strict)


def _rows(history, table: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    frame = history.tables[table].execute()
    return sorted(frame.to_dict(orient="records"), key=str)


def test_csv_and_parquet_load_the_same_rows(tmp_path: Path) -> None:
    from_parquet = _load(write_tables(tmp_path / "pq", tiny_tables()))
    from_csv = _load(write_tables(tmp_path / "csv", tiny_tables(), fmt="csv"))
    for table in ("accounts", "subscriptions", "usage_events", "tickets", "surveys"):
        assert from_csv.tables[table].schema() == from_parquet.tables[table].schema(), table
        assert str(_rows(from_csv, table)) == str(_rows(from_parquet, table)), table


def test_csv_with_a_bad_number_deep_in_the_file_is_quarantined_not_fatal(tmp_path: Path) -> None:
    tables = tiny_tables()
    base = tables["usage_events"][0]
    tables["usage_events"] = [dict(base, user_id=f"u{i}") for i in range(30_000)]
    tables["usage_events"][-1]["quantity"] = "lots"  # beyond any type-sniffing sample
    folder = write_tables(tmp_path / "csv", tables, fmt="csv")
    history = _load(folder, strict=False)
    events = history.report.tables["usage_events"]
    assert (events.rows_in, events.rows_loaded, events.rows_quarantined) == (30_000, 29_999, 1)
    assert events.issues[0].rule == "wrong_type"
    assert events.issues[0].examples[0]["quantity"] == "lots"


def test_events_in_a_folder_of_parts(tmp_path: Path) -> None:
    folder = write_tables(tmp_path / "raw", tiny_tables())
    events = pq.read_table(folder / "usage_events.parquet")
    (folder / "usage_events.parquet").unlink()
    (folder / "usage_events").mkdir()
    pq.write_table(events.slice(0, 2), folder / "usage_events" / "part-0.parquet")
    pq.write_table(events.slice(2), folder / "usage_events" / "part-1.parquet")
    history = _load(folder)
    assert history.report.tables["usage_events"].rows_loaded == 4
    assert history.report.tables["usage_events"].source == "usage_events/ (2 parts)"


def test_mapping_renames_tables_and_columns_and_converts_units(tmp_path: Path) -> None:
    tables = tiny_tables()
    folder = tmp_path / "foreign"
    write_tables(folder, {k: v for k, v in tables.items() if k not in ("usage_events",
                                                                       "subscriptions")})
    events = tables["usage_events"]
    pq.write_table(pa.table({
        "org": [e["account_id"] for e in events],
        "member": [e["user_id"] for e in events],
        "ts_ms": [int(e["event_ts"].timestamp() * 1000) for e in events],  # type: ignore[attr-defined]
        "action": [e["event"] for e in events],
        "qty": [e["quantity"] for e in events],
    }), folder / "product_events.parquet")
    subs = tables["subscriptions"]
    pq.write_table(pa.table({
        "account_id": [s["account_id"] for s in subs],
        "subscription_id": [s["subscription_id"] for s in subs],
        "plan": [s["plan"] for s in subs],
        "seats": [s["seats"] for s in subs],
        "mrr_cents": [int(s["mrr"] * 100) for s in subs],  # type: ignore[operator]
        "billing_period": [s["billing_period"] for s in subs],
        "started": [s["start_date"].strftime("%d/%m/%Y") for s in subs],  # type: ignore[attr-defined]
        "end_date": [s["end_date"] for s in subs],
    }), folder / "subscriptions.parquet")
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text("""
tables:
  usage_events:
    source: product_events
    columns:
      account_id: org
      user_id: member
      event_ts: {from: ts_ms, convert: epoch_ms}
      event: action
      quantity: qty
  subscriptions:
    columns:
      mrr: {from: mrr_cents, convert: cents}
      start_date: {from: started, format: "%d/%m/%Y"}
""")
    history = _load(folder, load_mapping(mapping_file))
    assert history.report.ok
    reference = _load(write_tables(tmp_path / "ours", tiny_tables()))
    assert str(_rows(history, "usage_events")) == str(_rows(reference, "usage_events"))
    assert str(_rows(history, "subscriptions")) == str(_rows(reference, "subscriptions"))


@pytest.mark.parametrize("text", [
    "tables: {orders: {source: x}}",
    "tables: {usage_events: {columns: {when: ts}}}",
    "tables: {usage_events: {columns: {event_ts: {from: ts, convert: fortnights}}}}",
    "tables: [1, 2",
])
def test_a_wrong_mapping_file_says_what_is_wrong(tmp_path: Path, text: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(MappingError, match="mapping file"):
        load_mapping(path)


def test_missing_required_table_is_named(tmp_path: Path) -> None:
    tables = tiny_tables()
    del tables["usage_events"]
    folder = write_tables(tmp_path / "raw", tables)
    with pytest.raises(SourceError, match="usage_events not found"):
        _load(folder)


def test_missing_folder_says_how_to_get_data(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="churnlens synth"):
        _load(tmp_path / "nowhere")


def test_history_in_a_database_reached_by_url(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    con = ibis.duckdb.connect(database)
    for name, rows in tiny_tables().items():
        table = pq.read_table(write_tables(tmp_path / "files", {name: rows}) / f"{name}.parquet")
        con.create_table(name, table)
    con.disconnect()
    history = _load(f"duckdb://{database}")
    assert history.report.ok
    assert history.report.tables["usage_events"].rows_loaded == 4
    assert history.report.tables["accounts"].source == "accounts"


def test_future_is_relative_to_the_reference_time(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["usage_events"][0]["event_ts"] = datetime(2024, 7, 1)
    folder = write_tables(tmp_path / "raw", tables)
    source = open_source(folder, Mapping())
    late = validate_history(source, now=datetime(2024, 8, 1))
    assert late.report.ok
    early = validate_history(open_source(folder, Mapping()), now=NOW)
    assert [i.rule for i in early.report.issues] == ["future_timestamp"]
