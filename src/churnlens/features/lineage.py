"""Which raw rows each snapshot read, as fingerprints cheap enough to take on every build.

A finished snapshot is reused only while the rows it read are the rows the history holds now:
its features read every row dated before ``as_of`` (all of them, not only the look-back
windows: onboarding and first-event features reach back to the start), its labels the rows
of ``[as_of, as_of + horizon)``. So the raw history is summed once per table and day, in the
engine: for each day, how many rows and the sum of a 64-bit hash of each row (split in two
32-bit halves, so that no engine's integer sum overflows). A snapshot's fingerprint is then
the sums over its days, a subtraction of two running totals per table, for no further scan.
Appending new days leaves every finished snapshot's sums as they were; a corrected, added or
removed row changes the sums of exactly the snapshots whose days hold it.

A few values become known after their row's first day, and ``sources.py`` reads them only
from that later day on: a subscription's end, a ticket's resolution and its rating. Each is a
fact of its own day (``FACTS``), so ending a subscription today does not rebuild the years of
snapshots that saw it running. Accounts are dated by ``created_at``: a snapshot holds only
accounts created before its ``as_of``, so a changed account row rebuilds every snapshot that
holds the account. The rows hashed are the validated ones the build reads, after the mapping
file was applied: a change of mapping is seen in the rows it changes.

Cost (DuckDB, 2 shared cores): on ``synth --accounts 3000 --months 24`` (1.95M usage events,
24 monthly dates) the fingerprints of all dates take 0.27-0.30 s against 4.8 s for the whole
``--full`` build (6%); nearly all of it is one more read of every column of the usage events,
so the share grows with them: 0.8-1.0 s on 10M events, whose build takes about 5 s. Through
Ibis' ``hash()`` (a signed cast through a bit string) and grouped by a day number it took
twice as long; hashing each row as text, the spelling PostgreSQL and Spark need, three times.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from churnlens.features.sources import id_key

UNDATED = date(1, 1, 1)
"""The day of rows of a table ``FACTS`` does not date: before every snapshot, so a change to
such a table rebuilds them all."""
EPOCH = date(1970, 1, 1)

TEXT_SEPARATOR = "\x1f"
TEXT_NULL = "\x1e"
"""How a row is spelled as text where the engine cannot hash a row at once: columns joined by
the ASCII unit separator, a null as the record separator (neither occurs in real ids)."""


@dataclass(frozen=True)
class Fact:
    """Part of each row of ``table`` that a snapshot can read from the day in column ``day``
    on: the columns ``only`` (all when empty) less ``later``, which are facts of their own."""

    table: str
    day: str
    only: tuple[str, ...] = ()
    later: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.table}.{self.day}"

    def columns(self, table: ir.Table) -> list[str]:
        wanted = self.only or tuple(table.columns)
        return [c for c in wanted if c in table.columns and c not in self.later]


FACTS: tuple[Fact, ...] = (
    Fact("accounts", "created_at"),
    Fact("usage_events", "event_ts"),
    Fact("subscriptions", "start_date", later=("end_date",)),
    # held_at: an end on or after the day read is not known yet
    Fact("subscriptions", "end_date", only=("subscription_id", "account_id", "end_date")),
    Fact("tickets", "created_at", later=("resolved_at", "csat")),
    # tickets_seen: resolution and rating are read only once resolved_at < as_of
    Fact("tickets", "resolved_at", only=("ticket_id", "account_id", "resolved_at", "csat")),
    Fact("surveys", "responded_at"),
)
"""Every contract table, dated the way ``sources.py`` and the label rules read it."""


@dataclass(frozen=True)
class DaySums:
    """Per fact, its days in order and running totals of (rows, low halves, high halves) up
    to and including each day."""

    method: str
    days: dict[str, list[int]]
    totals: dict[str, list[tuple[int, int, int]]]

    def between(self, fact: str, first: int, end: int) -> tuple[int, int, int]:
        """Rows, low and high hash sums of ``fact`` on days in ``[first, end)``."""
        days, totals = self.days.get(fact, []), self.totals.get(fact, [])
        lo, hi = bisect_left(days, first), bisect_left(days, end)
        if hi == 0 or lo == hi:
            return (0, 0, 0)
        upper = totals[hi - 1]
        lower = totals[lo - 1] if lo else (0, 0, 0)
        return (upper[0] - lower[0], upper[1] - lower[1], upper[2] - lower[2])

    def digest(self, first: int, end: int) -> str:
        sums = [[fact, *self.between(fact, first, end)] for fact in sorted(self.days)]
        text = json.dumps([self.method, sums], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def row_hash(table: ir.Table, columns: list[str]) -> ir.IntegerValue:
    """A 64-bit hash of the named columns of each row.

    DuckDB hashes a struct of them at once; PostgreSQL hashes only single values and Spark's
    ``hash`` is 32 bits wide, so there the row is spelled as text and hashed as ids are
    (``sources.id_key``).
    """
    if ibis.get_backend(table).name == "duckdb":
        row = ibis.struct({c: table[c] for c in columns})
        # DuckDB's own unsigned hash: Ibis' ``hash()`` casts it to signed through a bit
        # string, which made the fingerprint half as slow again
        duckdb_hash = ibis.udf.scalar.builtin(_duckdb_hash, name="hash",
                                              signature=((row.type(),), dt.uint64))
        return duckdb_hash(row)  # type: ignore[no-any-return]
    text = ibis.literal(TEXT_SEPARATOR).join(
        [table[c].cast("string").fill_null(TEXT_NULL) for c in columns])
    return id_key(text)


def _duckdb_hash(row):  # type: ignore[no-untyped-def]
    """DuckDB's 64-bit hash of a value (a struct of a row's columns)."""


def day_sums(tables: dict[str, ir.Table], backend: ibis.BaseBackend) -> DaySums:
    """One query over every table: per fact and day, rows and hash sums."""
    parts: list[ir.Table] = []
    facts = [f for f in FACTS if f.table in tables]
    facts += [Fact(name, "") for name in sorted(tables) if all(f.table != name for f in FACTS)]
    for fact in facts:
        table = tables[fact.table]
        if fact.day:
            table = table.filter(table[fact.day].notnull())
            # grouped by the date, turned into a day number after: on every row it cost more
            # than the hash
            day = table[fact.day].cast("date")
        else:
            day = ibis.literal(UNDATED, "date")
        parts.append(table.select(fact=ibis.literal(fact.name, "string"), day=day,
                                  h=row_hash(table, fact.columns(table))))
    rows = ibis.union(*parts, distinct=False)
    sums = rows.group_by(["fact", "day"]).aggregate(
        rows=rows.count(), low=(rows.h & 0xFFFFFFFF).sum(), high=(rows.h >> 32).sum())
    frame = sums.order_by(["fact", "day"]).to_pyarrow().to_pylist()
    days: dict[str, list[int]] = {f.name: [] for f in facts}
    totals: dict[str, list[tuple[int, int, int]]] = {f.name: [] for f in facts}
    for row in frame:
        running = totals[row["fact"]][-1] if totals[row["fact"]] else (0, 0, 0)
        days[row["fact"]].append((row["day"] - EPOCH).days)
        totals[row["fact"]].append((running[0] + int(row["rows"]),
                                    running[1] + int(row["low"]),
                                    running[2] + int(row["high"])))
    return DaySums(method=f"{backend.name} {backend.version}", days=days, totals=totals)


def snapshot_prints(sums: DaySums, dates: tuple[date, ...], horizon_days: int
                    ) -> dict[date, dict[str, str]]:
    """Per snapshot date, the fingerprint of what its features read (every row before
    ``as_of``) and of what its labels read (the rows of its horizon)."""
    prints = {}
    for as_of in dates:
        day = (as_of - EPOCH).days
        prints[as_of] = {"features": sums.digest((UNDATED - EPOCH).days, day),
                         "labels": sums.digest(day, day + horizon_days)}
    return prints
