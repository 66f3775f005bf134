"""How a server process comes to serve a model and keeps serving the newest one: load the
champion at start, build a missing score table in the background, swap in a new champion when
its bundle is exported (and the newest snapshot when ``churnlens features`` built one, and a
score table that ``churnlens score`` rewrote), and compute the portfolio KPIs once across
workers.

A swap replaces one reference (``Runtime.served``): requests in flight finish on the model they
started with.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from churnlens.features.kpis import compute_report, read_report
from churnlens.features.store import SNAPSHOTS
from churnlens.raw.history import load_history
from churnlens.serving.api.deps import Serving, freshness_of, without_paths
from churnlens.serving.freshness import history_of, written_at
from churnlens.serving.state import Served, build_table, load_served, read_table, table_path
from churnlens.settings import Settings
from churnlens.training.bundle import BundleError

logger = logging.getLogger("churnlens.serving")


def install(state: Serving, served: Served) -> None:
    """Serve ``served`` from now on; build its score table in the background if it has none."""
    metrics, runtime = state.metrics, state.runtime
    with state.reload_lock:
        metrics.model.clear()
        metrics.model.labels(served.version, served.as_of.isoformat()).set(1)
        metrics.psi.clear()
        for feature, value in served.drift.psi.items():
            metrics.psi.labels(feature).set(value)
        runtime.served = served  # one reference swap: requests in flight keep the old one
        runtime.history_end, runtime.grid = served.history_end, served.grid
        runtime.problem = None
    if served.table is None:
        threading.Thread(target=complete, args=(state, served), daemon=True,
                         name="score-table").start()


def complete(state: Serving, served: Served) -> None:
    """Build the missing score table, once across workers, then swap it in."""
    settings, runtime = state.settings, state.runtime
    settings.layout.scores.mkdir(parents=True, exist_ok=True)
    try:
        with open(settings.layout.scores / ".build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it now
            if runtime.served is not served:
                return  # a newer champion or snapshot: its own load builds its table
            done = build_table(served, settings)  # reads it if that worker wrote it
        with state.reload_lock:
            current = runtime.served
            if current is not None and (current.version, current.as_of) == (
                    done.version, done.as_of) and current.table is None:
                runtime.served = done
    except Exception as error:  # answers stay live; the next reload tries again
        logger.error("could not build the score table: %s", error)


def champion_marker(settings: Settings) -> str:
    """What changes when a new champion is promoted: its registry versions, or the export's
    pointer file."""
    if settings.champion_source == "mlflow":
        from churnlens.training import tracking
        from churnlens.training.train import registry_champion_versions

        client = tracking.connect(settings.layout, settings.mlflow_tracking_uri)
        found = registry_champion_versions(client, settings)
        return "" if found is None else repr(sorted((t, v.version) for t, v in found.items()))
    pointer = settings.layout.models / "CHAMPION"
    return str(pointer.stat().st_mtime_ns) if pointer.is_file() else ""


def snapshot_marker(settings: Settings) -> str:
    """What changes when ``churnlens features`` writes a build: the link to the live one."""
    link = settings.layout.features / SNAPSHOTS
    return os.readlink(link) if link.is_symlink() else ""


def note_rescored(state: Serving, served: Served, looked: datetime | None) -> datetime | None:
    """Serve the score table ``churnlens score`` rewrote for the served model and snapshot
    (the nightly run): its scores, and its time, from which the scores' age is counted.

    ``looked``: the table's time when this was last asked, so a table that is not this
    model's (then nothing is swapped) is read once, not on every poll. Returns the time."""
    written = written_at(table_path(state.settings, served.as_of))
    if served.table is None or written in (None, served.scored_at, looked):
        return written  # still building (its thread swaps the table in), or not rewritten
    rescored = read_table(served, state.settings)
    if rescored is not None:
        with state.reload_lock:
            if state.runtime.served is served:
                state.runtime.served = rescored
    return written


def watch(state: Serving, stop: threading.Event) -> None:
    """Swap in a new champion once its bundle is exported, or the newest snapshot once it is
    built; a bad one is logged, not served."""
    settings, runtime = state.settings, state.runtime
    seen = champion_marker(settings), snapshot_marker(settings)
    looked: datetime | None = None
    while not stop.wait(settings.reload_poll_seconds):
        try:
            marker = champion_marker(settings), snapshot_marker(settings)
            if marker == seen and runtime.served is not None:
                looked = note_rescored(state, runtime.served, looked)
                continue
            if marker[1] != seen[1]:  # a new build: its history counts even if it fails
                history_end, grid = history_of(settings.layout.features)
                runtime.history_end, runtime.grid = history_end, grid or settings.grid
            seen = marker
            install(state, load_served(settings))
        except (BundleError, FileNotFoundError) as error:
            if runtime.served is None:
                runtime.problem = without_paths(str(error), settings.layout.root)
            else:
                logger.error("refused the new champion, still serving %s: %s",
                             runtime.served.version, error)
        except Exception as error:  # keep serving the old model
            logger.error("could not load the new champion: %s", error)


def start(state: Serving) -> None:
    """Serve the champion if there is one; otherwise say what is missing (the pages show it)."""
    try:
        install(state, load_served(state.settings))
    except (BundleError, FileNotFoundError) as error:  # pages say what to do next
        state.runtime.problem = without_paths(str(error), state.settings.layout.root)
        logger.warning("serving nothing yet: %s", error)


def compute_kpis(state: Serving) -> None:
    """The portfolio KPIs: computed by one worker, read from its report by the others."""
    settings, runtime = state.settings, state.runtime
    try:
        settings.layout.reports.mkdir(parents=True, exist_ok=True)
        with open(settings.layout.reports / ".kpis.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one worker validates and computes
            report = read_report(settings)  # the others read what it wrote
            if report is None:
                report = compute_report(settings, load_history(settings))
        runtime.kpis, runtime.kpi_problem = report, None
    except Exception as error:  # no raw history here: the KPIs say so, scores still work
        runtime.kpi_problem = without_paths(
            f"the KPIs could not be computed from the raw history: {error}", settings.layout.root)
        logger.warning(runtime.kpi_problem)


KPI_SHUTDOWN_WAIT_SECONDS = 60.0
"""How long shutdown waits for the KPIs still being computed."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load at start (KPIs in the background), watch for a new champion, stop the watcher at
    shutdown."""
    state: Serving = app.state.serving
    state.metrics.follow_scores(lambda: freshness_of(state))
    start(state)
    kpis = threading.Thread(target=compute_kpis, args=(state,), daemon=True, name="kpis")
    kpis.start()
    stop = threading.Event()
    watcher = None
    if state.settings.reload_poll_seconds > 0:
        watcher = threading.Thread(target=watch, args=(state, stop), daemon=True,
                                   name="champion-watch")
        watcher.start()
    yield
    stop.set()
    if watcher is not None:
        watcher.join(timeout=5)
    # a process that exits while this thread is inside DuckDB aborts ("terminate called
    # without an active exception"): let the KPIs finish, within a bound
    kpis.join(timeout=KPI_SHUTDOWN_WAIT_SECONDS)

