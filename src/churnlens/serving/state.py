"""What the server answers from: the champion bundle, its latest snapshot and its score table.

One immutable ``Served`` object holds all three; a reload builds a new one and swaps the
reference, so a request that started on the old model finishes on it.

Explaining every account takes a while on a large portfolio, so a server that finds no score
table for its champion and snapshot starts at once with a ranking (probabilities only, cheap)
and explains the accounts it is asked about live, while ``build_table`` writes the table in the
background; then a ``Served`` with the table is swapped in.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnlens.features.pipeline import read_directory
from churnlens.features.registry import PILLARS_ORDER
from churnlens.serving.changes import Previous, previous_snapshot
from churnlens.serving.coverage import coverage_answer
from churnlens.serving.freshness import history_of, written_at
from churnlens.serving.playbooks import Playbooks, load_playbooks
from churnlens.serving.score import (
    DIRECTORY_COLUMNS,
    Drift,
    Rows,
    champion,
    drift_state,
    latest_snapshot,
    score_frame,
    score_probabilities,
    score_rows,
    sort_riskiest,
    with_directory,
    write_table,
)
from churnlens.serving.timing import timing_answer
from churnlens.settings import Settings
from churnlens.training.bundle import Bundle
from churnlens.training.forecast import MEASURES, RevenueModel, forecast

ANSWER_CACHE = 200_000
"""Encoded answers kept per served model; beyond it the cache starts over."""


class ScoreTable:
    """The score table as columns plus an id → row lookup: one account's answer is a handful of
    array reads, not a pandas row (which costs more than the whole HTTP request otherwise)."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.frame = table.reset_index(drop=True)
        self.position = {str(a): i for i, a in enumerate(self.frame["account_id"])}
        self._columns = {c: self.frame[c].to_numpy() for c in self.frame.columns}
        self._pillars = [f"{p}_points" for p in PILLARS_ORDER  # not driver_k or change_k
                         if f"{p}_points" in self.frame.columns]

    def answer_at(self, row: int) -> dict[str, Any]:
        column = self._columns
        failing = column["failing_pillar"][row]
        return {
            "account_id": str(column["account_id"][row]),
            **{name: _text(column[name][row]) if name in column else None
               for name in DIRECTORY_COLUMNS},
            "as_of": str(column["as_of"][row])[:10],
            "model_version": str(column["model_version"][row]),
            "churn_probability": float(column["churn_probability"][row]),
            "expansion_probability": _number(column["expansion_probability"][row]),
            "tier": str(column["tier"][row]),
            "churn_model": str(column["churn_model"][row]) if "churn_model" in column
            else "full",
            "health_score": float(column["health_score"][row]),
            "segment": str(column["segment"][row]),
            **{name: _number(column[name][row])
               for name in ("arr", "arr_at_risk", "expected_expansion_arr") if name in column},
            **{name: _number(column[name][row]) if name in column else None
               for name in ("risk", "renewal_risk", "expected_revenue_12m", "lifetime_value")},
            **{name: _text(column[name][row]) if name in column else None
               for name in ("risk_basis", "value_basis")},
            "failing_pillar": failing if isinstance(failing, str) else None,
            "pillars": {name[:-len("_points")]: float(column[name][row])
                        for name in self._pillars},
            "context_points": (_number(column["context_points"][row])
                               if "context_points" in column else None),
            "drivers": json.loads(column["drivers_json"][row]),
            "context": _listed(column, "context_json", row),
            "improvements": _listed(column, "improvements_json", row),
            "playbook": {"name": str(column["playbook"][row]),
                         "reason": str(column["playbook_reason"][row])},
            "change": self._change_at(row),
            "timing": timing_answer(column, row),
            "coverage": coverage_answer(column, row),
        }

    def _change_at(self, row: int) -> dict[str, Any] | None:
        """What moved the score since the previous snapshot; None for an account new since
        (or a table written before churnlens kept changes)."""
        column = self._columns
        if "change_json" not in column or not isinstance(column["change_json"][row], str):
            return None
        return {"previous_as_of": str(column["previous_as_of"][row])[:10],
                "churn_points": float(column["churn_change"][row]),
                "health_points": float(column["health_change"][row]),
                "summary": str(column["change_summary"][row]),
                "drivers": json.loads(column["change_json"][row]),
                "context": _listed(column, "change_context_json", row)}

    def answer(self, account_id: str) -> dict[str, Any]:
        return self.answer_at(self.position[account_id])


@dataclass(frozen=True)
class Served:
    bundle: Bundle
    snapshot: pd.DataFrame
    """Latest snapshot rows, indexed by account_id."""
    ranking: pd.DataFrame
    """Every account riskiest first (account_id, churn_probability, tier, segment, and playbook
    once the table is there), indexed by account_id: what the portfolio is paged from."""
    table: ScoreTable | None
    """The explained score table; None while it is being built."""
    as_of: date
    playbooks: Playbooks
    table_source: str
    """``score table`` (read from HOME/scores), ``building`` or ``built by the server``."""
    drift: Drift
    rows: Rows
    """The snapshot as scoring reads it, in the order of ``snapshot``."""
    previous: Previous | None
    """The snapshot before, row for row with ``snapshot``: what the changes are measured from."""
    position: dict[str, int]
    """Account id → its row in ``rows`` and ``snapshot``."""
    directory: pd.DataFrame
    """Name and CSM of each account (``churnlens features`` writes them), by account id."""
    scored_at: datetime | None = None
    """When the score table was written (its file's modification time); None while it is
    being built."""
    history_end: date | None = None
    """The first day after the raw history the feature store was built from (its manifest),
    when this was loaded."""
    grid: str = "monthly"
    """The snapshot grid the feature store was built on."""
    encoded: dict[str, bytes] = field(default_factory=dict, compare=False)
    """Answers already serialised, by account id."""

    @property
    def version(self) -> str:
        return self.bundle.version

    def knows(self, account_id: str) -> bool:
        return account_id in self.position


def _listed(column: dict[str, Any], name: str, row: int) -> list[Any]:
    """A JSON list column of the table; empty in a table written before it was kept."""
    text = column[name][row] if name in column else None
    return json.loads(text) if isinstance(text, str) else []


def _text(value: Any) -> str | None:
    """A text cell of the table; None where it is empty."""
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def revenue_of(ranking: pd.DataFrame, model: RevenueModel | None = None
               ) -> dict[str, Any] | None:
    """ARR, ARR at risk and expected expansion ARR summed over these accounts (a segment, a
    CSM's book, all), and their GRR/NRR forecast when the model carries a revenue model.
    None where the accounts carry no ARR at all (a history without subscriptions): absent,
    not zero; ``expected_expansion_arr`` and ``forecast`` are None where there is no revenue
    model."""
    if "arr_at_risk" not in ranking or not np.isfinite(
            pd.to_numeric(ranking["arr"], errors="coerce").to_numpy(float)).any():
        return None
    out: dict[str, Any] = {"accounts": len(ranking), "arr": float(np.nansum(ranking["arr"])),
                           "arr_at_risk": float(np.nansum(ranking["arr_at_risk"])),
                           "expected_expansion_arr": None, "forecast": None}
    if (model is not None and "expected_expansion_arr" in ranking
            and ranking["expansion_probability"].notna().any()):
        out["expected_expansion_arr"] = float(np.nansum(ranking["expected_expansion_arr"]))
        predicted = forecast(ranking["arr"].to_numpy(float),
                             ranking["churn_probability"].to_numpy(float),
                             ranking["expansion_probability"].to_numpy(float), model)
        out["forecast"] = ({"level": predicted["level"],
                            "horizon_days": predicted["horizon_days"],
                            **{m: {k: predicted[m][k] for k in ("expected", "low", "high")}
                               for m in MEASURES}} if predicted["grr"] else None)
    return out


UNASSIGNED = "unassigned"
"""The CSM filter's value for the accounts the directory gives no CSM."""
ORDERS: dict[str, tuple[str, bool]] = {
    "risk": ("risk", False), "arr": ("arr", False), "arr_at_risk": ("arr_at_risk", False),
    "drop": ("health_change", True), "renewal": ("churn_before_renewal", False)}
"""The portfolio's orders: name -> (ranking column, ascending). ``risk`` is the ranking's own
order; ``drop`` is the biggest health drop first, ``renewal`` the likeliest to churn before
its renewal first."""


def of_csm(served: Served, ranking: pd.DataFrame, csm: str) -> pd.Series:
    """Which accounts of ``ranking`` ``csm`` owns; with ``UNASSIGNED``, those without a CSM."""
    owner = ranking["account_id"].map(served.directory["csm"])
    if csm == UNASSIGNED:
        return ~owner.map(lambda c: isinstance(c, str) and bool(c))
    return owner == csm


def ordered(ranking: pd.DataFrame, order: str) -> pd.DataFrame:
    """``ranking`` in one of ``ORDERS``; accounts without the value (no ARR, no renewal date,
    new since the last snapshot) last, ties in risk order."""
    column, ascending = ORDERS.get(order, ORDERS["risk"])
    if column == "risk" or column not in ranking:
        return ranking
    return ranking.sort_values(column, ascending=ascending, kind="stable",
                               na_position="last")


def value_by(served: Served, ranking: pd.DataFrame, by: str) -> list[dict[str, Any]]:
    """ARR, ARR at risk, expected 12-month revenue and lifetime value summed per segment or
    per CSM (``by``), biggest lifetime value first; empty where the accounts carry no value.
    Expected values add up over accounts, so a book's sum is its expected revenue."""
    if "lifetime_value" not in ranking or not ranking["lifetime_value"].notna().any():
        return []
    group = (ranking["segment"] if by == "segment" else ranking["account_id"].map(
        served.directory["csm"]).map(lambda c: c if isinstance(c, str) and c else UNASSIGNED))
    frame = ranking[["arr", "arr_at_risk", "expected_revenue_12m", "lifetime_value"]].copy()
    frame["accounts"] = 1
    sums = frame.groupby(group.to_numpy()).sum(min_count=1)
    sums = sums.sort_values("lifetime_value", ascending=False, na_position="last")
    return [{by: str(name), **{str(k): (None if pd.isna(v) else float(v))
                               for k, v in row.items()}, "accounts": int(row["accounts"])}
            for name, row in sums.iterrows()]


def _ranking_of(table: pd.DataFrame) -> pd.DataFrame:
    columns = ["account_id", "risk", "churn_probability", "expansion_probability", "tier",
               "segment", "playbook", "health_change", "arr", "arr_at_risk",
               "expected_expansion_arr", "churn_before_renewal", "days_to_renewal",
               "expected_revenue_12m", "lifetime_value"]
    return table[[c for c in columns if c in table]].set_index("account_id", drop=False)


def table_path(settings: Settings, as_of: date) -> Path:
    """Where the score table of the snapshot of ``as_of`` is written."""
    return settings.layout.scores / f"{as_of.isoformat()}.parquet"


def stored_table(settings: Settings, bundle: Bundle, as_of: date) -> pd.DataFrame | None:
    """The explained score table written for this model and snapshot, if there is one."""
    path = table_path(settings, as_of)
    if not path.is_file():
        return None
    scores = pd.read_parquet(path)
    if set(scores["model_version"]) != {bundle.version} or "drivers_json" not in scores:
        return None
    return scores


def load_served(settings: Settings) -> Served:
    """Champion, latest snapshot and, when it matches them, the score table."""
    bundle = champion(settings)
    snapshot, as_of = latest_snapshot(settings)
    playbooks = load_playbooks(settings.playbooks)
    history_end, grid = history_of(settings.layout.features)
    scores = stored_table(settings, bundle, as_of)
    scored_at = None
    if scores is not None:
        ranking, table, source = _ranking_of(scores), ScoreTable(scores), "score table"
        scored_at = written_at(table_path(settings, as_of))
    else:  # probabilities without explanations: fast enough to rank any portfolio at start
        ranking = sort_riskiest(score_probabilities(bundle, snapshot, settings)).set_index(
            "account_id", drop=False)
        table, source = None, "building"
    return Served(bundle=bundle, as_of=as_of, playbooks=playbooks,
                  drift=drift_state(bundle, snapshot),
                  snapshot=snapshot.set_index(snapshot["account_id"].astype(str), drop=False),
                  rows=Rows.of(bundle, snapshot),
                  previous=previous_snapshot(settings.layout.features, as_of,
                                             snapshot["account_id"]),
                  position={str(a): i for i, a in enumerate(snapshot["account_id"])},
                  directory=_directory(settings), ranking=ranking, table=table,
                  table_source=source, scored_at=scored_at, history_end=history_end,
                  grid=grid or settings.grid)


def _directory(settings: Settings) -> pd.DataFrame:
    table = read_directory(settings.layout.features)
    frame = table.to_pandas() if table is not None else pd.DataFrame(
        {"account_id": pd.Series(dtype=str)})
    for column in ("name", "csm"):
        if column not in frame:
            frame[column] = None
    return frame.set_index(frame["account_id"].astype(str), drop=False)


def name_of(served: Served, account_id: str) -> str:
    name = served.directory["name"].get(account_id)
    return str(name) if isinstance(name, str) and name else account_id


def read_table(served: Served, settings: Settings) -> Served | None:
    """The state that answers from the score table written for ``served``'s model and
    snapshot (by another worker, or by ``churnlens score``); None when there is none."""
    scores = stored_table(settings, served.bundle, served.as_of)
    if scores is None:
        return None
    return dataclasses.replace(served, ranking=_ranking_of(scores), table=ScoreTable(scores),
                               table_source="score table",
                               scored_at=written_at(table_path(settings, served.as_of)),
                               encoded={})


def build_table(served: Served, settings: Settings) -> Served:
    """The state that answers from the score table of ``served``'s model and snapshot: the
    one already written (by another worker, say), or one explained and written now."""
    stored = read_table(served, settings)
    if stored is not None:
        return stored
    scores = score_frame(served.bundle, served.snapshot.reset_index(drop=True), settings,
                         served.playbooks, previous=served.previous)
    scores["drift_flag"] = served.drift.flag
    scores = sort_riskiest(with_directory(scores, settings.layout.features))
    parquet, _ = write_table(scores, settings.layout.scores, served.as_of)
    return dataclasses.replace(served, ranking=_ranking_of(scores), table=ScoreTable(scores),
                               table_source="built by the server",
                               scored_at=written_at(parquet), encoded={})


def answers(served: Served, account_ids: list[str], settings: Settings) -> list[dict[str, Any]]:
    """Risk answers of known accounts, from the table or, while it is built, explained live."""
    if served.table is not None:
        found = [served.table.answer(a) for a in account_ids]
    else:
        positions = [served.position[a] for a in account_ids]
        previous = served.previous.take(positions) if served.previous is not None else None
        scored = ScoreTable(score_rows(served.bundle, served.rows.take(positions), settings,
                                       served.playbooks, previous))
        found = [scored.answer_at(i) for i in range(len(account_ids))]
    for answer in found:  # the directory the server loaded, for a table written without it
        for name in DIRECTORY_COLUMNS:
            if answer.get(name) is None:
                answer[name] = _text(served.directory[name].get(answer["account_id"]))
    return found


def encoded_answer(served: Served, account_id: str, settings: Settings) -> bytes:
    """One account's answer as JSON bytes, serialised once per served model."""
    cached = served.encoded.get(account_id)
    if cached is None:
        cached = json.dumps(answers(served, [account_id], settings)[0]).encode()
        if served.table is not None:  # live answers are not kept: the table replaces them
            if len(served.encoded) >= ANSWER_CACHE:
                served.encoded.clear()
            served.encoded[account_id] = cached
    return cached


@dataclass
class Runtime:
    """What one server process holds now; routes read it, reloads replace its fields whole."""

    served: Served | None = None
    problem: str | None = None
    """Why nothing is served yet (no model, no snapshot), in words that say what to do."""
    kpis: dict[str, Any] | None = None
    kpi_problem: str | None = "the KPIs are being computed from the raw history"
    history_end: date | None = None
    """The first day after the raw history as the feature store's manifest says now: set at
    each load, and re-read by the watcher when ``churnlens features`` writes a build, so a
    build this process failed to load still marks the scores it serves stale."""
    grid: str = "monthly"
