"""What changed since the last score, and why.

Each snapshot's explanation shares out the gap between the account's calibrated churn
probability and the model's base probability over the features (``explain.explain``). The
base is the same for both snapshots of one model, so the difference of two explanations,
feature by feature, shares out exactly the change in probability: the movers sum to the
change. Movers are split as the explanations are: levers (``change_json``, the
``change_k`` columns) and context (``change_context_json``: a renewal coming closer, a plan
change), each list closed by what its unnamed features add, so the two lists together sum to
the change. The health score is a function of the probability alone
(``explain.health_score``), so its change is the health now minus the health before and the
same movers explain it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnlens.features.registry import REGISTRY, load_all
from churnlens.features.store import PART, partition_dir
from churnlens.serving import explain
from churnlens.training.matrix import snapshot_dates

CHANGE_DRIVERS = 3
"""Movers the score table keeps as columns; the JSON column keeps ``explain.TOP_DRIVERS``."""
MATERIAL_POINTS = 0.5
"""A change in churn probability below this many points reads as 'little changed'."""


@dataclass(frozen=True)
class Previous:
    """The snapshot before the scored one, row-aligned with it (NaN rows for new accounts)."""

    frame: pd.DataFrame
    as_of: date
    present: np.ndarray
    """True where the account was in the previous snapshot."""

    def take(self, positions: list[int] | range) -> Previous:
        """These rows (positions in the scored snapshot)."""
        rows = list(positions)
        return Previous(frame=self.frame.iloc[rows].reset_index(drop=True), as_of=self.as_of,
                        present=self.present[rows])


def previous_partition(features_root: Path, as_of: date) -> tuple[Path, date] | None:
    """The file and date of the latest snapshot before ``as_of``, if there is one."""
    earlier = [d for d in snapshot_dates(features_root) if d < as_of]
    if not earlier or not (partition_dir(features_root, earlier[-1]) / PART).is_file():
        return None
    return partition_dir(features_root, earlier[-1]) / PART, earlier[-1]


def previous_snapshot(features_root: Path, as_of: date, account_ids: pd.Series
                      ) -> Previous | None:
    """The latest snapshot before ``as_of``, aligned to ``account_ids``; None if none."""
    found = previous_partition(features_root, as_of)
    return align(pd.read_parquet(found[0]), found[1], account_ids) if found else None


def align(frame: pd.DataFrame, as_of: date, account_ids: pd.Series) -> Previous:
    keyed = frame.assign(account_id=frame["account_id"].astype(str)).set_index("account_id")
    ids = account_ids.astype(str).to_numpy()
    aligned = keyed.reindex(ids).reset_index(names="account_id")
    return Previous(frame=aligned, as_of=as_of, present=np.isin(ids, keyed.index))


@dataclass(frozen=True)
class Side:
    """One snapshot of the accounts as the change needs it."""

    explained: explain.Explained
    x: np.ndarray
    """The model input (categories as codes): equal where the value did not change."""
    values: np.ndarray
    """The values as a CSM reads them."""
    health: np.ndarray


def change_columns(features: tuple[str, ...], now: Side, before: Side, present: np.ndarray,
                   previous_as_of: date) -> dict[str, Any]:
    """The score table's change columns: probability and health change, the movers."""
    load_all()
    # (rows, features); each row sums to the change in probability points
    moved = now.explained.points - before.explained.points
    unchanged = (now.x == before.x) | (np.isnan(now.x) & np.isnan(before.x))
    levers = explain.levers_of(features)
    churn_change = np.where(present, 100.0 * (now.explained.probability
                                              - before.explained.probability), np.nan)
    health_change = np.where(present, np.round(now.health - before.health, 1), np.nan)
    now_values, before_values = now.values, before.values
    summaries: list[str | None] = []
    movers: list[list[dict[str, Any]]] = []
    listed: list[list[dict[str, Any]]] = []
    listed_context: list[list[dict[str, Any]]] = []
    for i in range(len(moved)):
        if not present[i]:
            summaries.append(None)
            movers.append([])
            listed.append([])
            listed_context.append([])
            continue
        # only features whose value changed are named; what unchanged features add through
        # their interactions with the changed ones is one 'other' entry per list, so the two
        # lists together still sum to the change
        changed = ~unchanged[i]
        lists = []
        for among, rest in ((levers, "Every other lever"), (~levers, "All other context")):
            size = np.where(changed & among, np.abs(moved[i]), 0.0)
            order = np.argsort(-size, kind="stable")
            top = [_mover(features[j], before_values[i, j], now_values[i, j], moved[i, j])
                   for j in order[:explain.TOP_DRIVERS] if size[j] >= 0.05]
            named = sum(m["points"] for m in top)
            lists.append((top, [*top, {
                "feature": None, "points": float(moved[i][among].sum() - named),
                "sentence": f"{rest}, including the interactions of unchanged features with "
                "the changed ones"}]))
        movers.append(lists[0][0])
        listed.append(lists[0][1])
        listed_context.append(lists[1][1])
        summaries.append(summary(float(churn_change[i]), float(health_change[i]), movers[-1],
                                 lists[1][0]))
    columns: dict[str, Any] = {
        "previous_as_of": pd.Series([previous_as_of if p else None for p in present],
                                    dtype=object),
        "churn_change": churn_change, "health_change": health_change,
        "change_summary": pd.Series(summaries, dtype=object),
    }
    for k in range(CHANGE_DRIVERS):
        for key, column in (("feature", f"change_{k + 1}"), ("points", f"change_{k + 1}_points"),
                            ("sentence", f"change_{k + 1}_sentence")):
            columns[column] = pd.Series([m[k][key] if len(m) > k else None for m in movers],
                                        dtype=object)
    columns["change_json"] = [json.dumps(m, default=str) if present[i] else None
                              for i, m in enumerate(listed)]
    columns["change_context_json"] = [json.dumps(m, default=str) if present[i] else None
                                      for i, m in enumerate(listed_context)]
    return columns


def no_change_columns(rows: int) -> dict[str, Any]:
    """The change columns of accounts scored without a previous snapshot."""
    nothing = pd.Series([None] * rows, dtype=object)
    columns: dict[str, Any] = {"previous_as_of": nothing, "churn_change": np.full(rows, np.nan),
                               "health_change": np.full(rows, np.nan), "change_summary": nothing}
    for k in range(CHANGE_DRIVERS):
        columns[f"change_{k + 1}"] = nothing
        columns[f"change_{k + 1}_points"] = nothing
        columns[f"change_{k + 1}_sentence"] = nothing
    columns["change_json"] = nothing
    columns["change_context_json"] = nothing
    return columns


def _plain(value: object) -> object:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _mover(name: str, before: object, after: object, points: float) -> dict[str, Any]:
    before, after = _plain(before), _plain(after)
    return {"feature": name, "before": before, "after": after, "points": float(points),
            "pillar": REGISTRY[name].pillar, "role": REGISTRY[name].role,
            "sentence": REGISTRY[name].explain_change(before, after)}


def summary(churn_points: float, health_points: float, movers: list[dict[str, Any]],
            context: list[dict[str, Any]] | None = None) -> str:
    """One line a CS leader reads: how the score moved and the levers that moved it (the
    context, such as a renewal coming closer, only when no lever moved it that way)."""
    if abs(churn_points) < MATERIAL_POINTS:
        return "Little changed since the last score."
    direction = "fell" if health_points < 0 else "rose" if health_points > 0 else "held"
    health = (f"Health {direction} {abs(health_points):.1f} points" if direction != "held"
              else "Health held")
    causes = [m for m in movers if np.sign(m["points"]) == np.sign(churn_points)][:2]
    framed = [m for m in context or () if np.sign(m["points"]) == np.sign(churn_points)][:1]
    because = "; ".join(m["sentence"] for m in causes or movers[:2])
    if not causes and framed:
        because = "; ".join([*(m["sentence"] for m in movers[:1]),
                             f"context: {framed[0]['sentence']}"])
    return f"{health} (churn risk {churn_points:+.1f} points)" + (f": {because}." if because
                                                                 else ".")
