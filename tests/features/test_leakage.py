"""Property tests of the point-in-time promise: no feature sees the future, no label sees
outside its window.

Each example draws a small, contract-valid company whose rows are spread around a fixed
snapshot date ``AS_OF`` (often exactly on a window edge, at midnight or a microsecond before)
and ``VARIANTS`` random changes that the promise says must not matter (rows on or after
``AS_OF`` for features; rows outside the label window for labels). It builds the snapshot at
``AS_OF`` of the company and of each changed copy and compares them. The changed copies are
validated too and must quarantine nothing, so a difference can only come from leakage.

What may influence what, as implemented in ``features/snapshots.py``:

* Features of (account, AS_OF): rows dated before the start of day AS_OF only (event_ts,
  ticket created_at, responded_at, subscription start_date before AS_OF); of those rows,
  subscription end dates and ticket resolutions/CSAT only when they fall before AS_OF.
* Population, subscription mode: the subscription held at AS_OF (started before AS_OF, not
  ended before AS_OF) and the account's created_at.
* Labels, subscription mode (horizon h): the subscription held at AS_OF (its MRR) plus
  subscription ends and starts in [AS_OF, AS_OF + h); a start on or after AS_OF + h counts as
  "no restart". Usage, tickets and surveys never matter.
* Population, inactivity mode (inactivity_days q): usage events in [AS_OF - q, AS_OF) and
  created_at. Labels (horizon h): the account's last event day in [AS_OF - q, AS_OF), the
  event days in [AS_OF, AS_OF + h) (churn) and event quantities in [AS_OF - h, AS_OF) and
  [AS_OF, AS_OF + h) (expansion). So nothing before AS_OF - max(h, q) nor on or after
  AS_OF + h, and no subscription, ticket or survey, may change them.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from churnlens.engines import duckdb_backend
from churnlens.features.snapshots import SnapshotSpec, plan, snapshot_table
from churnlens.raw.loader import open_source
from churnlens.raw.mapping import Mapping
from churnlens.raw.validation import History, validate_history
from conftest import write_tables

Row = dict[str, Any]
Tables = dict[str, list[Row]]
Draw = Callable[..., Any]

AS_OF = date(2024, 3, 1)
AS_OF_DT = datetime(2024, 3, 1)
NOW = datetime(2030, 1, 1)
HISTORY_END = date(2025, 1, 1)
HORIZON = 90
LABEL_COLUMNS = ("churned", "expanded", "churn_day")
"""Every label column of a snapshot: what happened in the window, and when it churned."""

MONEY_EVENT = "api_call"
"""Read as money, so that the spend features are checked like the rest."""
SUBSCRIPTION_SPEC = SnapshotSpec(history_end=HISTORY_END, horizon_days=HORIZON,
                                 money_event=MONEY_EVENT)
INACTIVITY_SPEC = SnapshotSpec(history_end=HISTORY_END, churn_definition="inactivity",
                               inactivity_days=30, horizon_days=30, money_event=MONEY_EVENT)

EVENT_NAMES = ("dashboard_view", "workflow_run", "report_create", "integration_sync",
               "api_call", "export")
PLANS = ("starter", "growth", "enterprise")
PRIORITIES = ("low", "normal", "high", "urgent")
CATEGORIES = ("bug", "how_to", "billing", None)
BOUNDARY_DAYS = (-366, -365, -181, -180, -179, -91, -90, -89, -61, -60, -31, -30, -29, -8,
                 -7, -1, 0, 1, 29, 30, 31, 59, 60, 61, 89, 90, 91, 119, 120)
"""Day offsets from AS_OF where the look-back, label and grace windows have their edges."""


def _settings(examples: int) -> settings:
    """Each example loads a company and its changed copies once (~1 s) and runs the cached
    snapshot query on each."""
    return settings(max_examples=examples, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


_BACKEND: list[ibis.BaseBackend] = []


def _backend() -> ibis.BaseBackend:
    """One embedded DuckDB for the whole module (tables are replaced, never left to pile up)."""
    if not _BACKEND:
        _BACKEND.append(duckdb_backend(threads=2))
    return _BACKEND[0]


# --------------------------------------------------------------------------- strategies


def _day_offset(draw: Draw, lo: int, hi: int) -> int:
    """A day offset from AS_OF in [lo, hi): often the first or last day of the range (where a
    change is nearest to what it must not touch) or another window edge."""
    edges = [d for d in BOUNDARY_DAYS if lo <= d < hi]
    pick = draw(st.integers(0, 3))
    if pick == 0:
        return int(draw(st.sampled_from([lo, hi - 1])))
    if pick == 1 and edges:
        return int(draw(st.sampled_from(edges)))
    return int(draw(st.integers(lo, hi - 1)))


def _ts(draw: Draw, lo: int, hi: int) -> datetime:
    """A timestamp in [AS_OF + lo days, AS_OF + hi days), often at midnight or just before."""
    day = _day_offset(draw, lo, hi)
    moment = draw(st.one_of(
        st.sampled_from([timedelta(0), timedelta(microseconds=1),
                         timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999),
                         timedelta(hours=12)]),
        st.integers(0, 86_399).map(lambda s: timedelta(seconds=s))))
    return AS_OF_DT + timedelta(days=day) + moment


def _ts_in(draw: Draw, ranges: tuple[tuple[int, int], ...]) -> datetime:
    lo, hi = draw(st.sampled_from(ranges))
    return _ts(draw, lo, hi)


class _Ids:
    """Fresh row identifiers, never reused within one example."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.n = prefix, 0

    def __call__(self, kind: str) -> str:
        self.n += 1
        return f"{self.prefix}{kind}{self.n}"


def _account(account_id: str, created_at: datetime, draw: Draw) -> Row:
    return {"account_id": account_id, "name": f"Company {account_id}", "created_at": created_at,
            "industry": draw(st.sampled_from(["software", "retail", None])),
            "region": draw(st.sampled_from(["NA", "EMEA", None])),
            "csm": draw(st.sampled_from(["Jordan Lee", None]))}


def _sub_fields(draw: Draw) -> Row:
    return {"plan": draw(st.sampled_from(PLANS)),
            "seats": draw(st.one_of(st.just(0), st.integers(1, 40))),
            "mrr": float(draw(st.one_of(st.sampled_from([0.0, 100.0, 110.0, 500.0]),
                                        st.integers(0, 5000)))),
            "billing_period": draw(st.sampled_from(["monthly", "annual"]))}


def _sub_row(account_id: str, subscription_id: str, fields: Row, start: int,
             end: int | None) -> Row:
    return {"account_id": account_id, "subscription_id": subscription_id,
            "plan": fields["plan"], "seats": fields["seats"], "mrr": fields["mrr"],
            "billing_period": fields["billing_period"],
            "start_date": AS_OF + timedelta(days=start),
            "end_date": None if end is None else AS_OF + timedelta(days=end)}


def _sub_sequence(draw: Draw, account_id: str, floor: int, ids: list[str],
                  new_id: Callable[[str], str], min_periods: int = 0, max_periods: int = 4
                  ) -> list[Row]:
    """Consecutive, non-overlapping periods starting on or after day ``floor``.

    The first ``len(ids)`` periods reuse those identifiers (a modified row); the rest are new.
    """
    rows: list[Row] = []
    periods = draw(st.integers(min_periods, max_periods))
    start = floor + draw(st.one_of(st.just(0), st.integers(0, 120)))
    for i in range(periods):
        last = i == periods - 1
        edges = [d for d in BOUNDARY_DAYS if d > start]
        length = draw(st.one_of(
            st.sampled_from([1, 30, 90, 365]), st.integers(1, 300),
            *([st.sampled_from(edges).map(lambda d, s=start: d - s)] if edges else [])))
        end = None if last and draw(st.booleans()) else start + length
        sid = ids[i] if i < len(ids) else new_id("s")
        rows.append(_sub_row(account_id, sid, _sub_fields(draw), start, end))
        if end is None:
            break
        start = end + draw(st.one_of(st.sampled_from([0, 1, 29, 30, 31]), st.integers(0, 60)))
    return rows


def _event(draw: Draw, account_ids: list[str], ranges: tuple[tuple[int, int], ...]) -> Row:
    account = draw(st.sampled_from(account_ids))
    return {"account_id": account, "user_id": f"{account}-u{draw(st.integers(0, 3))}",
            "event_ts": _ts_in(draw, ranges), "event": draw(st.sampled_from(EVENT_NAMES)),
            "quantity": float(draw(st.sampled_from([0.0, 1.0, 1.0, 2.5, 20.0])))}


def _resolution(draw: Draw, created: datetime, floor: datetime) -> datetime | None:
    """None (still open) or a resolution time on or after ``max(created, floor)``."""
    if draw(st.booleans()):
        return None
    start = max(created, floor)
    return start + draw(st.one_of(
        st.just(timedelta(0)),
        st.sampled_from([timedelta(microseconds=1), timedelta(hours=8),
                         timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999)]),
        st.integers(0, 3000 * 3600).map(lambda s: timedelta(seconds=s))))


def _csat(draw: Draw) -> float | None:
    return draw(st.one_of(st.none(), st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0, 2.5])))


def _ticket(draw: Draw, ticket_id: str, account_ids: list[str],
            ranges: tuple[tuple[int, int], ...]) -> Row:
    created = _ts_in(draw, ranges)
    return {"ticket_id": ticket_id, "account_id": draw(st.sampled_from(account_ids)),
            "created_at": created, "resolved_at": _resolution(draw, created, created),
            "priority": draw(st.sampled_from(PRIORITIES)),
            "category": draw(st.sampled_from(CATEGORIES)), "csat": _csat(draw)}


def _survey(draw: Draw, response_id: str, account_ids: list[str],
            ranges: tuple[tuple[int, int], ...]) -> Row:
    account = draw(st.sampled_from(account_ids))
    return {"response_id": response_id, "account_id": account,
            "user_id": draw(st.sampled_from([f"{account}-u0", f"{account}-u1", None])),
            "responded_at": _ts_in(draw, ranges), "score": draw(st.integers(0, 10)),
            "comment": draw(st.sampled_from(["ok", None]))}


ANYWHERE = ((-400, 200),)


def _held_at_as_of(draw: Draw, account_id: str, new_id: Callable[[str], str]) -> list[Row]:
    """Periods of one account, one of them held at AS_OF (started before, not ended before).

    A third of them end late in the label window and may come back within the grace period,
    the new period starting across the window's far edge.
    """
    start = _day_offset(draw, -400, 0)
    shape = draw(st.integers(0, 2))
    end = (None if shape == 0 else _day_offset(draw, 0, 250) if shape == 1
           else draw(st.integers(HORIZON - 30, HORIZON - 1)))
    rows = [_sub_row(account_id, new_id("s"), _sub_fields(draw), start, end)]
    for _ in range(draw(st.integers(0, 2))):  # earlier periods
        previous_end = start - draw(st.one_of(st.sampled_from([0, 1, 30]), st.integers(0, 60)))
        start = previous_end - draw(st.one_of(st.sampled_from([1, 30, 365]),
                                              st.integers(1, 300)))
        rows.insert(0, _sub_row(account_id, new_id("s"), _sub_fields(draw), start,
                                previous_end))
    if end is not None:  # later periods
        gap = draw(st.one_of(st.sampled_from([0, 1, 29, 30, 31]), st.integers(0, 60)))
        rows += _sub_sequence(draw, account_id, end + gap, [], new_id, max_periods=2)
    return rows


@st.composite
def companies(draw: Draw) -> Tables:
    """3-6 accounts with subscriptions, usage, tickets and NPS spread around AS_OF."""
    new_id = _Ids("")
    n = draw(st.integers(3, 6))
    ids = [f"a{i}" for i in range(n)]
    # most accounts signed up before AS_OF and are customers at AS_OF
    accounts = [_account(a, _ts_in(draw, ((-500, 0),) * 7 + ((0, 20),)), draw) for a in ids]
    subscriptions: list[Row] = []
    for a in ids:
        if draw(st.integers(0, 2)):
            subscriptions += _held_at_as_of(draw, a, new_id)
        else:
            first = _day_offset(draw, -450, 150)
            subscriptions += _sub_sequence(draw, a, first, [], new_id, min_periods=1)
    # most events near AS_OF, so that accounts are active on both sides of it (inactivity
    # population and labels)
    events = [_event(draw, [a], ((-400, 200), (-45, 45), (-30, 30)))
              for a in ids for _ in range(draw(st.integers(1, 10)))]
    # history_span needs an event before AS_OF; it is a money event, which the plan requires
    events.append({**_event(draw, ids, ((-200, -1),)), "event": MONEY_EVENT})
    tickets = [_ticket(draw, new_id("t"), ids, ((-250, 200),))
               for _ in range(draw(st.integers(1, 12)))]
    surveys = [_survey(draw, new_id("r"), ids, ((-400, 200),))
               for _ in range(draw(st.integers(1, 10)))]
    return {"accounts": accounts, "subscriptions": subscriptions, "usage_events": events,
            "tickets": tickets, "surveys": surveys}


def _change_rows(draw: Draw, rows: list[Row], mutable: Callable[[Row], bool],
                 modify: Callable[[Row], Row], new: Callable[[], Row], max_new: int = 6
                 ) -> list[Row]:
    """Keep, delete or modify each mutable row; add a few new ones (at least one where none
    is left, see ``_at_least_one_sub``)."""
    out = []
    for row in rows:
        if not mutable(row):
            out.append(row)
            continue
        action = draw(st.sampled_from(["keep", "delete", "modify"]))
        if action == "keep":
            out.append(row)
        elif action == "modify":
            out.append(modify(row))
    out += [new() for _ in range(draw(st.integers(0 if out else 1, max_new)))]
    return out


def _change_subscriptions(draw: Draw, subscriptions: list[Row], account_ids: list[str],
                          cutoff: int, new_id: Callable[[str], str]) -> list[Row]:
    """Change every subscription fact dated on or after day ``cutoff``, keeping periods valid.

    Periods starting on or after the cutoff are kept, or replaced (ids reused: a modification;
    fewer: deletions; more: additions). The last period starting before the cutoff may get any
    end date on or after the cutoff, or none, if its end was not already before the cutoff.
    """
    out: list[Row] = []
    cut = AS_OF + timedelta(days=cutoff)
    for a in account_ids:
        mine = sorted((s for s in subscriptions if s["account_id"] == a),
                      key=lambda s: s["start_date"])
        past = [dict(s) for s in mine if s["start_date"] < cut]
        future = [s for s in mine if s["start_date"] >= cut]
        floor: int | None = cutoff
        if past:
            last = past[-1]
            if last["end_date"] is None or last["end_date"] >= cut:
                if draw(st.integers(0, 2)):
                    last["end_date"] = draw(st.one_of(
                        st.none(), st.just(cut),
                        st.builds(lambda d: AS_OF + timedelta(days=d),
                                  st.integers(cutoff, cutoff + 200))))
                if last["end_date"] is None:
                    floor = None
                else:
                    floor = max(cutoff, (last["end_date"] - AS_OF).days)
        out += past
        if floor is None:
            continue  # an open period before the cutoff: nothing may start after it
        floor_date = AS_OF + timedelta(days=floor)
        if all(s["start_date"] >= floor_date for s in future) and not draw(st.integers(0, 2)):
            out += future
        else:
            out += _sub_sequence(draw, a, floor, [s["subscription_id"] for s in future],
                                 new_id, max_periods=3)
    if not out:  # no period starts before the cutoff: a new one after it is a valid change
        out = _at_least_one_sub(draw, account_ids, cutoff, new_id)
    return out


def _at_least_one_sub(draw: Draw, account_ids: list[str], floor: int,
                      new_id: Callable[[str], str]) -> list[Row]:
    """One period on or after day ``floor``, for a table that would otherwise be empty.

    An empty table (or one whose every row is quarantined) makes ``validate_history`` fail its
    own pandera guard, so every generated table keeps at least one row.
    """
    start = floor + draw(st.integers(0, 120))
    end = None if draw(st.booleans()) else start + draw(st.integers(1, 300))
    return [_sub_row(draw(st.sampled_from(account_ids)), new_id("s"), _sub_fields(draw),
                     start, end)]


@st.composite
def future_changes(draw: Draw, company: Tables) -> Tables:
    """Add, modify or delete anything dated on or after AS_OF, and fill in the future side of
    older rows (an open subscription's end, an unresolved ticket's resolution and CSAT)."""
    new_id = _Ids("n")
    tables = copy.deepcopy(company)
    accounts = tables["accounts"]
    if draw(st.booleans()):  # a customer who signs up after AS_OF
        accounts.append(_account("n-new", _ts(draw, 0, 100), draw))
    ids = [a["account_id"] for a in accounts]
    future = ((0, 200),)

    tables["subscriptions"] = _change_subscriptions(draw, tables["subscriptions"], ids, 0,
                                                    new_id)

    def move_event(row: Row) -> Row:
        moved = _event(draw, ids, future)
        if draw(st.booleans()):  # same account and user, another time, name and quantity
            moved |= {"account_id": row["account_id"], "user_id": row["user_id"]}
        return moved

    tables["usage_events"] = _change_rows(
        draw, tables["usage_events"], lambda r: r["event_ts"] >= AS_OF_DT, move_event,
        lambda: _event(draw, ids, future), max_new=10)

    def future_ticket(row: Row) -> Row:
        return _ticket(draw, row["ticket_id"], ids, future)

    def resolve_later(row: Row) -> Row:
        return {**row, "resolved_at": _resolution(draw, row["created_at"], AS_OF_DT),
                "csat": _csat(draw)}

    tickets = _change_rows(draw, tables["tickets"], lambda r: r["created_at"] >= AS_OF_DT,
                           future_ticket, lambda: _ticket(draw, new_id("t"), ids, future))
    tables["tickets"] = [
        resolve_later(t) if (t["created_at"] < AS_OF_DT
                             and (t["resolved_at"] is None or t["resolved_at"] >= AS_OF_DT)
                             and draw(st.booleans())) else t
        for t in tickets]

    tables["surveys"] = _change_rows(
        draw, tables["surveys"], lambda r: r["responded_at"] >= AS_OF_DT,
        lambda row: _survey(draw, row["response_id"], ids, future),
        lambda: _survey(draw, new_id("r"), ids, future))
    return tables


@st.composite
def changes_outside_label_window(draw: Draw, company: Tables, sub_cutoff: int | None,
                                 event_ranges: tuple[tuple[int, int], ...]) -> Tables:
    """Changes the labels must not see.

    Subscriptions: every fact dated on or after day ``sub_cutoff`` (``None``: every
    subscription). Usage events: rows whose time is in ``event_ranges`` (day offsets
    ``[lo, hi)``), moved or added only within them. Tickets and surveys: anything.
    """
    new_id = _Ids("o")
    tables = copy.deepcopy(company)
    ids = [a["account_id"] for a in tables["accounts"]]
    cutoff = -500 if sub_cutoff is None else sub_cutoff
    tables["subscriptions"] = _change_subscriptions(draw, tables["subscriptions"], ids, cutoff,
                                                    new_id)

    def in_ranges(row: Row) -> bool:
        day = (row["event_ts"].date() - AS_OF).days
        return any(lo <= day < hi for lo, hi in event_ranges)

    events = _change_rows(draw, tables["usage_events"], in_ranges,
                          lambda row: _event(draw, ids, event_ranges),
                          lambda: _event(draw, ids, event_ranges), max_new=10)
    tables["usage_events"] = events
    tables["tickets"] = _change_rows(draw, tables["tickets"], lambda r: True,
                                     lambda row: _ticket(draw, row["ticket_id"], ids, ANYWHERE),
                                     lambda: _ticket(draw, new_id("t"), ids, ANYWHERE))
    tables["surveys"] = _change_rows(
        draw, tables["surveys"], lambda r: True,
        lambda row: _survey(draw, row["response_id"], ids, ANYWHERE),
        lambda: _survey(draw, new_id("r"), ids, ANYWHERE))
    return tables


# --------------------------------------------------------------------------- building
#
# Validating a company costs ~0.5 s and compiling the snapshot expression ~0.7 s, nearly all of
# it Ibis building SQL; running that SQL on a tiny company takes ~0.05 s. So each example
# validates a company and all its changed copies in one load, each copy a separate "universe"
# whose identifiers carry its own prefix (validation judges rows, keys and accounts one by
# one, so the universes cannot touch), and the snapshot is built for one universe at a time
# over views that show only that universe's rows. The snapshot SQL depends only on the spec,
# AS_OF, the tables present and their types, all fixed here, and reads the views by name, so
# it is compiled once per spec and re-run after the views are pointed at the next universe.
# ``test_the_cached_query_is_a_fresh_build`` checks that this path gives exactly what
# ``snapshot_table(history.tables, ...).execute()`` gives on a company loaded alone.

TABLES = ("accounts", "subscriptions", "usage_events", "tickets", "surveys")
SEP = "~"
PREFIXED = {"accounts": ("account_id",), "subscriptions": ("account_id", "subscription_id"),
            "usage_events": ("account_id", "user_id"), "tickets": ("ticket_id", "account_id"),
            "surveys": ("response_id", "account_id", "user_id")}

_QUERIES: dict[SnapshotSpec, tuple[ir.Table, tuple[str, ...], str]] = {}
"""Per spec: the snapshot expression over the ``leak_<table>`` views, its features, its SQL."""


def _tagged(tables: Tables, tag: str) -> Tables:
    return {name: [{k: f"{tag}{SEP}{v}" if k in PREFIXED[name] and v is not None else v
                    for k, v in row.items()} for row in rows]
            for name, rows in tables.items()}


def _load(folder: Path, universes: list[Tables]) -> History:
    """Write and validate the universes as one company; the contract must hold, so nothing
    is quarantined. Each table's clean rows are then kept as ``leak_all_<table>``."""
    merged = {name: [row for n, u in enumerate(universes) for row in _tagged(u, f"u{n}")[name]]
              for name in TABLES}
    write_tables(folder, merged)
    backend = _backend()
    history = validate_history(open_source(folder, Mapping(), backend=backend), now=NOW)
    bad = {name: [(i.rule, i.column, i.examples) for i in report.issues]
           for name, report in history.report.tables.items() if report.rows_quarantined}
    assert not bad, f"the generated company breaks the contract: {bad}"
    assert set(history.tables) == set(TABLES)
    for name, table in history.tables.items():
        backend.create_table(f"leak_all_{name}", table, temp=True,  # type: ignore[attr-defined]
                             overwrite=True)
    return history


def _show(backend: ibis.BaseBackend, universe: int) -> dict[str, ir.Table]:
    """Point the ``leak_<table>`` views at one universe's rows."""
    for name in TABLES:
        backend.raw_sql(  # type: ignore[attr-defined]
            f"CREATE OR REPLACE TEMP VIEW leak_{name} AS SELECT * FROM leak_all_{name} "
            f"WHERE starts_with(account_id, 'u{universe}{SEP}')")
    return {name: backend.table(f"leak_{name}") for name in TABLES}


def _untagged(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(account_id=frame.account_id.str.split(SEP, n=1).str[1])
    return frame.sort_values("account_id").reset_index(drop=True)


def _snapshot(backend: ibis.BaseBackend, tables: dict[str, ir.Table], spec: SnapshotSpec
              ) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The snapshot at AS_OF of the universe the views show, and the feature names."""
    if spec not in _QUERIES:
        p = plan(tables, spec, dates=[AS_OF])
        # the features generated from the event vocabulary are compared like the rest
        assert p.generated and set(p.generated) <= set(p.features)
        # one query: the compiled SQL is re-run over the views after they move
        expr = snapshot_table(tables, backend, spec, p, materialize=False)
        expr.execute()  # registers the expression's in-memory tables; the cache keeps them
        _QUERIES[spec] = (expr, p.features, str(backend.compile(expr)))
    _, features, sql = _QUERIES[spec]
    frame = backend.raw_sql(sql).df()  # type: ignore[attr-defined]
    return _untagged(frame), features


def _build(folder: Path, universes: list[Tables], specs: tuple[SnapshotSpec, ...]
           ) -> list[list[tuple[pd.DataFrame, tuple[str, ...]]]]:
    """Per universe, per spec: the snapshot at AS_OF and the feature names."""
    history = _load(folder, universes)
    out = []
    for n in range(len(universes)):
        tables = _show(history.backend, n)
        out.append([_snapshot(history.backend, tables, spec) for spec in specs])
    return out


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _same(a: Any, b: Any) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    if (isinstance(a, numbers.Real) and isinstance(b, numbers.Real)
            and not isinstance(a, bool) and not isinstance(b, bool)):
        # the same rows may be summed in another order: allow only rounding noise
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def _as_python(value: Any) -> Any:
    """A frame cell as a plain Python value; a midnight timestamp (a date column) as a date."""
    if isinstance(value, datetime):
        stamp = pd.Timestamp(value)
        return stamp.date() if stamp == stamp.normalize() else stamp
    return value.item() if hasattr(value, "item") else value


def _assert_unchanged(before: pd.DataFrame, after: pd.DataFrame, columns: tuple[str, ...],
                      what: str) -> None:
    population = list(before.account_id), list(after.account_id)
    assert population[0] == population[1], (
        f"the snapshot population at {AS_OF} changed: {population[0]} -> {population[1]}")
    assert {_as_python(v) for v in after.as_of} <= {AS_OF}
    diffs = []
    for column in columns:
        for account, a, b in zip(before.account_id, before[column], after[column], strict=True):
            a, b = _as_python(a), _as_python(b)
            if not _same(a, b):
                diffs.append(f"{column}[{account}]: {a!r} -> {b!r}")
    assert not diffs, f"{what} changed:\n  " + "\n  ".join(diffs)


def _diff_tables(before: Tables, after: Tables) -> str:
    """The rows a change touched, for the failure message."""
    lines = []
    for name in before:
        old = [r for r in before[name] if r not in after[name]]
        new = [r for r in after[name] if r not in before[name]]
        lines += [f"{name} - {r}" for r in old] + [f"{name} + {r}" for r in new]
    return "\n".join(lines)


VARIANTS = 5
"""Changed copies of each generated company, all validated in the company's load (more for
the label properties, whose snapshots are cheaper: one spec instead of two)."""

Family = tuple[Tables, list[Tables]]


@st.composite
def _family(draw: Draw, change: Callable[[Tables], st.SearchStrategy[Tables]],
            variants: int = VARIANTS) -> Family:
    company = draw(companies())
    return company, [draw(change(company)) for _ in range(variants)]


def _check(tmp_path_factory: pytest.TempPathFactory, family: Family,
           specs: tuple[SnapshotSpec, ...], compare: Callable[[tuple[str, ...]], tuple[str, ...]],
           what: str) -> None:
    company, variants = family
    before, *afters = _build(tmp_path_factory.mktemp("leak"), [company, *variants], specs)
    for spec, (frame, _) in zip(specs, before, strict=True):
        size = len(frame)
        event(f"{spec.churn_definition} population at AS_OF: {size if size < 3 else '3+'}")
        assert frame.labelled.all(), "AS_OF + horizon is before HISTORY_END: labels are set"
    for n, (changed, after) in enumerate(zip(variants, afters, strict=True)):
        for spec, (old, features), (new, _) in zip(specs, before, after, strict=True):
            try:
                _assert_unchanged(old, new, compare(features), what)
            except AssertionError as error:
                raise AssertionError(
                    f"{spec.churn_definition} mode, change {n}: {error}\nchange:\n"
                    f"{_diff_tables(company, changed)}") from None


# --------------------------------------------------------------------------- properties


@_settings(10)
@given(family=_family(future_changes))
def test_features_do_not_see_the_future(tmp_path_factory: pytest.TempPathFactory,
                                        family: Family) -> None:
    """Every feature and the population at AS_OF, in both churn definitions, ignore any change
    to rows dated on or after AS_OF and to the not-yet-known side of older rows."""
    _check(tmp_path_factory, family, (SUBSCRIPTION_SPEC, INACTIVITY_SPEC), lambda names: names,
           "features at AS_OF")


@_settings(10)
@given(family=_family(lambda company: changes_outside_label_window(
    company, sub_cutoff=HORIZON, event_ranges=ANYWHERE), variants=VARIANTS + 2))
def test_subscription_labels_see_only_their_window(tmp_path_factory: pytest.TempPathFactory,
                                                   family: Family) -> None:
    """Churned, expanded and churn_day (subscription mode, 90-day horizon) ignore
    subscription starts and ends on or after AS_OF + 90 days and any usage, ticket or
    survey."""
    _check(tmp_path_factory, family, (SUBSCRIPTION_SPEC,), lambda _: LABEL_COLUMNS,
           "labels at AS_OF")


INACTIVITY_OUTSIDE = ((-400, -30), (30, 200))
"""Before AS_OF - max(horizon, inactivity_days) = AS_OF - 30 days, or on or after
AS_OF + horizon = AS_OF + 30 days."""


@_settings(10)
@given(family=_family(lambda company: changes_outside_label_window(
    company, sub_cutoff=None, event_ranges=INACTIVITY_OUTSIDE), variants=VARIANTS + 2))
def test_inactivity_labels_see_only_their_window(tmp_path_factory: pytest.TempPathFactory,
                                                 family: Family) -> None:
    """Churned, expanded and churn_day (inactivity mode, 30-day horizon and inactivity) ignore usage
    events before AS_OF - 30 days or on or after AS_OF + 30 days, and every subscription,
    ticket and survey."""
    _check(tmp_path_factory, family, (INACTIVITY_SPEC,), lambda _: LABEL_COLUMNS,
           "labels at AS_OF")


@_settings(1)
@given(company=companies(), other=companies())
def test_the_cached_query_is_a_fresh_build(tmp_path_factory: pytest.TempPathFactory,
                                           company: Tables, other: Tables) -> None:
    """The path the properties take (one universe among others, seen through views, by SQL
    compiled once in ``_QUERIES``) gives exactly what ``snapshot_table(...).execute()`` gives
    on the company validated alone, so no property reads a stale or a foreign table."""
    ours = _build(tmp_path_factory.mktemp("cached"), [other, company],
                  (SUBSCRIPTION_SPEC, INACTIVITY_SPEC))[1]
    folder = tmp_path_factory.mktemp("fresh")
    write_tables(folder, company)
    history = validate_history(open_source(folder, Mapping(), backend=_backend()), now=NOW)
    for spec, (cached, features) in zip((SUBSCRIPTION_SPEC, INACTIVITY_SPEC), ours,
                                        strict=True):
        p = plan(history.tables, spec, dates=[AS_OF])
        fresh = snapshot_table(history.tables, history.backend, spec, p).execute()
        fresh = fresh.sort_values("account_id").reset_index(drop=True)
        assert list(fresh.columns) == list(cached.columns)
        _assert_unchanged(fresh, cached, (*features, "as_of", "churned", "expanded",
                                          "labelled", "churn_day"), "the cached query's result")
