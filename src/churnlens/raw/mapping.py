"""Mapping a foreign dataset's names and units onto the contract.

A company's warehouse rarely uses our names. A small YAML file says, per contract table, where
its rows come from and which source column feeds each contract column, with an optional unit
conversion::

    tables:
      usage_events:
        source: product_events          # file stem, file name, folder or database table
        columns:
          account_id: org_id
          event_ts: {from: ts_ms, convert: epoch_ms}
      subscriptions:
        columns:
          mrr: {from: mrr_cents, convert: cents}
          start_date: {from: started, format: "%d/%m/%Y"}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import ibis.expr.types as ir
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from churnlens.raw.contract import CONTRACT

Conversion = Literal["epoch_s", "epoch_ms", "epoch_us", "cents"]


class ColumnSource(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(alias="from")
    convert: Conversion | None = None
    format: str | None = Field(None, description="strptime format for text timestamps/dates.")


class TableSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = None
    columns: dict[str, ColumnSource] = Field(default_factory=dict)

    @field_validator("columns", mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: {"from": v} if isinstance(v, str) else v for k, v in value.items()}
        return value


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tables: dict[str, TableSource] = Field(default_factory=dict)

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, value: dict[str, TableSource]) -> dict[str, TableSource]:
        for table, spec in value.items():
            if table not in CONTRACT:
                raise ValueError(f"unknown contract table {table!r}; "
                                 f"expected one of {sorted(CONTRACT)}")
            known = set(CONTRACT[table].column_names)
            for column in spec.columns:
                if column not in known:
                    raise ValueError(f"{table}: unknown contract column {column!r}; "
                                     f"expected one of {sorted(known)}")
        return value

    def source_name(self, table: str) -> str:
        spec = self.tables.get(table)
        return spec.source if spec and spec.source else table


class MappingError(ValueError):
    """The mapping file itself is wrong (not the data it maps)."""


def load_mapping(path: Path | None) -> Mapping:
    if path is None:
        return Mapping()
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return Mapping.model_validate(raw)
    except FileNotFoundError as error:
        raise MappingError(f"mapping file {path} does not exist") from error
    except (yaml.YAMLError, ValidationError) as error:
        raise MappingError(f"mapping file {path} is not valid: {error}") from error


def apply_mapping(table_name: str, table: ir.Table, mapping: Mapping) -> ir.Table:
    """Rename mapped source columns to contract names and convert their units.

    Columns the mapping does not mention pass through unchanged, so a dataset that already
    uses the contract's names needs no mapping at all.
    """
    spec = mapping.tables.get(table_name)
    if spec is None or not spec.columns:
        return table
    missing = [c.source for c in spec.columns.values() if c.source not in table.columns]
    if missing:
        # Leave the contract column absent; validation reports it as missing with context.
        spec = spec.model_copy(update={"columns": {
            k: v for k, v in spec.columns.items() if v.source in table.columns}})
    converted = {name: _convert(table[col.source], col) for name, col in spec.columns.items()}
    sources = {col.source for col in spec.columns.values()}
    kept = [c for c in table.columns if c not in sources and c not in converted]
    return table.select(*[table[c] for c in kept],
                        **converted)  # type: ignore[arg-type]


def _convert(column: ir.Value, spec: ColumnSource) -> ir.Value:
    if spec.convert in ("epoch_s", "epoch_ms", "epoch_us"):
        unit = {"epoch_s": "s", "epoch_ms": "ms", "epoch_us": "us"}[spec.convert]
        return column.try_cast("int64").as_timestamp(unit)  # type: ignore[attr-defined]
    if spec.convert == "cents":
        return column.try_cast("float64") / 100.0  # type: ignore[operator]
    if spec.format:
        return column.cast("string").as_timestamp(spec.format)  # type: ignore[attr-defined]
    return column
