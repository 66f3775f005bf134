"""MLflow: where runs are recorded, which model is champion, and why.

Default store: SQLite at ``HOME/mlflow.db`` with artifacts under ``HOME/mlartifacts``, no
server. ``--mlflow-tracking-uri`` / ``CHURNLENS_MLFLOW_TRACKING_URI`` / ``MLFLOW_TRACKING_URI``
point it at a shared tracking server instead.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

from churnlens.home import Home

CHAMPION = "champion"
BUNDLE_DIGEST = "bundle_manifest_sha256"
"""Model version tag: the SHA-256 of the run's bundle manifest as it was promoted. It lives in
the registry (the tracking database), not in the artifact store beside the files it vouches for,
so a bundle replaced in the store alone is refused."""


def tracking_uri(home: Home, configured: str | None) -> str:
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    home.root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home.mlflow_db.resolve().as_posix()}"


def connect(home: Home, configured: str | None) -> Any:
    """Point MLflow at the store and return a client for it."""
    import mlflow
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri(home, configured)
    before = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # MLflow also writes the URIs into the environment; put it back, or the next home this
    # process opens would inherit this one's store
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_name(horizon_days: int) -> str:
    return f"churnlens-{horizon_days}d"


def registered_name(target: str, horizon_days: int) -> str:
    return f"churnlens_{target}_{horizon_days}d"


def ensure_experiment(client: Any, home: Home, horizon_days: int) -> str:
    """The horizon's experiment, created with its artifacts under HOME when the store is local."""
    name = experiment_name(horizon_days)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = None
    if client.tracking_uri.startswith("sqlite:"):
        home.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
        location = home.mlflow_artifacts.resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def champion_version(client: Any, name: str) -> Any | None:
    """The registered model version holding the champion alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def versions_of_run(client: Any, run_id: str) -> dict[str, Any]:
    """Registered model versions created from ``run_id``, by registered model name."""
    found = client.search_model_versions(f"run_id = '{run_id}'")
    return {v.name: v for v in found}


def download_bundle(client: Any, run_id: str, into: Path) -> Path:
    """The bundle a run logged, as a local folder."""
    import mlflow.artifacts

    into.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="bundle",
                                                dst_path=str(into),
                                                tracking_uri=client.tracking_uri)
    return Path(local)
