"""The notebooks run top to bottom on a small company, with a real kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import FAST_TRAIN

pytestmark = pytest.mark.e2e

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def _run(name: str, home: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(home)}}).execute()
    return notebook


def test_quickstart_then_compare_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # the kernel inherits these; monkeypatch restores them for the other tests
    for key, value in {"CHURNLENS_HOME": str(home), "CHURNLENS_NB_ACCOUNTS": "300",
                       "CHURNLENS_NB_MONTHS": "16", "MPLBACKEND": "Agg",
                       **FAST_TRAIN}.items():
        monkeypatch.setenv(key, value)
    quickstart = _run("01_quickstart.ipynb", home)
    outputs = [o for cell in quickstart.cells if cell.cell_type == "code"
               for o in cell.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert (home / "mlflow.db").is_file()

    compare = _run("02_compare_runs.ipynb", home)
    text = "".join(str(o.get("data", {}).get("text/plain", "")) for cell in compare.cells
                   if cell.cell_type == "code" for o in cell.get("outputs", []))
    assert "metrics.churn.validation.roc_auc" in text
    assert "touch=" in text  # the per-segment table
