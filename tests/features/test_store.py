"""Snapshot storage: byte-identical reruns, incremental builds, crash safety."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

from churnlens.features import store
from churnlens.features.pipeline import build_features, read_snapshots
from churnlens.features.snapshots import SnapshotSpec
from churnlens.raw.loader import open_source
from churnlens.raw.mapping import Mapping
from churnlens.raw.validation import validate_history
from churnlens.synth import CompanyConfig, generate_company
from conftest import NOW


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("company") / "raw"
    generate_company(CompanyConfig(accounts=120, months=8, seed=4, rollouts=2), out)
    return out


def _history(folder: Path):  # type: ignore[no-untyped-def]
    return validate_history(open_source(folder, Mapping()), now=NOW.replace(year=2030))


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / store.SNAPSHOTS).rglob("*.parquet"))}


def test_rebuild_is_byte_identical(company: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    build_features(_history(company), SnapshotSpec(), first)
    build_features(_history(company), SnapshotSpec(), second, full=True)
    assert _digests(first) == _digests(second)
    assert len(_digests(first)) == 8  # Feb..Sep 2023: one partition per month start


def test_rerun_reuses_final_partitions_and_recomputes_open_ones(company: Path,
                                                                tmp_path: Path) -> None:
    root = tmp_path / "features"
    run = build_features(_history(company), SnapshotSpec(), root)
    assert run.reused == ()
    before = _digests(root)
    again = build_features(_history(company), SnapshotSpec(), root)
    open_dates = {d for d in run.plan.dates
                  if (date.fromordinal(d.toordinal() + 90) > run.plan.history_end)}
    assert set(again.computed) == open_dates
    assert set(again.reused) == set(run.plan.dates) - open_dates
    assert _digests(root) == before
    full = build_features(_history(company), SnapshotSpec(), root, full=True)
    assert full.reused == () and _digests(root) == before


def test_changed_settings_rebuild_everything(company: Path, tmp_path: Path) -> None:
    root = tmp_path / "features"
    build_features(_history(company), SnapshotSpec(), root)
    run = build_features(_history(company), SnapshotSpec(horizon_days=60), root)
    assert run.reused == ()


def test_a_crash_mid_swap_leaves_the_previous_good_output(company: Path, tmp_path: Path) -> None:
    root = tmp_path / "features"
    build_features(_history(company), SnapshotSpec(), root)
    good = _digests(root)
    # simulate a crash after the old output was moved aside, before the new one moved in
    (root / store.SNAPSHOTS).rename(root / f".{store.SNAPSHOTS}.previous")
    (root / f".{store.SNAPSHOTS}.staging-999").mkdir()
    store.recover(root)
    assert _digests(root) == good
    assert not list(root.glob(".snapshots.*"))


def test_a_crash_mid_build_leaves_the_previous_build_live(company: Path, tmp_path: Path) -> None:
    root = tmp_path / "features"
    build_features(_history(company), SnapshotSpec(), root)
    good, live = _digests(root), (root / store.SNAPSHOTS).resolve()
    # a build killed after writing some partitions and its link, before the swap
    half = root / ".snapshots-1-999"
    (half / "as_of=2023-02-01").mkdir(parents=True)
    (half / "as_of=2023-02-01" / store.PART).write_bytes(b"PAR1 cut")
    (root / ".snapshots.link-999").symlink_to(half.name)
    assert _digests(root) == good and store.read_manifest(root) is not None
    store.recover(root)
    assert _digests(root) == good
    assert [p.name for p in root.glob(".snapshots*")] == [live.name]


def test_snapshots_have_one_row_per_account_and_date(company: Path, tmp_path: Path) -> None:
    root = tmp_path / "features"
    build_features(_history(company), SnapshotSpec(), root)
    frame = read_snapshots(root).to_pandas()
    assert not frame.duplicated(["account_id", "as_of"]).any()
    assert frame["labelled"].any() and not frame["labelled"].all()
    assert frame.loc[~frame["labelled"], "churned"].isna().all()


@pytest.mark.parametrize("as_of_days", [
    [19000, 19031, 19400, 20200],
    # monthly: the cut 30 days before 2022-03-01 falls 2 days before 2022-02-01
    [19024, 19052, 19083, 19113],
    # 3 days apart: each one's cut falls inside the other's 7-day tail, so both are cut
    [19000, 19003],
], ids=["far apart", "monthly", "3 days apart"])
def test_buckets_tile_every_window_and_stay_short(as_of_days: list[int]) -> None:
    """Every window of every snapshot is exactly a run of whole buckets, none over 63 days,
    or, for a tail window, the last days of the one bucket that ends at as_of."""
    from churnlens.features.sources import (
        MAX_BUCKET_DAYS,
        TAIL_WINDOWS,
        USAGE_WINDOWS,
        bucket_windows,
    )

    buckets = bucket_windows(as_of_days, USAGE_WINDOWS, TAIL_WINDOWS)
    calendar = buckets.calendar.execute()
    assert calendar["offset"].max() < MAX_BUCKET_DAYS
    membership = buckets.membership.execute()
    day_bucket = dict(zip(calendar["day"], calendar["bucket"], strict=True))
    # a tail day is one whose bit in a day mask reaches its bucket's tail bit
    tail_bit = dict(zip(*buckets.ends.execute()[["bucket", "tail_bit"]].T.values, strict=True))
    tail_days = {day for day, bucket, offset in calendar[["day", "bucket", "offset"]].values
                 if 1 << int(offset) >= tail_bit[bucket]}
    for as_of_day in as_of_days:
        mine = membership[membership["as_of_day"] == as_of_day]
        for name, (start, end) in USAGE_WINDOWS.items():
            days = range(as_of_day - end, as_of_day - start)
            expected = {day_bucket[d] for d in days}
            if name in TAIL_WINDOWS and (mine[f"{name}_tail"] == 1).any():
                assert len(expected) == 1 and set(days) <= tail_days, (as_of_day, name)
                assert set(mine.loc[mine[f"{name}_tail"] == 1, "bucket"]) == expected
                assert (mine[name] == 0).all()
                continue
            assert set(mine.loc[mine[name] == 1, "bucket"]) == expected, (as_of_day, name)
            assert (mine[f"{name}_first"] == min(expected)).all()
            if name in TAIL_WINDOWS:
                assert (mine[f"{name}_tail"] == 0).all()
