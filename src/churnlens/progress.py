"""Stage-by-stage progress of a long command (``churnlens train``), with rich.

Training a real company takes minutes; a command that prints nothing for that long looks
hung. :class:`Stages` prints one line per finished stage with the seconds it took, so the
output says where the time went even in a log file, and on a terminal a spinner names the
running stage. ``--json`` commands never create one: their output is the JSON alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.status import Status


def elapsed(seconds: float) -> str:
    """``0.4 s``, ``12.3 s``, ``2 min 05 s``: short, and exact enough to see a slow stage."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


class Stages:
    """Call it with a stage's name when the stage starts; the previous stage is printed as
    finished, with its elapsed time. Leaving the ``with`` block finishes the last stage and
    prints the total."""

    def __init__(self, console: Console, what: str,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.console = console
        self.what = what
        self.clock = clock
        self._status: Status | None = None
        self._stage: str | None = None
        self._stage_started = 0.0
        self._started = 0.0

    def __enter__(self) -> Stages:
        self._started = self._stage_started = self.clock()
        self._status = self.console.status(f"{self.what}...")
        self._status.start()
        return self

    def __call__(self, stage: str) -> None:
        self._finish()
        self._stage, self._stage_started = stage, self.clock()
        if self._status is not None:
            self._status.update(f"{self.what}: {stage}...")

    def _finish(self) -> None:
        if self._stage is not None:
            took = elapsed(self.clock() - self._stage_started)
            self.console.print(f"  [green]done[/] {self._stage} [dim]({took})[/]",
                               highlight=False)
            self._stage = None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self._finish()
        elif self._stage is not None:
            self.console.print(f"  [red]stopped[/] {self._stage} [dim]"
                               f"({elapsed(self.clock() - self._stage_started)})[/]",
                               highlight=False)
        if self._status is not None:
            self._status.stop()
        if kind is None:
            self.console.print(f"{self.what} took {elapsed(self.clock() - self._started)}",
                               highlight=False)
