"""The champion gate runs no code from the MLflow store: it compares with the champion's
checksummed bundle (LightGBM text, calibrators as JSON), never with the pickled MLflow model.

One small company trained twice: before the second run the champion's ``python_model.pkl`` in
the artifact store is replaced by a pickle whose ``__reduce__`` writes a marker file, as an
attacker who can write a shared store would. The marker must never appear, and the gate must
still compare, with the same numbers the challenger gets from the same data and seed.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest

from churnlens.settings import load_settings
from churnlens.training import tracking
from churnlens.training.bundle import MANIFEST, BundleError, load_bundle
from churnlens.training.train import champion_bundle
from conftest import FAST_TRAIN, churnlens

pytestmark = pytest.mark.e2e


class PlantedPickle:
    """What an attacker plants: unpickling it writes ``marker`` (and nothing worse)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('unpickled')",))


def _train(home: Path) -> dict[str, Any]:
    return json.loads(churnlens(home, "train", "--json", env=FAST_TRAIN).stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("gate")
    home, marker = root / "home", root / "marker"
    churnlens(home, "synth", "--accounts", "150", "--months", "16", "--seed", "3",
              "--rollouts", "2")
    churnlens(home, "features")
    first = _train(home)
    planted = sorted((home / "mlartifacts").rglob("python_model.pkl"))
    for path in planted:
        path.write_bytes(pickle.dumps(PlantedPickle(marker)))
    second = _train(home)
    return {"home": home, "marker": marker, "planted": planted, "first": first,
            "second": second}


def test_a_replaced_pickle_never_runs_and_the_gate_still_compares(
        company: dict[str, Any]) -> None:
    assert company["planted"], "the MLflow store holds no python_model.pkl to replace"
    assert not company["marker"].exists(), "training unpickled the MLflow model"
    first, second = company["first"], company["second"]
    assert first["promoted"] and first["reason"] == "promoted: no champion yet (first run)"
    assert second["promoted"], second["reason"]
    for target in ("churn", "expansion"):
        assert f"{target}: not worse than champion v1" in second["reason"]
        compared = second["champion_comparison"][target]
        assert str(compared["champion_version"]) == "1"
        # same data and seed: the champion's calibrated scores are the challenger's exactly
        # (LightGBM's bare scores, uncalibrated, would give another Brier score)
        assert compared["champion"] == compared["challenger"]


def test_the_champion_known_only_to_the_registry_is_fetched_as_its_bundle(
        company: dict[str, Any], tmp_path: Path) -> None:
    """Another machine sharing the store: no HOME/models, the bundle's files come from MLflow,
    checked against the manifest and the manifest against the digest the registry keeps."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(company["home"] / "mlflow.db", home / "mlflow.db")  # artifacts stay there
    settings = load_settings(home=home)
    client = tracking.connect(settings.layout, None)
    name = tracking.registered_name("churn", settings.horizon_days)
    version = tracking.champion_version(client, name)
    assert version is not None and version.tags.get(tracking.BUNDLE_DIGEST)

    fetched = champion_bundle(client, settings, version)
    exported = load_bundle(company["home"] / "models" / "v2")
    assert fetched.manifest["run_id"] == exported.manifest["run_id"] == version.run_id
    assert not (home / "models").exists()  # the gate's copy is temporary
    for target in ("churn", "expansion"):
        ours, theirs = fetched.models[target], exported.models[target]
        assert ours.booster.model_to_string() == theirs.booster.model_to_string()
        assert ours.calibrator == theirs.calibrator

    # a bundle replaced in the store with a consistent manifest: refused by the registry digest
    stored = company["home"] / "mlartifacts" / version.run_id / "artifacts" / "bundle"
    original = (stored / MANIFEST).read_text()
    try:
        manifest = json.loads(original)
        manifest["trained_at"] = "1999-01-01T00:00:00+00:00"
        (stored / MANIFEST).write_text(json.dumps(manifest))
        with pytest.raises(BundleError, match="digest the registry keeps"):
            champion_bundle(client, settings, version)
    finally:
        (stored / MANIFEST).write_text(original)
