"""What would help: the lever changes that would lower an account's churn risk most.

An improvement says what the model itself answers for a realistic change: "If active users
per paid seat rose from 31% to 70% (the median of the low-risk accounts), churn risk would fall
from 42% to 27%". For each lever of the model (a feature someone can change, not one of a
window that has closed) the account's model input gets the lever at its target, the median
of the run's low-tier accounts, in the improving direction only; the features derived from it
are recomputed by their own registry expressions; and the edited input is scored by the
function the score table and the what-if score with (``explain.churn_probability``, the
cold-start model for new accounts included). One model call per lever over every account it
applies to, never one per account.

Derivations handled: a lever is moved through the one base feature an action changes (its
*root*): the lever itself when it is read from a source, or, for a derived lever, its first
input that is a changeable base lever (``seat_utilisation_30d`` moves ``active_users_30d``;
``activity_trend_90d`` moves ``active_days_90d``; ``nps_180d`` moves
``promoter_share_180d``). The root's value that puts the lever at its target is solved from
the lever's expression, which is linear in its root for every derivation of the registry
(ratios, differences, rates per 30 days), then rounded to a whole number when the root only
ever holds whole numbers (users, tickets, days), away from the current value. Every derived
feature of the model that reads the root (directly or through another derived feature: a
trend, a change, a ratio per seat) is recomputed from it, so ``changes`` holds every input
that moves and a what-if given ``changes`` scores exactly the stated probability. A lever
whose expression needs a feature the model does not read, or whose solved root falls outside
the range the run's accounts show, is not proposed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import ibis
import numpy as np
import pyarrow as pa

from churnlens.features.registry import REGISTRY, Feature, load_all
from churnlens.serving import explain
from churnlens.serving.playbooks import Playbooks
from churnlens.serving.wording import words
from churnlens.training.bundle import Bundle

MAX_IMPROVEMENTS = 3
"""Improvements listed per account, the best first."""
MIN_GAIN_POINTS = 0.1
"""A change that lowers churn risk by fewer percentage points is not worth a CSM's time."""
TARGET_NOTE = "the median of the low-risk accounts"
_ROWS = "lever_rows"


@dataclass(frozen=True)
class Lever:
    """One lever an improvement can move, and what moves with it."""

    feature: str
    """The feature set to its target."""
    root: str
    """The base feature an action changes: the feature itself, or its lever input."""
    dependents: tuple[str, ...]
    """The model's derived features recomputed from the root, in an order that computes each
    after its inputs (the feature itself among them when it is derived)."""
    inputs: tuple[str, ...]
    """The base features the dependents are computed from (the root among them)."""

    @property
    def spec(self) -> Feature:
        return REGISTRY[self.feature]


def _changeable_root(spec: Feature, space: set[str]) -> str | None:
    """The base feature an action changes to move ``spec``, or None."""
    if spec.source != "features":
        return spec.name
    for name in spec.inputs:
        parent = REGISTRY[name]
        if parent.source != "features" and parent.is_lever and not parent.past and name in space:
            return name
    return None


def _reads(name: str, root: str) -> bool:
    spec = REGISTRY[name]
    return spec.source == "features" and any(p == root or _reads(p, root) for p in spec.inputs)


def _base_inputs(name: str) -> set[str]:
    spec = REGISTRY[name]
    if spec.source != "features":
        return {name}
    return set().union(*(_base_inputs(p) for p in spec.inputs))


def levers_of(features: Sequence[str]) -> list[Lever]:
    """The levers an improvement can move among a model's ``features``."""
    load_all()
    space = set(features)
    found = []
    for name in features:
        spec = REGISTRY[name]
        if (not spec.is_lever or spec.past or spec.kind == "category"
                or spec.higher_is_riskier is None):
            continue
        root = _changeable_root(spec, space)
        if root is None:
            continue
        dependents = [n for n in features if _reads(n, root)]
        pending, ordered = list(dependents), []
        while pending:  # each after its inputs
            ready = [n for n in pending if not set(REGISTRY[n].inputs) & set(pending)]
            ordered += ready or pending[:1]
            pending = [n for n in pending if n not in ordered]
        inputs = set().union(set(), *(_base_inputs(n) for n in ordered)) | {root}
        if not inputs <= space:
            continue
        found.append(Lever(feature=name, root=root, dependents=tuple(ordered),
                           inputs=tuple(sorted(inputs))))
    return found


@dataclass(frozen=True)
class Targets:
    """Where each lever is healthy, taken once per scoring run from its low-tier accounts."""

    values: dict[str, float]
    """Lever feature → its median among the low-tier accounts."""
    bounds: dict[str, tuple[float, float]]
    """Root feature → the (lowest, highest) value the run's accounts hold: a solved root
    outside them is not a realistic change."""
    whole: frozenset[str]
    """Root features that only ever hold whole numbers in the run."""
    accounts: int
    """Low-tier accounts the targets are medians of."""


def improvement_targets(features: tuple[str, ...], x: np.ndarray, low: np.ndarray) -> Targets:
    """The targets of a scoring run: ``x`` is its model input, ``low`` its low-tier rows."""
    values: dict[str, float] = {}
    bounds: dict[str, tuple[float, float]] = {}
    whole: set[str] = set()
    for lever in levers_of(features):
        healthy = x[low, features.index(lever.feature)]
        healthy = healthy[np.isfinite(healthy)]
        column = x[:, features.index(lever.root)]
        seen = column[np.isfinite(column)]
        if not len(healthy) or not len(seen):
            continue
        values[lever.feature] = float(np.median(healthy))
        bounds[lever.root] = (float(seen.min()), float(seen.max()))
        if np.all(seen == np.round(seen)):
            whole.add(lever.root)
    return Targets(values=values, bounds=bounds, whole=frozenset(whole), accounts=int(low.sum()))


@functools.cache
def _derivation(lever: Lever) -> str:
    """The SQL that recomputes a lever's dependents from a table of its inputs, compiled once
    per process from the registry's own expressions (compiling costs ~15 ms, running it on a
    registered frame ~1 ms: per lever and run, not per account)."""
    table = ibis.table({name: "float64" for name in lever.inputs}, name=_ROWS)
    for name in lever.dependents:
        table = table.mutate(**{name: REGISTRY[name].compute(table).cast("float64")})
    return str(ibis.to_sql(table.select(*lever.dependents), dialect="duckdb"))


def _derive(lever: Lever, features: tuple[str, ...], x: np.ndarray, root: np.ndarray,
            con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """(rows, dependents): the lever's dependents recomputed with ``root`` as the root's value,
    by the registry's expressions on DuckDB, as the feature build computes them."""
    columns = {name: x[:, features.index(name)].astype("float64") for name in lever.inputs}
    columns[lever.root] = root.astype("float64")
    con.register(_ROWS, pa.table(columns))
    try:
        frame = con.execute(_derivation(lever)).fetch_arrow_table()
    finally:
        con.unregister(_ROWS)
    return np.column_stack([frame.column(name).to_numpy(zero_copy_only=False)
                            .astype("float64") for name in lever.dependents])


def _moved(lever: Lever, features: tuple[str, ...], x: np.ndarray, target: float,
           targets: Targets, con: duckdb.DuckDBPyConnection
           ) -> tuple[np.ndarray, np.ndarray]:
    """The edited input of the rows of ``x`` and whether each row's change is realistic."""
    root_column = features.index(lever.root)
    now = x[:, root_column]
    if lever.root == lever.feature:
        root = np.full(len(x), target)
    else:  # derived: linear in its root, solved from two evaluations (in one query)
        both = _derive(lever, features, np.vstack([x, x]), np.concatenate([now, now + 1.0]),
                       con)[:, lever.dependents.index(lever.feature)]
        here, step = both[:len(x)], both[len(x):] - both[:len(x)]
        with np.errstate(divide="ignore", invalid="ignore"):
            root = now + (target - here) / step
    if lever.root in targets.whole:
        root = np.where(root > now, np.ceil(root - 1e-9), np.floor(root + 1e-9))
    low, high = targets.bounds[lever.root]
    ok = np.isfinite(root) & (root >= low) & (root <= high) & (root != now)
    edited = x.copy()
    edited[:, root_column] = np.where(ok, root, now)
    if lever.dependents:
        derived = _derive(lever, features, x, edited[:, root_column], con)
        for k, name in enumerate(lever.dependents):
            edited[:, features.index(name)] = derived[:, k]
        # a lever not linear in its root (a spread of rates) may not move the healthy way
        # from the solved root: such a row gets no improvement from it
        column = features.index(lever.feature)
        was, now_value = x[:, column], edited[:, column]
        with np.errstate(invalid="ignore"):
            healthy = (now_value < was) if lever.spec.higher_is_riskier else (now_value > was)
        ok &= healthy
        edited[~ok] = x[~ok]
    return edited, ok


def _used(bundle: Bundle) -> set[str]:
    """Features some split of the churn model (or of the cold-start model) reads: a lever that
    moves none of them cannot change a probability, so it costs no model call."""
    boosters = [bundle.models["churn"].booster]
    if bundle.cold_start is not None:
        boosters.append(bundle.cold_start.model.booster)
    used: set[str] = set()
    for booster in boosters:
        splits = booster.feature_importance("split")
        used |= {n for n, k in zip(booster.feature_name(), splits, strict=True) if k > 0}
    return used


def improvements(bundle: Bundle, x: np.ndarray, new: np.ndarray, churn: np.ndarray,
                 targets: Targets | None, playbooks: Playbooks) -> list[list[dict[str, Any]]]:
    """Each row's best lever changes (at most ``MAX_IMPROVEMENTS``, one per pillar so that
    three ways of counting NPS answers never crowd out a usage lever, each lowering its churn
    probability by ``MIN_GAIN_POINTS`` or more), best first."""
    out: list[list[dict[str, Any]]] = [[] for _ in range(len(x))]
    if targets is None or not len(x):
        return out
    features = bundle.space.features
    used = _used(bundle)
    levers = [lever for lever in levers_of(features)
              if lever.feature in targets.values and lever.root in targets.bounds
              and used & {lever.root, *lever.dependents}]
    gains = np.full((len(x), len(levers)), -np.inf)
    tried: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    """Per lever: its rows, their edited root and dependents, their probability after."""
    con = duckdb.connect()
    try:
        for index, lever in enumerate(levers):
            target = targets.values[lever.feature]
            value = x[:, features.index(lever.feature)]
            wrong_side = value > target if lever.spec.higher_is_riskier else value < target
            rows = np.flatnonzero(np.isfinite(value) & wrong_side)
            moved = [features.index(n) for n in (lever.root, *lever.dependents)]
            if len(rows):
                edited, ok = _moved(lever, features, x[rows], target, targets, con)
                rows, edited = rows[ok], edited[ok]
            if not len(rows):
                tried.append((rows, np.empty((0, len(moved))), np.empty(0)))
                continue
            after = explain.churn_probability(bundle, edited, new[rows])
            gains[rows, index] = churn[rows] - after
            tried.append((rows, edited[:, moved], after))
    finally:
        con.close()
    worth = gains * 100.0 >= MIN_GAIN_POINTS
    order = np.argsort(-gains, axis=1, kind="stable")
    for row in np.flatnonzero(worth.any(axis=1)):
        pillars: set[str] = set()
        for index in order[row]:
            if not worth[row, index] or len(out[row]) == MAX_IMPROVEMENTS:
                break
            lever = levers[index]
            if lever.spec.pillar in pillars:
                continue
            pillars.add(lever.spec.pillar)
            rows, moved_values, after = tried[index]
            at = int(np.searchsorted(rows, row))
            out[row].append(_improvement(lever, features, x[row], moved_values[at],
                                         float(churn[row]), float(after[at]), playbooks))
    return out


def _improvement(lever: Lever, features: tuple[str, ...], before: np.ndarray,
                 moved_values: np.ndarray, churn_before: float, churn_after: float,
                 playbooks: Playbooks) -> dict[str, Any]:
    """One improvement as the answer lists it; ``moved_values`` are the root's and the
    dependents' values after the change."""
    spec = lever.spec
    moved = (lever.root, *lever.dependents)
    after = dict(zip(moved, (float(v) for v in moved_values), strict=True))
    changes = {name: _plain(after[name]) for name in moved
               if not _same(float(before[features.index(name)]), after[name])}
    was, now = float(before[features.index(lever.feature)]), after[lever.feature]
    verb = "rose" if now > was else "fell"
    sentence = (f"If {_lower_first(words(spec.description))} {verb} from {spec.shown(was)} to "
                f"{spec.shown(now)} ({TARGET_NOTE}), churn risk would fall from "
                f"{_pct(churn_before)} to {_pct(churn_after)}")
    return {"feature": lever.feature, "pillar": spec.pillar, "root": lever.root,
            "value": was, "improved_value": now, "changes": changes,
            "churn_probability": churn_before, "improved_churn_probability": churn_after,
            "points": 100.0 * (churn_after - churn_before),
            "playbook": playbooks.for_pillar(spec.pillar), "sentence": sentence}


def _same(a: float, b: float) -> bool:
    return bool(a == b or (math.isnan(a) and math.isnan(b)))


def _plain(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _lower_first(text: str) -> str:
    """``Active users ...`` → ``active users ...``; ``NPS answers ...`` stays."""
    if len(text) > 1 and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def _pct(probability: float) -> str:
    points = 100.0 * probability
    return f"{points:.0f}%" if points >= 10 else f"{points:.1f}%"
