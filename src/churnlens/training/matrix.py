"""From stored snapshots to the matrices models read, the same way at training and serving.

Categories are fixed when a model is trained and travel in its bundle, so a plan name the
model never saw becomes missing at serving instead of silently shifting every other code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnlens.features.pipeline import read_snapshots
from churnlens.features.registry import REGISTRY, Vocabulary, load_all, register_vocabulary
from churnlens.features.store import PART, partition_dir, read_manifest


@dataclass(frozen=True)
class FeatureSpace:
    """The model's inputs: feature names in order and, for categorical ones, their levels."""

    features: tuple[str, ...]
    categories: dict[str, list[str]]

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Model input from snapshot rows: numbers as float64, categories with fixed levels."""
        missing = [name for name in self.features if name not in frame.columns]
        if missing:
            raise KeyError(f"snapshot rows lack the model's features: {missing[:5]}"
                           f"{' ...' if len(missing) > 5 else ''}")
        columns: dict[str, Any] = {}
        for name in self.features:
            if name in self.categories:
                columns[name] = pd.Categorical(frame[name].astype("object"),
                                               categories=self.categories[name])
            else:
                columns[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        return pd.DataFrame(columns, index=frame.index)

    def array(self, frame: pd.DataFrame) -> np.ndarray:
        """The same input as ``matrix`` as one float64 array, categories as their codes in the
        fixed levels (missing: NaN), which is what LightGBM turns a categorical frame into
        before predicting. Building it skips pandas' per-column work: serving scores single
        rows in a fraction of a millisecond this way."""
        out = np.empty((len(frame), len(self.features)), dtype="float64")
        numeric = [i for i, name in enumerate(self.features) if name not in self.categories]
        names = [self.features[i] for i in numeric]
        try:
            out[:, numeric] = frame[names].to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError):  # text in a number column: what matrix() would do
            out[:, numeric] = self.matrix(frame)[names].to_numpy(dtype="float64")
        for i, name in enumerate(self.features):
            if name in self.categories:
                codes = pd.Index(self.categories[name]).get_indexer(
                    pd.Index(frame[name].astype("object").where(frame[name].notna(), None)))
                out[:, i] = np.where(codes < 0, np.nan, codes)
        return out

    def to_json(self) -> dict[str, object]:
        return {"features": list(self.features), "categories": self.categories}

    @staticmethod
    def from_json(data: dict[str, Any]) -> FeatureSpace:
        return FeatureSpace(features=tuple(data["features"]),
                            categories=dict(data["categories"]))


def feature_space(frame: pd.DataFrame, features: tuple[str, ...]) -> FeatureSpace:
    """Levels of each categorical feature as seen in ``frame`` (sorted, so runs agree)."""
    load_all()
    categories = {name: sorted(str(v) for v in frame[name].dropna().unique())
                  for name in features if REGISTRY[name].kind == "category"}
    return FeatureSpace(features=features, categories=categories)


def load_snapshots(features_root: Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Every stored snapshot, and the feature list the store was built with (its event
    vocabulary's generated features registered, so they resolve like declared ones)."""
    manifest = read_manifest(features_root)
    if manifest is None:
        raise FileNotFoundError(
            f"no feature snapshots under {features_root}: run `churnlens features` first")
    register_vocabulary(Vocabulary.from_json(manifest.get("vocabulary")))
    frame = read_snapshots(features_root).to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    frame = frame.sort_values(["as_of", "account_id"], kind="stable").reset_index(drop=True)
    return frame, tuple(manifest["features"])


def snapshot_dates(features_root: Path) -> list[date]:
    """Every stored snapshot date, oldest first, as the manifest lists them."""
    partitions = (read_manifest(features_root) or {}).get("partitions") or []
    return sorted(date.fromisoformat(entry["as_of"]) for entry in partitions)


def latest_partition(features_root: Path) -> tuple[Path, date]:
    """The newest snapshot date and the file holding its rows."""
    dates = snapshot_dates(features_root)
    if not dates:
        raise FileNotFoundError(
            f"no feature snapshots under {features_root}: run `churnlens features` first")
    return partition_dir(features_root, dates[-1]) / PART, dates[-1]


def load_latest_snapshot(features_root: Path) -> tuple[pd.DataFrame, date]:
    """The newest snapshot date's rows only: what scoring and serving start from, without
    reading the whole history of snapshots."""
    path, as_of = latest_partition(features_root)
    frame = pd.read_parquet(path)
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    return frame.sort_values("account_id", kind="stable").reset_index(drop=True), as_of


def labels_of(frame: pd.DataFrame, target: str) -> np.ndarray:
    return frame[target].astype(bool).to_numpy().astype(np.int8)
