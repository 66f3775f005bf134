"""A trained project folder for tests that serve it: trained once per test run (the xdist
workers share it), copied for each module so that what one module's server does (keys,
reloads) never reaches another.

A copy keeps the original's MLflow store settings: a run trained in a copy writes its
artifacts next to the original's, under a run id of its own.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from churnlens.serving.keys import SCOPES, KeyStore
from churnlens.settings import Settings
from churnlens.training.bundle import Bundle
from conftest import FAST_TRAIN, churnlens

_TRAINED: dict[str, Path] = {}
TRAIN_OUTPUT = "train-output.txt"
"""What `churnlens train` printed for the trained home, at 60 columns, beside the home."""


@contextmanager
def _held(lock: Path) -> Iterator[None]:
    """An exclusive lock on a file, across the processes of one test run."""
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_folder(factory: pytest.TempPathFactory) -> Path:
    """The temporary folder of the whole run: under pytest-xdist, each worker's base folder
    lies in one that all the workers of the run share."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def trained_home(factory: pytest.TempPathFactory) -> Path:
    """A small company with features, a champion and its score table (built once, by whichever
    worker asks first; the others wait for it). Read it; write into a copy."""
    if "home" not in _TRAINED:
        folder = _run_folder(factory) / "trained"
        home, built = folder / "home", folder / "built"
        folder.mkdir(exist_ok=True)
        with _held(folder / "lock"):
            if not built.exists():
                shutil.rmtree(home, ignore_errors=True)  # a worker that died half way
                churnlens(home, "synth", "--accounts", "300", "--months", "16", "--seed", "9",
                          "--rollouts", "2")
                churnlens(home, "features")
                # a narrow terminal: tests/serving/test_train_output.py reads what it printed
                trained = churnlens(home, "train", env={**FAST_TRAIN, "COLUMNS": "60"})
                (folder / TRAIN_OUTPUT).write_text(trained.stdout)
                churnlens(home, "score", "--top", "0")
                built.touch()
        _TRAINED["home"] = home
    return _TRAINED["home"]


def champion_inputs(factory: pytest.TempPathFactory
                    ) -> tuple[Settings, Bundle, pd.DataFrame]:
    """The trained home's settings, its champion and its latest snapshot (rows numbered from
    0): what a test scores itself."""
    from churnlens.serving import score as scoring
    from churnlens.settings import load_settings

    settings = load_settings(home=trained_home(factory))
    frame, _ = scoring.latest_snapshot(settings)
    return settings, scoring.champion(settings), frame.reset_index(drop=True)


def served_home(factory: pytest.TempPathFactory, name: str) -> tuple[Path, dict[str, str]]:
    """A copy of the trained home with one key of each scope: (home, scope -> key)."""
    home = factory.mktemp(name) / "home"
    shutil.copytree(trained_home(factory), home)
    store = KeyStore(home / "api_keys.json")
    return home, {scope: store.create(f"test-{scope}", scope)[1] for scope in SCOPES}


def settle() -> None:
    """Wait for the threads an in-process app starts in the background (the KPIs, a score
    table): a daemon thread still inside DuckDB when the test process exits aborts it, or
    hangs it. Call before closing a TestClient over a trained home."""
    for thread in threading.enumerate():
        if thread.name in ("kpis", "score-table"):
            thread.join(timeout=300)
