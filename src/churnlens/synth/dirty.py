"""Bad rows of every kind the validator must catch, injected into a generated company.

Each injection is counted by table and rule, so tests can check that validation finds exactly
what was planted. Injections are chosen not to cascade: a bad account is a new row with no
activity, so its quarantine does not turn other tables' rows into unknown-account rows.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FUTURE = datetime(2099, 1, 1, 12, 0, 0)
GHOST = "acc_ghost_{}"


def make_dirty(folder: Path, rng: np.random.Generator) -> dict[str, dict[str, int]]:
    """Plant bad rows in the tables under ``folder``; returns counts by table and rule."""
    planted: dict[str, Counter[str]] = {}
    planted["accounts"] = _accounts(folder / "accounts.parquet", rng)
    planted["subscriptions"] = _subscriptions(folder / "subscriptions.parquet", rng)
    planted["usage_events"] = _events(folder / "usage_events", rng)
    planted["tickets"] = _tickets(folder / "tickets.parquet", rng)
    planted["surveys"] = _surveys(folder / "surveys.parquet", rng)
    return {table: dict(sorted(counts.items())) for table, counts in planted.items()}


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def _pick(rng: np.random.Generator, n: int, k: int) -> list[int]:
    return sorted(rng.choice(n, size=k, replace=False).tolist())


def _write(table: pa.Table, rows: list[dict[str, Any]], path: Path,
           schema: pa.Schema | None = None) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema or table.schema), path)


def _accounts(path: Path, rng: np.random.Generator) -> Counter[str]:
    table = pq.read_table(path)
    rows = _rows(table)
    first = rows[0]
    rows.append({**first, "name": first["name"] + " (copy)"})  # same account_id twice
    rows.append({**first, "account_id": GHOST.format("future"), "created_at": FUTURE})
    rows.append({**first, "account_id": GHOST.format("nameless"), "name": None})
    _write(table, rows, path)
    return Counter({"duplicate_id": 1, "future_timestamp": 1, "null_value": 1})


def _subscriptions(path: Path, rng: np.random.Generator) -> Counter[str]:
    table = pq.read_table(path)
    # seats arrives as text, as it would from a careless export: a few values are not numbers
    table = table.set_column(table.schema.get_field_index("seats"), "seats",
                             pc.cast(table["seats"], pa.string()))
    rows = _rows(table)
    counts: Counter[str] = Counter()
    chosen = iter(_pick(rng, len(rows), 10))
    for value in ("twelve", "n/a"):
        rows[next(chosen)]["seats"] = value
        counts["wrong_type"] += 1
    rows[next(chosen)]["seats"] = "-3"
    rows[next(chosen)]["mrr"] = -120.0
    counts["out_of_range"] += 2
    for _ in range(2):
        row = rows[next(chosen)]
        row["billing_period"] = "weekly"
        counts["invalid_value"] += 1
    row = rows[next(chosen)]
    row["end_date"] = row["start_date"].replace(year=row["start_date"].year - 1)
    counts["end_before_start"] += 1
    row = rows[next(chosen)]
    row["plan"] = None
    counts["null_value"] += 1
    base = rows[next(chosen)]
    rows.append({**base, "subscription_id": "sub_overlap_1",
                 "start_date": base["start_date"] + _days(3),
                 "end_date": base["start_date"] + _days(10)})
    counts["overlapping_subscription"] += 1
    rows.append({**rows[0], "account_id": GHOST.format("subscriber"),
                 "subscription_id": "sub_ghost_1"})
    counts["unknown_account"] += 1
    rows.append(dict(rows[-2]))  # an exact copy: duplicate subscription_id
    counts["duplicate_id"] += 1
    rows.append({**rows[1], "subscription_id": "sub_future_1", "start_date": FUTURE.date(),
                 "end_date": None})
    counts["future_timestamp"] += 1
    _write(table, rows, path)
    return counts


def _days(n: int):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(days=n)


def _events(folder: Path, rng: np.random.Generator) -> Counter[str]:
    first = sorted(folder.glob("*.parquet"))[0]
    sample = pq.read_table(first).slice(0, 40)
    rows = _rows(sample)
    bad = []
    for row in rows[:20]:
        bad.append({**row, "account_id": GHOST.format("user")})
    for row in rows[20:25]:
        bad.append({**row, "event_ts": FUTURE})
    for row in rows[25:28]:
        bad.append({**row, "account_id": None})
    for row in rows[28:30]:
        bad.append({**row, "quantity": -5.0})
    for row in rows[30:32]:
        bad.append({**row, "event": None})
    _write(sample, bad, folder / "part-99999-dirty.parquet")
    return Counter({"unknown_account": 20, "future_timestamp": 5, "null_value": 5,
                    "out_of_range": 2})


def _tickets(path: Path, rng: np.random.Generator) -> Counter[str]:
    table = pq.read_table(path)
    rows = _rows(table)
    resolved = [i for i, r in enumerate(rows) if r["resolved_at"] is not None]
    chosen = iter(rng.choice(resolved, size=8, replace=False).tolist())
    counts: Counter[str] = Counter()
    for _ in range(3):
        row = rows[next(chosen)]
        row["resolved_at"] = row["created_at"] - _days(2)
        counts["resolved_before_created"] += 1
    for value in (0.0, 7.0):
        rows[next(chosen)]["csat"] = value
        counts["out_of_range"] += 1
    for _ in range(2):
        rows[next(chosen)]["priority"] = "critical"
        counts["invalid_value"] += 1
    rows.append(dict(rows[next(chosen)]))
    counts["duplicate_id"] += 1
    rows.append({**rows[0], "ticket_id": "tkt_ghost_1", "account_id": GHOST.format("caller")})
    counts["unknown_account"] += 1
    _write(table, rows, path)
    return counts


def _surveys(path: Path, rng: np.random.Generator) -> Counter[str]:
    table = pq.read_table(path)
    rows = _rows(table)
    chosen = iter(_pick(rng, len(rows), 6))
    counts: Counter[str] = Counter()
    for value in (11, -1):
        rows[next(chosen)]["score"] = value
        counts["out_of_range"] += 1
    rows[next(chosen)]["responded_at"] = FUTURE
    counts["future_timestamp"] += 1
    rows.append(dict(rows[next(chosen)]))
    counts["duplicate_id"] += 1
    rows.append({**rows[0], "response_id": "nps_ghost_1", "account_id": GHOST.format("voter")})
    counts["unknown_account"] += 1
    _write(table, rows, path)
    return counts
