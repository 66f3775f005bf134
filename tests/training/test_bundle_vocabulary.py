"""A model trained on features generated from the event vocabulary loads and explains in a
process that never built those features: the bundle re-creates them from its records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnlens.features.registry import REGISTRY, choose_vocabulary, register_vocabulary
from churnlens.training.bundle import TargetModel, write_bundle
from churnlens.training.calibration import fit_platt
from churnlens.training.matrix import FeatureSpace

FRESH_PROCESS = """
import json, sys
from pathlib import Path
import numpy as np
from churnlens.features.registry import REGISTRY
from churnlens.serving.explain import drivers, explain, pillar_points
from churnlens.training.bundle import load_bundle

bundle = load_bundle(Path(sys.argv[1]))
features = bundle.space.features
x = np.array([[4.0, 400.0], [0.0, 20.0]])
explained = explain(bundle.models["churn"], x)
points = pillar_points(features, explained.points)
print(json.dumps({
    "drivers": drivers(features, x[0], explained.points[0], np.array([0, 1])),
    "pillars": {p: float(v[0]) for p, v in points.items()},
    "template": REGISTRY[features[0]].generated.family,
}))
"""


def test_a_bundle_with_generated_features_loads_and_explains_in_a_fresh_process(
        tmp_path: Path) -> None:
    vocabulary = choose_vocabulary({"Add to cart": (9, True), "add-to-cart": (9, True)}, None)
    register_vocabulary(vocabulary)
    generated = f"events_90d__{vocabulary.events[0].slug}"
    assert vocabulary.events[0].event == "Add to cart" and generated in REGISTRY
    features = (generated, "tenure_days")
    rng = np.random.default_rng(3)
    x = pd.DataFrame({generated: rng.poisson(3, 400).astype(float),
                      "tenure_days": rng.integers(10, 900, 400).astype(float)})
    y = (rng.random(400) < 1 / (1 + np.exp(x[generated] - 3))).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 4, "verbosity": -1, "seed": 1},
                        lgb.Dataset(x, y), num_boost_round=10)
    model = TargetModel(booster=booster, calibrator=fit_platt(booster.predict(x), y))
    folder = write_bundle(tmp_path / "v1", version="v1",
                          space=FeatureSpace(features=features, categories={}),
                          models={"churn": model}, metrics={}, info={})
    record = json.loads((folder / "registry.json").read_text())[generated]["generated"]
    assert record == {"family": "events_of_type", "event": "Add to cart",
                      "slug": vocabulary.events[0].slug, "days": 90}

    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(folder)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = json.loads(out.stdout)
    first = answer["drivers"][0]
    assert first["feature"] == generated and first["pillar"] == "adoption"
    assert first["sentence"] == "4 'Add to cart' events in the last 90 days"
    assert answer["template"] == "events_of_type"
    assert answer["pillars"]["adoption"] != 0.0


def test_a_bundle_whose_generated_record_is_broken_is_refused(tmp_path: Path) -> None:
    """A record naming a family this code lacks is a clear BundleError, not a KeyError."""
    import pytest

    from churnlens.training.bundle import BundleError, _check_registry

    space = FeatureSpace(features=("events_90d__gone",), categories={})
    trained = {"events_90d__gone": {"kind": "number", "pillar": "adoption", "unit": "events",
                                    "generated": {"family": "no_such_family", "event": "gone",
                                                  "slug": "gone", "days": 90}}}
    with pytest.raises(BundleError, match="cannot re-create the model's generated features"):
        _check_registry(tmp_path, space, trained)
