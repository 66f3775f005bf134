"""Snapshots follow the raw data: a finished snapshot is reused only while the rows it read are
unchanged, and an incremental build always equals a full one.

A tiny company of three accounts with events every few days from January to August 2023,
monthly snapshots (February to August) and a 30-day horizon, so most of them are finished.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from churnlens.features import store
from churnlens.features.pipeline import FeatureRun, build_features, read_snapshots
from churnlens.features.snapshots import SnapshotSpec
from churnlens.raw.loader import open_source
from churnlens.raw.mapping import Mapping
from churnlens.raw.validation import History, validate_history
from conftest import NOW, tiny_tables, write_tables

SPEC = SnapshotSpec(horizon_days=30)
DATES = tuple(date(2023, month, 1) for month in range(2, 9))

Rows = dict[str, list[dict[str, Any]]]


def _company() -> Rows:
    """The tiny company with events every 4 to 6 days until 2023-08-30, its third
    account created on 2023-03-15 (after the horizon of February's snapshot)."""
    tables: Rows = tiny_tables()
    tables["accounts"][2]["created_at"] = datetime(2023, 3, 15, 8)
    tables["subscriptions"][3]["start_date"] = date(2023, 3, 15)
    events = []
    for step, (account, first) in enumerate([("a1", datetime(2023, 1, 6)),
                                             ("a2", datetime(2023, 2, 11)),
                                             ("a3", datetime(2023, 3, 16))]):
        day = first
        while day < datetime(2023, 8, 30):
            events.append({"account_id": account, "user_id": f"{account}-u{day.day % 2 + 1}",
                           "event_ts": day + timedelta(hours=10),
                           "event": ("workflow_run", "dashboard_view", "report_create")[
                               day.day % 3],
                           "quantity": 1.0})
            day += timedelta(days=4 + step)
    # the last event: the history ends on August 31, the end of August's horizon
    events.append({"account_id": "a1", "user_id": "a1-u1", "event_ts": datetime(2023, 8, 30, 10),
                   "event": "workflow_run", "quantity": 1.0})
    tables["usage_events"] = events
    return tables


def _build(folder: Path, tables: Rows) -> tuple[FeatureRun, History]:
    """Write ``tables`` as the raw history under ``folder`` and build features beside it."""
    write_tables(folder / "raw", tables)
    history = validate_history(open_source(folder / "raw", Mapping()), now=NOW)
    return build_features(history, SPEC, folder / "features"), history


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The company's raw history and features, built once for the module."""
    folder = tmp_path_factory.mktemp("lineage") / "home"
    run, _ = _build(folder, _company())
    assert run.plan.dates == DATES and set(run.computed) == set(DATES)
    return folder


def _copy(built: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    shutil.copytree(built, folder, symlinks=True)
    return folder


def _digests(folder: Path) -> dict[str, str]:
    root = folder / "features" / store.SNAPSHOTS
    return {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet"))}


def _same_as_a_full_build(folder: Path, history: History, tmp_path: Path) -> None:
    """A full build, with the store's event vocabulary (kept from its first build), gives
    the same files."""
    fresh = tmp_path / "fresh"
    (fresh / "features").mkdir(parents=True)
    shutil.copy(folder / "features" / "manifest.json", fresh / "features" / "manifest.json")
    build_features(history, SPEC, fresh / "features", full=True)
    assert _digests(folder) == _digests(fresh)


def _reasons(run: FeatureRun) -> dict[str, set[date]]:
    grouped: dict[str, set[date]] = {}
    for as_of, why in run.reasons.items():
        grouped.setdefault(why, set()).add(as_of)
    return grouped


def _event_on_or_after(tables: Rows, account: str, day: date) -> int:
    return next(i for i, e in enumerate(tables["usage_events"])
                if e["account_id"] == account and e["event_ts"].date() >= day)


def test_appended_days_leave_finished_snapshots_untouched(tmp_path: Path) -> None:
    """New days, a subscription ended and a ticket resolved in them: the snapshots finished
    before are linked as they were, none computed again."""
    folder, later = tmp_path / "home", _company()
    earlier = {**later, "usage_events": [e for e in later["usage_events"]
                                         if e["event_ts"] < datetime(2023, 6, 20)]}
    first, _ = _build(folder, earlier)
    finished = {d for d in first.plan.dates if d + timedelta(days=30) <= date(2023, 6, 20)}
    assert finished == {date(2023, m, 1) for m in (2, 3, 4, 5)}
    before = _digests(folder)
    inodes = {d: (store.partition_dir(folder / "features", d) / store.PART).stat().st_ino
              for d in finished}

    later["subscriptions"] = [{**s, "end_date": date(2023, 8, 15)} if s["subscription_id"] == "s4"
                              else s for s in later["subscriptions"]]
    later["tickets"] = [{**t, "resolved_at": datetime(2023, 8, 2, 9), "csat": 2.0}
                        if t["ticket_id"] == "t2" else t for t in later["tickets"]]
    again, history = _build(folder, later)

    assert set(again.reused) == finished and not set(again.computed) & finished
    assert again.rebuilt_for_data == () and again.report["rebuilt"].get(
        store.DATA_CHANGED) is None
    after = _digests(folder)
    assert all(after[f"as_of={d}"] == before[f"as_of={d}"] for d in finished)
    assert all((store.partition_dir(folder / "features", d) / store.PART).stat().st_ino == inode
               for d, inode in inodes.items())
    _same_as_a_full_build(folder, history, tmp_path)


@pytest.mark.parametrize("change", ["corrected", "removed"])
def test_a_changed_past_usage_row_rebuilds_exactly_the_snapshots_that_read_it(
        change: str, built: Path, tmp_path: Path) -> None:
    """An event of 2023-04-1x is read by the features of every later snapshot and by the
    labels of 2023-04-01 (horizon April 1-30): those are rebuilt, February and March reused."""
    folder, tables = _copy(built, tmp_path), _company()
    index = _event_on_or_after(tables, "a1", date(2023, 4, 10))
    assert tables["usage_events"][index]["event_ts"].date() < date(2023, 4, 30)
    events = list(tables["usage_events"])
    if change == "corrected":
        events[index] = {**events[index], "quantity": 3.0}
    else:
        del events[index]
    tables = {**tables, "usage_events": events}

    run, history = _build(folder, tables)

    assert _reasons(run) == {store.REUSED: {date(2023, 2, 1), date(2023, 3, 1)},
                             store.DATA_CHANGED: set(DATES[2:])}
    assert run.report["rebuilt"] == {store.DATA_CHANGED: 5}
    assert [e["built"] for e in run.report["dates"]][1:3] == [store.REUSED, store.DATA_CHANGED]
    _same_as_a_full_build(folder, history, tmp_path)


@pytest.mark.parametrize(("account", "rebuilt"), [
    ("a1", set(DATES)),  # created 2023-01-05: in every snapshot
    ("a3", set(DATES[1:])),  # created 2023-03-15: in every later snapshot, and March's labels
])
def test_a_changed_account_row_rebuilds_every_snapshot_holding_the_account(
        account: str, rebuilt: set[date], built: Path, tmp_path: Path) -> None:
    folder, tables = _copy(built, tmp_path), _company()
    tables = {**tables, "accounts": [{**a, "region": "LATAM"} if a["account_id"] == account
                                     else a for a in tables["accounts"]]}

    run, history = _build(folder, tables)

    assert set(run.rebuilt_for_data) == rebuilt
    assert set(run.reused) == set(DATES) - rebuilt
    frame = read_snapshots(folder / "features").to_pandas()
    assert set(frame.loc[frame["account_id"] == account, "region"]) == {"LATAM"}
    if run.reused:
        _same_as_a_full_build(folder, history, tmp_path)


def test_a_subscription_ended_in_the_past_rebuilds_from_its_end(built: Path, tmp_path: Path
                                                                ) -> None:
    """An end recorded late (2023-05-20) is read by May's labels and every later snapshot;
    the snapshots that saw the subscription running before are reused."""
    folder, tables = _copy(built, tmp_path), _company()
    tables = {**tables, "subscriptions": [
        {**s, "end_date": date(2023, 5, 20)} if s["subscription_id"] == "s4" else s
        for s in tables["subscriptions"]]}

    run, history = _build(folder, tables)

    assert set(run.rebuilt_for_data) == {date(2023, m, 1) for m in (5, 6, 7, 8)}
    assert set(run.reused) == {date(2023, m, 1) for m in (2, 3, 4)}
    _same_as_a_full_build(folder, history, tmp_path)


def test_a_history_cut_short_reopens_what_it_no_longer_labels(tmp_path: Path) -> None:
    """No event from July 21 to August 14: removing the later ones ends the history on July 21,
    so July's horizon (to July 30) is no longer whole, although no row it read changed."""
    folder, tables = tmp_path / "home", _company()
    tables["usage_events"] = [e for e in tables["usage_events"]
                              if not datetime(2023, 7, 21) <= e["event_ts"] < datetime(2023, 8, 15)]
    _build(folder, tables)
    tables = {**tables, "usage_events": [e for e in tables["usage_events"]
                                         if e["event_ts"] < datetime(2023, 7, 21)]}

    run, history = _build(folder, tables)

    assert run.plan.dates == DATES[:-1]
    assert run.reasons[date(2023, 7, 1)] == store.OPEN
    assert set(run.reused) == set(DATES[:-2])
    _same_as_a_full_build(folder, history, tmp_path)
