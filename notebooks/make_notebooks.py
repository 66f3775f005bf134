"""Writes the two notebooks from this script, so their code is reviewed as code.

    uv run python notebooks/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

QUICKSTART = [
    new_markdown_cell(
        "# churnlens quickstart\n\n"
        "Generate a company, build point-in-time snapshots, train calibrated churn and "
        "expansion models, and look at what the run recorded. Everything lives under one "
        "project folder (`HOME`); set `CHURNLENS_HOME` to reuse one.\n\n"
        "Each step is the same code the `churnlens` command runs."),
    new_code_cell(
        "import json, os\n"
        "from pathlib import Path\n\n"
        "from IPython.display import Image, display\n\n"
        "from churnlens.settings import load_settings\n\n"
        "HOME = Path(os.environ.get('CHURNLENS_HOME', 'churnlens-notebook'))\n"
        "ACCOUNTS = int(os.environ.get('CHURNLENS_NB_ACCOUNTS', '2000'))\n"
        "MONTHS = int(os.environ.get('CHURNLENS_NB_MONTHS', '30'))\n"
        "settings = load_settings(home=HOME)\n"
        "settings.layout.ensure()\n"
        "HOME"),
    new_markdown_cell("## 1. A generated company\n\nAccounts with a hidden health that drives "
                      "usage, tickets, NPS, churn and expansion, plus the true probabilities."),
    new_code_cell(
        "from churnlens.synth import CompanyConfig, generate_company\n\n"
        "company = generate_company(CompanyConfig(accounts=ACCOUNTS, months=MONTHS, seed=7, "
        "rollouts=8), settings.layout.raw)\n"
        "company.rows"),
    new_markdown_cell("## 2. Validate and build snapshots\n\nEach snapshot sees only rows "
                      "dated before its `as_of`; labels read only the 90 days after it."),
    new_code_cell(
        "from churnlens.features.pipeline import build_features\n"
        "from churnlens.features.snapshots import SnapshotSpec\n"
        "from churnlens.raw.history import load_history\n\n"
        "history = load_history(settings)\n"
        "run = build_features(history, SnapshotSpec(), settings.layout.features)\n"
        "print(run.report['snapshots'], 'snapshots;', run.report['label_rates'])"),
    new_markdown_cell("## 3. Train\n\nOut-of-time validation, calibration on a slice the "
                      "model never saw, a logistic baseline beside it, MLflow tracking and "
                      "champion gating."),
    new_code_cell(
        "from churnlens.training.train import train\n\n"
        "result = train(settings)\n"
        "report = result.report\n"
        "print(report['reason'])\n"
        "{target: {k: round(report[target]['validation'][k], 4) for k in "
        "('roc_auc', 'pr_auc', 'brier', 'ece', 'top_decile_lift')} "
        "for target in ('churn', 'expansion')}"),
    new_code_cell(
        "{target: report[target].get('oracle') for target in ('churn', 'expansion')}"),
    new_markdown_cell("## 4. The plots"),
    new_code_cell(
        "run_folder = result.report_path.parent\n"
        "for name in ('churn_calibration', 'churn_gains', 'churn_shap', "
        "'churn_auc_by_month'):\n"
        "    display(Image(filename=str(run_folder / f'{name}.png')))"),
    new_markdown_cell("## 5. The MLflow run\n\nBrowse it with `uv run mlflow ui "
                      "--backend-store-uri sqlite:///<HOME>/mlflow.db`."),
    new_code_cell(
        "import mlflow\n\n"
        "mlflow.set_tracking_uri(report['tracking_uri'])\n"
        "runs = mlflow.search_runs(experiment_names=['churnlens-90d'])\n"
        "runs[['run_id', 'metrics.churn.validation.roc_auc', "
        "'metrics.churn.validation.brier', 'tags.promoted']].head()"),
]

COMPARE = [
    new_markdown_cell(
        "# Compare runs\n\n"
        "Every `churnlens train` is an MLflow run with the same metric names. This notebook "
        "lines runs up, compares them per segment, and shows how a model's quality drifts "
        "across snapshot months. It trains two runs itself when the project has fewer."),
    new_code_cell(
        "import json, os\n"
        "from pathlib import Path\n\n"
        "import matplotlib.pyplot as plt\n"
        "import mlflow\n"
        "import pandas as pd\n\n"
        "from churnlens.settings import load_settings\n"
        "from churnlens.training.tracking import connect\n\n"
        "HOME = Path(os.environ.get('CHURNLENS_HOME', 'churnlens-notebook'))\n"
        "settings = load_settings(home=HOME)\n"
        "client = connect(settings.layout, settings.mlflow_tracking_uri)"),
    new_code_cell(
        "from churnlens.training.train import train\n\n"
        "runs = mlflow.search_runs(experiment_names=['churnlens-90d'])\n"
        "if len(runs) < 2:\n"
        "    train(settings.model_copy(update={'model_params': {'num_leaves': 2, "
        "'learning_rate': 0.02}}))\n"
        "    train(settings)\n"
        "    runs = mlflow.search_runs(experiment_names=['churnlens-90d'])\n"
        "columns = ['run_id', 'start_time', 'tags.promoted', 'params.churn.num_leaves', "
        "'params.churn.trees', 'metrics.churn.validation.roc_auc', "
        "'metrics.churn.validation.brier', 'metrics.churn.baseline.roc_auc', "
        "'metrics.expansion.validation.roc_auc']\n"
        "runs[[c for c in columns if c in runs]]"),
    new_markdown_cell("## Per segment\n\nThe two newest runs, per coverage tier, plan and "
                      "region (each run's `report.json`)."),
    new_code_cell(
        "def report_of(run_id):\n"
        "    path = settings.layout.reports / 'runs' / run_id / 'report.json'\n"
        "    return json.loads(path.read_text())\n\n"
        "rows = []\n"
        "for run_id in runs['run_id'].head(2):\n"
        "    for group, levels in report_of(run_id)['churn']['segments'].items():\n"
        "        for level, m in levels.items():\n"
        "            rows.append({'run': run_id[:8], 'segment': f'{group}={level}', "
        "'roc_auc': m['roc_auc'], 'brier': m['brier'], 'rows': m['rows']})\n"
        "segments = pd.DataFrame(rows).pivot(index='segment', columns='run', "
        "values='roc_auc')\n"
        "segments"),
    new_markdown_cell("## Drift of metrics across months\n\nROC AUC per snapshot month, out "
                      "of sample, for each run: a falling line is the first sign of drift."),
    new_code_cell(
        "fig, ax = plt.subplots(figsize=(7, 4))\n"
        "for run_id in runs['run_id'].head(3):\n"
        "    by_month = pd.DataFrame(report_of(run_id)['churn']['auc_by_month'])\n"
        "    ax.plot(by_month['as_of'], by_month['roc_auc'], marker='o', label=run_id[:8])\n"
        "ax.set(ylabel='churn ROC AUC', xlabel='snapshot')\n"
        "ax.tick_params(axis='x', rotation=45)\n"
        "ax.legend()\n"
        "by_month"),
]


def main() -> None:
    for name, cells in (("01_quickstart.ipynb", QUICKSTART),
                        ("02_compare_runs.ipynb", COMPARE)):
        notebook = new_notebook(cells=cells)
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                           "language": "python"}
        nbformat.write(notebook, HERE / name)


if __name__ == "__main__":
    main()
