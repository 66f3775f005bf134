"""A minute of steady load on `churnlens serve --workers 2` with the champion promoted half
way: no request fails, the answers switch model version, and no worker's memory grows.

The load itself is bench/load.py's (run it for ten minutes there).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import load
from conftest import FAST_TRAIN

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_minute_of_load_through_a_hot_swap(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAST_TRAIN.items():  # bench/load.py's commands inherit the environment
        monkeypatch.setenv(key, value)
    home = tmp_path / "home"
    runs = load.prepare_home(home, accounts=300, months=16)
    report = load.load_test(home, runs, seconds=60, rate=60)

    assert report.requests == 60 * 60
    assert report.failed == 0, report.failures
    assert report.swap_seconds is not None, "the champion was never promoted"
    assert set(report.versions) == set(runs), report.versions  # both models answered
    assert report.promoted != report.served_first
    assert set(report.versions_after_swap) == {report.promoted}, report.versions_after_swap
    assert not report.workers_replaced, "a worker died (or missed uvicorn's health check)"
    assert len(report.rss_growth) == 2, "RSS of both workers"
    # the swapped-in champion's table is explained in the worker (drivers, improvements: a
    # model pass per lever), and what the old one freed stays in the allocator's arenas; a
    # leak on every request would grow far more over the minute's 3,600 answers
    assert max(report.rss_growth.values()) < 0.15, report.summary()
