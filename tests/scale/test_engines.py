"""The same features on DuckDB, Spark (local mode) and PostgreSQL, and the same scores from
Spark executors as from one process: one generated company, every engine really started."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnlens.features.pipeline import read_snapshots
from conftest import churnlens, free_port
from warehouse import load_company, postgres_server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

NOW = "2024-05-01"


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small company with DuckDB-built features and a trained champion."""
    home = tmp_path_factory.mktemp("engines") / "home"
    churnlens(home, "synth", "--accounts", "200", "--months", "16", "--seed", "5",
              "--rollouts", "2")
    churnlens(home, "features", env={"CHURNLENS_NOW": NOW})
    return home


def _fresh_home(company: Path, tmp_path: Path, *keep: str) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    for name in keep:
        shutil.copytree(company / name, home / name)
    return home


def _snapshots(home: Path) -> pd.DataFrame:
    frame = read_snapshots(home / "features").to_pandas()
    return frame.sort_values(["as_of", "account_id"]).reset_index(drop=True)


def assert_same_frames(expected: pd.DataFrame, actual: pd.DataFrame, what: str) -> None:
    """Same rows and columns; floats within 1e-9 relative, everything else equal."""
    assert list(actual.columns) == list(expected.columns), what
    assert len(actual) == len(expected) > 0, what
    for column in expected.columns:
        left, right = expected[column], actual[column]
        if left.dtype.kind == "f" or right.dtype.kind == "f":
            np.testing.assert_allclose(right.to_numpy(float), left.to_numpy(float), rtol=1e-9,
                                       atol=0, equal_nan=True, err_msg=f"{what}: {column}")
        else:
            both_null = left.isna().to_numpy() & right.isna().to_numpy()
            same = both_null | (left.astype(str).to_numpy() == right.astype(str).to_numpy())
            examples = f"{left[~same].head(3).tolist()} vs {right[~same].head(3).tolist()}"
            assert same.all(), f"{what}: {column} differs in {(~same).sum()} rows, e.g. {examples}"


def test_spark_builds_the_same_features_and_labels(company: Path, tmp_path: Path) -> None:
    home = _fresh_home(company, tmp_path, "raw")
    result = churnlens(home, "features", "--backend", "spark",
                       env={"CHURNLENS_NOW": NOW, "CHURNLENS_SPARK_MASTER": "local[2]"},
                       timeout=900)
    assert "reused) on pyspark" in result.stdout
    expected, actual = _snapshots(company), _snapshots(home)
    assert_same_frames(expected, actual, "spark vs duckdb")
    assert {"churned", "expanded"} <= set(actual.columns)
    assert len(actual.columns) > 60  # every registry feature, not a subset


def test_postgres_builds_the_same_features_and_labels(company: Path, tmp_path: Path) -> None:
    home = _fresh_home(company, tmp_path)
    with postgres_server(free_port()) as url:
        loaded = load_company(url, company / "raw")
        assert set(loaded) == {"accounts", "subscriptions", "usage_events", "tickets",
                               "surveys"}
        churnlens(home, "validate", "--data", url, env={"CHURNLENS_NOW": NOW})
        result = churnlens(home, "features", "--data", url, env={"CHURNLENS_NOW": NOW})
        assert "reused) on postgres" in result.stdout
        # a folder with --backend postgres is a mistake the CLI explains
        wrong = churnlens(home, "features", "--backend", "postgres", check=False)
        assert wrong.returncode == 2 and "postgresql://" in wrong.stderr
    assert_same_frames(_snapshots(company), _snapshots(home), "postgres vs duckdb")


def test_spark_scoring_equals_local_scoring(company: Path, tmp_path: Path) -> None:
    home = _fresh_home(company, tmp_path, "raw", "features")
    churnlens(home, "train", "--seed", "3", env={"CHURNLENS_BOOTSTRAP": "0"})
    churnlens(home, "score", "--top", "0")
    local = pd.read_parquet(next((home / "scores").glob("*.parquet")))
    result = churnlens(home, "score", "--backend", "spark", "--top", "3",
                       env={"CHURNLENS_SPARK_MASTER": "local[2]"}, timeout=900)
    assert "accounts scored" in result.stdout
    spark = pd.read_parquet(next((home / "scores").glob("*.parquet")))
    assert_same_frames(local, spark, "spark scores vs local scores")
    assert spark["driver_1_sentence"].notna().all()


def test_spark_that_cannot_start_is_a_clear_error(company: Path, tmp_path: Path) -> None:
    home = _fresh_home(company, tmp_path, "raw")
    result = churnlens(home, "features", "--backend", "spark", check=False,
                       env={"CHURNLENS_SPARK_MASTER": "nowhere://cluster"})
    assert result.returncode == 2, result.stderr
    assert "cannot start Spark (master 'nowhere://cluster')" in result.stderr
    assert "Traceback" not in result.stderr
