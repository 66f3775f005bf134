"""What serving answers from, in process, on a trained company: the live answers while the
score table is built, parallel scoring, the champion from MLflow's alias, scoring without
explanations."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from homes import trained_home

from churnlens.serving import score as scoring
from churnlens.serving.playbooks import load_playbooks
from churnlens.serving.state import answers, build_table, load_served
from churnlens.settings import load_settings
from churnlens.training.bundle import BundleError
from conftest import churnlens

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared trained company: these tests only read it, writing into copies."""
    return trained_home(tmp_path_factory)


def _copy(home: Path, into: Path, *parts: str) -> Path:
    for part in parts:
        source = home / part
        if source.is_dir():
            shutil.copytree(source, into / part)
        else:
            shutil.copy(source, into / part)
    return into


def test_without_a_table_answers_are_live_and_equal_the_table_built_later(
        trained: Path, tmp_path: Path) -> None:
    home = _copy(trained, tmp_path, "models", "features")
    settings = load_settings(home=home)
    live = load_served(settings)
    assert live.table is None and live.table_source == "building"
    ids = [str(a) for a in live.ranking["account_id"].iloc[[0, 1, 7, 40]]]
    explained_live = answers(live, ids, settings)

    built = build_table(live, settings)
    assert (home / "scores" / f"{live.as_of}.parquet").is_file()
    assert built.table is not None and built.table_source == "built by the server"
    from_table = answers(built, ids, settings)
    for now, later in zip(explained_live, from_table, strict=True):
        assert now["churn_probability"] == pytest.approx(later["churn_probability"], abs=1e-12)
        assert now["drivers"] == later["drivers"] and now["playbook"] == later["playbook"]
    # the quick ranking orders the portfolio as the explained table does
    quick = live.ranking["churn_probability"].to_numpy()
    table = built.ranking["churn_probability"].to_numpy()
    assert quick == pytest.approx(table, abs=1e-12)
    assert load_served(settings).table_source == "score table"


def test_scoring_in_worker_processes_equals_scoring_in_one(
        trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(home=trained)
    bundle = scoring.champion(settings)
    frame, _ = scoring.latest_snapshot(settings)
    playbooks = load_playbooks(None)
    monkeypatch.setattr(scoring, "CHUNK_ROWS", 64)  # several chunks from a small portfolio
    alone = scoring.score_frame(bundle, frame, settings, playbooks)
    shared = scoring.score_frame(bundle, frame, settings, playbooks, processes=2)
    assert len(alone) == len(frame) > 2 * 64
    pd.testing.assert_frame_equal(alone, shared)


def test_the_champion_can_come_from_the_mlflow_alias(trained: Path, tmp_path: Path) -> None:
    home = _copy(trained, tmp_path, "mlflow.db", "features")  # artifacts stay where they are
    settings = load_settings(home=home, champion_source="mlflow")
    fetched = scoring.champion(settings)
    exported = scoring.champion(load_settings(home=trained))
    assert fetched.version == exported.version
    assert fetched.path == home / "models" / exported.version
    assert (fetched.path / "churn.lgb.txt").read_text() == \
        (exported.path / "churn.lgb.txt").read_text()
    # the CLI reads it too, and says so when no model holds the alias
    result = churnlens(home, "score", "--champion-source", "mlflow", "--top", "0")
    assert "accounts scored" in result.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match="champion alias"):
        scoring.champion(load_settings(home=empty, champion_source="mlflow"))


def test_scoring_without_explanations_gives_the_same_probabilities(
        trained: Path, tmp_path: Path) -> None:
    home = _copy(trained, tmp_path, "models", "features")
    churnlens(home, "score", "--top", "0")
    explained = pd.read_parquet(next((home / "scores").glob("*.parquet")))
    churnlens(home, "score", "--no-explain", "--top", "3")
    bare = pd.read_parquet(next((home / "scores").glob("*.parquet")))
    assert "drivers_json" not in bare and "playbook" not in bare
    assert list(bare["account_id"]) == list(explained["account_id"])
    for column in ("churn_probability", "expansion_probability"):
        assert bare[column].to_numpy() == pytest.approx(explained[column].to_numpy(), abs=1e-12)
    assert (bare["tier"] == explained["tier"]).all()
    assert (bare["health_score"] == explained["health_score"]).all()
