"""How a server process comes to serve a model and keeps serving the newest one: load the
champion at start, build a missing score table in the background, swap in a new champion when
its bundle is exported, and compute the portfolio KPIs once across workers.

A swap replaces one reference (``Runtime.served``): requests in flight finish on the model they
started with.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from churnlens.features.kpis import compute_report, read_report
from churnlens.raw.history import load_history
from churnlens.serving.api.deps import Serving, without_paths
from churnlens.serving.state import Served, build_table, load_served
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


def watch(state: Serving, stop: threading.Event) -> None:
    """Swap in a new champion once its bundle is exported; a bad one is logged, not served."""
    settings, runtime = state.settings, state.runtime
    seen = champion_marker(settings)
    while not stop.wait(settings.reload_poll_seconds):
        try:
            marker = champion_marker(settings)
            if marker == seen and runtime.served is not None:
                continue
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


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load at start (KPIs in the background), watch for a new champion, stop the watcher at
    shutdown."""
    state: Serving = app.state.serving
    start(state)
    threading.Thread(target=compute_kpis, args=(state,), daemon=True, name="kpis").start()
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

