"""The run's plots, as PNG files: what a data scientist looks at before trusting a model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from churnlens.training.metrics import calibration_table


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def calibration_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path,
                     title: str) -> Path:
    """Predicted probability against observed rate, one line per model."""
    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for name, (y, p) in curves.items():
        table = calibration_table(y, p, bins=15)
        xs = [r["mean_prediction"] for r in table]
        ys = [r["observed_rate"] for r in table]
        top = max(top, *xs, *ys)
        ax.plot(xs, ys, marker="o", label=name)
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=title)
    ax.legend()
    return _save(fig, path)


def gains_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path,
               title: str) -> Path:
    """Share of positives caught against share of accounts contacted, riskiest first."""
    fig, (gain, lift) = plt.subplots(1, 2, figsize=(10, 4.5))
    for name, (y, p) in curves.items():
        order = np.argsort(-p, kind="stable")
        caught = np.cumsum(y[order]) / max(y.sum(), 1)
        share = np.arange(1, len(y) + 1) / len(y)
        gain.plot(share, caught, label=name)
        deciles = np.array_split(order, 10)
        lift.plot(range(1, 11), [y[d].mean() / max(y.mean(), 1e-12) for d in deciles],
                  marker="o", label=name)
    gain.plot([0, 1], [0, 1], color="grey", linestyle="--", label="random")
    gain.set(xlabel="share of accounts (riskiest first)", ylabel="share of positives caught",
             title=f"{title}: gains")
    lift.axhline(1.0, color="grey", linestyle="--")
    lift.set(xlabel="decile (1 = riskiest)", ylabel="lift", title=f"{title}: lift by decile")
    gain.legend()
    return _save(fig, path)


def pr_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, (y, p) in curves.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, label=name)
    ax.set(xlabel="recall", ylabel="precision", title=title)
    ax.legend()
    return _save(fig, path)


def auc_by_month_plot(table: pd.DataFrame, path: Path, title: str) -> Path:
    """ROC AUC of each model per snapshot date (columns: as_of, model, roc_auc)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rows in table.groupby("model", sort=False):
        ax.plot(rows["as_of"].astype(str), rows["roc_auc"], marker="o", label=name)
    ax.set(xlabel="snapshot", ylabel="ROC AUC", title=title)
    ax.tick_params(axis="x", rotation=45)
    ax.legend()
    return _save(fig, path)


def shap_summary_plot(values: np.ndarray, x: pd.DataFrame, path: Path, title: str,
                      top: int = 15) -> Path:
    """SHAP beeswarm of the ``top`` features (categories shown by their codes)."""
    import shap

    shown = x.copy()
    for column in shown.columns:
        if isinstance(shown[column].dtype, pd.CategoricalDtype):
            codes = shown[column].cat.codes.astype(float)
            shown[column] = codes.where(codes >= 0)
    shap.summary_plot(values, shown.astype(float), max_display=top, show=False,
                      plot_size=(8, 6))
    fig = plt.gcf()
    fig.axes[0].set_title(title)
    return _save(fig, path)
