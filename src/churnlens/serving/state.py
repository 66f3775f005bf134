"""What the server answers from: the champion bundle, its latest snapshot and its score table.

One immutable ``Served`` object holds all three; a reload builds a new one and swaps the
reference, so a request that started on the old model finishes on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from churnlens.serving.playbooks import Playbooks, load_playbooks
from churnlens.serving.score import (
    Drift,
    champion,
    drift_state,
    latest_snapshot,
    score_frame,
    write_table,
)
from churnlens.settings import Settings
from churnlens.training.bundle import Bundle


@dataclass(frozen=True)
class Served:
    bundle: Bundle
    snapshot: pd.DataFrame
    """Latest snapshot rows, indexed by account_id."""
    scores: pd.DataFrame
    """Score table rows, indexed by account_id, riskiest first."""
    as_of: date
    playbooks: Playbooks
    table_source: str
    """``score table`` when read from HOME/scores, ``computed at start`` otherwise."""
    drift: Drift

    @property
    def version(self) -> str:
        return self.bundle.version


def load_served(settings: Settings) -> Served:
    """Champion, latest snapshot and the matching score table (computed if missing or stale)."""
    bundle = champion(settings)
    snapshot, as_of = latest_snapshot(settings)
    playbooks = load_playbooks(settings.playbooks)
    path = settings.layout.scores / f"{as_of.isoformat()}.parquet"
    scores = pd.read_parquet(path) if path.is_file() else None
    source = "score table"
    drift = drift_state(bundle, snapshot)
    if scores is None or set(scores["model_version"]) != {bundle.version}:
        scores = score_frame(bundle, snapshot, settings, playbooks)
        scores["drift_flag"] = drift.flag
        scores = scores.sort_values(["churn_probability", "account_id"],
                                    ascending=[False, True], kind="stable")
        write_table(scores.reset_index(drop=True), settings.layout.scores, as_of)
        source = "computed at start"
    return Served(bundle=bundle, snapshot=snapshot.set_index("account_id", drop=False),
                  scores=scores.set_index("account_id", drop=False), as_of=as_of,
                  playbooks=playbooks, table_source=source, drift=drift)


def answer_from_row(row: pd.Series) -> dict[str, Any]:
    """A score-table row as the API's risk answer."""
    return {
        "account_id": row["account_id"],
        "as_of": str(row["as_of"])[:10],
        "model_version": row["model_version"],
        "churn_probability": float(row["churn_probability"]),
        "expansion_probability": float(row["expansion_probability"]),
        "tier": row["tier"],
        "health_score": int(row["health_score"]),
        "segment": row["segment"],
        "failing_pillar": row["failing_pillar"] if isinstance(row["failing_pillar"], str)
        else None,
        "pillars": {name[:-len("_points")]: float(row[name]) for name in row.index
                    if name.endswith("_points") and not name.startswith("driver_")},
        "drivers": json.loads(row["drivers_json"]),
        "playbook": {"name": row["playbook"], "reason": row["playbook_reason"]},
    }
