"""The MLflow model of one target: snapshot rows in, calibrated probability out.

Registered in MLflow's model registry, so ``mlflow models serve`` or
``mlflow.pyfunc.load_model("models:/churnlens_churn_90d@champion")`` give the same numbers as
churnlens' own serving: both read the same bundle.

MLflow stores this wrapper as a pickle (``python_model.pkl``), and loading it runs whatever code
the artifact store holds. churnlens itself never loads it: the champion gate, serving and
``churnlens promote`` read the bundle's files (LightGBM text, JSON) and verify their checksums.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from churnlens.training.matrix import FeatureSpace


def model_input(frame: pd.DataFrame, space: FeatureSpace) -> pd.DataFrame:
    """Snapshot rows as the logged signature describes them: numbers as float, levels as text."""
    columns = {}
    for name in space.features:
        if name in space.categories:
            columns[name] = frame[name].astype("object").where(frame[name].notna(), None)
        else:
            columns[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return pd.DataFrame(columns, index=frame.index)


class CalibratedModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
    def __init__(self, target: str) -> None:
        self.target = target
        self._bundle: Any = None

    def load_context(self, context: Any) -> None:
        from churnlens.training.bundle import load_bundle

        self._bundle = load_bundle(Path(context.artifacts["bundle"]))

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> np.ndarray:
        x = self._bundle.space.matrix(model_input)
        return self._bundle.models[self.target].probability(x)  # type: ignore[no-any-return]
