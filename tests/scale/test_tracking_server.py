"""MLflow beyond the SQLite file: train, promote and serve against a real `mlflow server`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from churnlens.serving.keys import KeyStore
from churnlens.training.tracking import experiment_name, registered_name
from conftest import churnlens, free_port, serve, stop

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _start_tracking_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`mlflow server` on a free port: SQLite store, artifacts proxied from a local folder."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'store.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mlflow server exited: {process.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                return process, uri
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise AssertionError("mlflow server did not start")


def test_train_promote_and_serve_against_a_tracking_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    home = tmp_path / "home"
    churnlens(home, "synth", "--accounts", "200", "--months", "16", "--seed", "4",
              "--rollouts", "2")
    churnlens(home, "features")
    server, uri = _start_tracking_server(tmp_path / "mlflow-server")
    try:
        env = {"MLFLOW_TRACKING_URI": uri, "CHURNLENS_BOOTSTRAP": "0"}  # no intervals: faster
        churnlens(home, "train", "--seed", "1", env=env)
        churnlens(home, "train", "--seed", "2", env=env)
        assert not (home / "mlflow.db").exists(), "training wrote to the local SQLite store"

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.get_experiment_by_name(experiment_name(90))
        runs = client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
        first = runs[0].info.run_id
        assert len(runs) == 2 and all(r.data.metrics for r in runs)

        promoted = churnlens(home, "promote", first, env=env)
        assert first in promoted.stdout
        champion = client.get_model_version_by_alias(registered_name("churn", 90), "champion")
        assert champion.run_id == first

        # serving fetches the champion from the tracking server, with nothing local to read
        shutil.rmtree(home / "models")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("CHURNLENS_CHAMPION_SOURCE", "mlflow")
        key = KeyStore(home / "api_keys.json").create("test", "read")[1]
        process, base = serve(home)
        try:
            account = httpx.get(f"{base}/v1/accounts", headers={"X-API-Key": key},
                                timeout=30).json()["accounts"][0]["account_id"]
            answer = httpx.get(f"{base}/v1/accounts/{account}/risk",
                               headers={"X-API-Key": key}, timeout=30).json()
        finally:
            stop(process)
        assert answer["model_version"] == f"v{champion.version}"
        assert (home / "models" / f"v{champion.version}" / "churn.lgb.txt").is_file()
    finally:
        server.terminate()
        server.wait(timeout=30)
