"""Killing a step half-way leaves the last good output whole, and the next run completes.

`churnlens features`, `train` and `score` are started as child processes on a small generated
company and sent SIGKILL at seeded random moments within their measured runtime (a crash, an
OOM kill, a pulled plug: no cleanup runs). After each kill the previous outputs must still read
and be identical (a run that got as far as swapping in a new output must leave that one whole),
and a rerun must succeed. Serving, shown a damaged bundle as the new champion, keeps the old.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from churnlens.features.store import read_manifest
from churnlens.serving.keys import KeyStore
from churnlens.training.bundle import latest_bundle, load_bundle, point_champion
from churnlens.training.matrix import load_latest_snapshot, load_snapshots
from conftest import churnlens, serve, stop

pytestmark = pytest.mark.slow

FAST = {"CHURNLENS_BOOTSTRAP": "0"}
"""No bootstrap intervals: training takes half the time and writes the same kinds of output."""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, float]]]:
    """A trained, scored company and how long each step took on this machine."""
    home = tmp_path_factory.mktemp("crash") / "home"
    churnlens(home, "synth", "--accounts", "300", "--months", "18", "--seed", "9",
              "--rollouts", "2")
    took = {}
    for step in (("features",), ("train",), ("score", "--top", "0")):
        started = time.monotonic()
        churnlens(home, *step, env=FAST)
        took[step[0]] = time.monotonic() - started
    yield home, took


def _kill_at(home: Path, args: tuple[str, ...], delay: float) -> int | None:
    """Start ``churnlens ARGS``, SIGKILL it (and its workers) after ``delay`` seconds."""
    env = {**os.environ, "CHURNLENS_HOME": str(home), **FAST}
    process = subprocess.Popen([sys.executable, "-m", "churnlens.cli", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        process.wait(timeout=delay)
        return process.returncode  # finished before the kill: its outputs must be whole too
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def _digests(folder: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob(pattern)) if p.is_file()}


def _meaning(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """A manifest without the note of which partitions a run reused (a rerun reuses more)."""
    assert manifest is not None
    return {**manifest, "partitions": [{k: v for k, v in entry.items() if k != "reused"}
                                       for entry in manifest["partitions"]]}


def _delays(seed: int, runtime: float, points: int) -> list[float]:
    chance = random.Random(seed)
    return sorted(chance.uniform(0.05, 1.0) * runtime for _ in range(points))


def test_killed_features_leave_the_previous_snapshots(home: tuple[Path, dict[str, float]]
                                                      ) -> None:
    folder, took = home
    root = folder / "features"
    before = _digests(root, "snapshots/**/*.parquet")
    manifest = _meaning(read_manifest(root))
    assert before
    for delay in _delays(1, took["features"], 3):
        _kill_at(folder, ("features",), delay)
        # a rerun on the same history is byte-identical, so whatever the kill left must match
        assert _digests(root, "snapshots/**/*.parquet") == before, f"killed at {delay:.1f}s"
        assert _meaning(read_manifest(root)) == manifest
        frame, features = load_snapshots(root)
        assert len(frame) and features == tuple(manifest["features"])
    churnlens(folder, "features")
    assert _digests(root, "snapshots/**/*.parquet") == before
    assert not [p.name for p in root.glob(".snapshots*") if p.name !=
                os.readlink(root / "snapshots")], "a killed build was not cleaned up"


def test_killed_training_leaves_the_champion_loadable(home: tuple[Path, dict[str, float]]
                                                      ) -> None:
    folder, took = home
    models = folder / "models"
    champion = (models / "CHAMPION").read_text()
    bundles = {v.name: _digests(v, "*") for v in models.iterdir()
               if v.is_dir() and not v.name.endswith(".staging")}
    for delay in _delays(2, took["train"], 2):
        _kill_at(folder, ("train",), delay)
        pointed = latest_bundle(models)
        assert pointed is not None
        load_bundle(pointed)  # verified against its checksums: whole, or this raises
        for name, digests in bundles.items():  # no earlier bundle was touched
            assert _digests(models / name, "*") == digests, f"{name} changed at {delay:.1f}s"
        if (models / "CHAMPION").read_text() != champion:  # the kill came after the switch
            assert pointed.name not in bundles
    churnlens(folder, "train", env=FAST)
    load_bundle(latest_bundle(models))  # type: ignore[arg-type]


def test_killed_scoring_leaves_the_previous_score_table(home: tuple[Path, dict[str, float]]
                                                        ) -> None:
    folder, took = home
    churnlens(folder, "score", "--top", "0")  # the table of today's champion, whole
    scores = folder / "scores"
    before = _digests(scores, "*.*")
    assert {Path(name).suffix for name in before} == {".parquet", ".csv"}
    for delay in _delays(3, took["score"], 3):
        _kill_at(folder, ("score", "--top", "0"), delay)
        assert _digests(scores, "*.*") == before, f"killed at {delay:.1f}s"
        for name in before:
            if name.endswith(".parquet"):
                assert pq.read_table(scores / name).num_rows > 0
    churnlens(folder, "score", "--top", "0")
    assert _digests(scores, "*.*") == before


def test_a_damaged_new_champion_is_refused_and_the_old_one_kept_serving(
        home: tuple[Path, dict[str, float]], tmp_path: Path) -> None:
    source, _ = home
    folder = tmp_path / "home"
    shutil.copytree(source, folder, symlinks=True)
    models = folder / "models"
    served = latest_bundle(models)
    assert served is not None
    key = KeyStore(folder / "api_keys.json").create("crash-test", "read")[1]
    account = load_latest_snapshot(folder / "features")[0]["account_id"].iloc[0]
    process, base = serve(folder, poll_seconds=0.3)
    try:
        # a bundle whose model file was cut short, then one whose copy stopped before its
        # manifest was written
        truncated = models / "v900"
        shutil.copytree(served, truncated)
        model = truncated / "churn.lgb.txt"
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
        half_copied = models / "v901"
        half_copied.mkdir()
        shutil.copy(served / "churn.lgb.txt", half_copied)
        for bad in (truncated, half_copied):
            point_champion(models, bad.name)
            time.sleep(1.5)  # several polls of CHAMPION
            ready = httpx.get(f"{base}/readyz", timeout=10).json()
            assert ready["ready"] and ready["model_version"] == served.name, ready
            answer = httpx.get(f"{base}/v1/accounts/{account}/risk",
                               headers={"X-API-Key": key}, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == served.name
    finally:
        stop(process)
    log = process.stderr.read()  # type: ignore[union-attr]
    assert "Traceback" not in log
    assert "refused the new champion" in log and "v900" in log and "checksum" in log, log
    assert "v901" in log and "manifest.json is missing" in log, log
