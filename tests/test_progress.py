"""Stage-by-stage progress: each finished stage is printed with its elapsed time."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from churnlens.progress import Stages, elapsed


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=60, force_terminal=False, color_system=None), out


def test_each_stage_is_printed_with_its_time_when_the_next_starts() -> None:
    console, out = _console()
    clock = Clock()
    with Stages(console, "Training", clock=clock) as stages:
        stages("loading the snapshots")
        clock.now += 2.5
        stages("fitting churn")
        clock.now += 125
        assert out.getvalue().splitlines() == ["  done loading the snapshots (2.5 s)"]
    assert out.getvalue().splitlines() == ["  done loading the snapshots (2.5 s)",
                                           "  done fitting churn (2 min 05 s)",
                                           "Training took 2 min 08 s"]


def test_a_failed_stage_says_where_it_stopped() -> None:
    console, out = _console()
    clock = Clock()
    with pytest.raises(ValueError), Stages(console, "Training", clock=clock) as stages:
        stages("fitting churn")
        clock.now += 1
        raise ValueError("no churners")
    assert out.getvalue().splitlines() == ["  stopped fitting churn (1.0 s)"]


@pytest.mark.parametrize(("seconds", "text"), [(0.04, "0.0 s"), (59.94, "59.9 s"),
                                               (60, "1 min 00 s"), (3725, "62 min 05 s")])
def test_elapsed_reads_short(seconds: float, text: str) -> None:
    assert elapsed(seconds) == text
