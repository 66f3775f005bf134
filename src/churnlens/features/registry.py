"""The feature registry: each feature declared once, as data beside the expression computing it.

Like a Feast feature view, the point-in-time semantics are declared, not buried in code paths:
entity ``account_id``, timestamp rule ``as_of`` (a snapshot sees only rows dated before the
start of day ``as_of``), and for each feature its pillar, unit, window, description and the
sentence that explains a value to a CSM. Like Hamilton, each feature is a named, typed function
whose parameters name its inputs; the pipeline (``snapshots.py``) wires them.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import ibis.expr.types as ir

Pillar = Literal["onboarding", "adoption", "support", "satisfaction", "commercial"]
Kind = Literal["number", "flag", "category"]
Source = Literal["usage", "user_activity", "feature_usage", "tickets", "surveys",
                 "subscriptions", "accounts", "onboarding", "features"]

PILLARS_ORDER: tuple[Pillar, ...] = ("onboarding", "adoption", "support", "satisfaction",
                                     "commercial")
ENTITY = "account_id"
TIMESTAMP = "as_of"
TIMESTAMP_RULE = ("A snapshot (account_id, as_of) describes what was knowable at the start of day "
                  "as_of: features read only rows dated before as_of; labels read only rows in "
                  "[as_of, as_of + horizon).")

SOURCE_TABLES: dict[str, tuple[str, ...]] = {
    "usage": ("usage_events",),
    "user_activity": ("usage_events",),
    "feature_usage": ("usage_events",),
    "onboarding": ("accounts", "usage_events"),
    "tickets": ("tickets",),
    "surveys": ("surveys",),
    "subscriptions": ("subscriptions",),
    "accounts": ("accounts",),
}
"""Contract tables behind each source relation the feature functions receive."""

AGGREGATED_SOURCES = ("usage", "user_activity", "feature_usage", "tickets", "surveys")
"""Sources with many rows per snapshot: their features are aggregate expressions."""
STATE_SOURCES = ("subscriptions", "accounts", "onboarding")
"""Sources with one row per snapshot: their features are plain column expressions."""


@dataclass(frozen=True)
class Feature:
    """One declared feature."""

    name: str
    pillar: Pillar
    description: str
    unit: str
    sentence: str
    """Format string explaining a value: ``{value}``, ``{abs}``, ``{pct}``, ``{direction}``."""
    source: Source
    compute: Callable[..., ir.Value]
    kind: Kind = "number"
    window_days: int | None = None
    higher_is_riskier: bool | None = None
    """Which way the value usually pushes churn risk; None when it depends."""
    needs: tuple[str, ...] = field(default=())
    """Contract tables the feature reads (derived features: through their inputs)."""
    inputs: tuple[str, ...] = field(default=())
    """For derived features: the names of the features they are computed from."""
    fill: float | None = None
    """Value for an account with no rows in the source (e.g. 0 tickets), when the table exists."""

    def explain(self, value: object) -> str:
        """The registry's sentence for ``value``, as a CSM reads it."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return f"{self.description}: no data."
        if self.kind == "category":
            return self.sentence.format(value=value)
        number = float(value)  # type: ignore[arg-type]
        return self.sentence.format(
            value=_fmt(number), abs=_fmt(abs(number)), pct=_fmt(abs(number) * 100.0),
            direction="up" if number > 0 else "down" if number < 0 else "flat",
            yes_no="yes" if number else "no")


    def explain_change(self, before: object, after: object) -> str:
        """The sentence for the value now, with the value at the previous snapshot."""
        return f"{self.explain(after).rstrip('.')} (was {self.shown(before)})"

    def shown(self, value: object) -> str:
        """A value as the sentence would show it (a share as a percentage)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "no data"
        if self.kind == "category":
            return str(value)
        number = float(value)  # type: ignore[arg-type]
        if "{pct}" in self.sentence:  # shown as the sentence shows it: a share or a trend
            signed = "{direction}" in self.sentence
            return f"{number * 100:+,.0f}%" if signed else f"{_fmt(number * 100)}%"
        return _fmt(number)


def _fmt(number: float) -> str:
    if not math.isfinite(number):
        return "unknown"
    if abs(number) < 1e12 and number == int(number):
        return f"{int(number):,}"
    return f"{number:,.1f}" if abs(number) >= 10 else f"{number:,.2f}"


REGISTRY: dict[str, Feature] = {}


def feature(*, pillar: Pillar, unit: str, sentence: str, kind: Kind = "number",
            window_days: int | None = None, higher_is_riskier: bool | None = None,
            fill: float | None = None, also_needs: tuple[str, ...] = ()
            ) -> Callable[[Callable[..., ir.Value]], Callable[..., ir.Value]]:
    """Register the decorated function as a feature named after it.

    The function's single parameter names its source relation (``usage``, ``tickets``, ...,
    or ``features`` for a feature derived from other features); its docstring's first line is
    the description.
    """

    def register(fn: Callable[..., ir.Value]) -> Callable[..., ir.Value]:
        params = list(inspect.signature(fn).parameters)
        if len(params) != 1 or params[0] not in (*SOURCE_TABLES, "features"):
            raise TypeError(f"{fn.__name__}: one parameter naming its source, got {params}")
        source = params[0]
        if fn.__name__ in REGISTRY:
            raise ValueError(f"feature {fn.__name__} declared twice")
        doc = inspect.getdoc(fn) or ""
        inputs = _derived_inputs(fn) if source == "features" else ()
        REGISTRY[fn.__name__] = Feature(
            name=fn.__name__, pillar=pillar, description=doc.splitlines()[0].rstrip("."),
            unit=unit, sentence=sentence, source=source,  # type: ignore[arg-type]
            compute=fn, kind=kind, window_days=window_days,
            higher_is_riskier=higher_is_riskier,
            needs=SOURCE_TABLES.get(source, ()) + also_needs, inputs=inputs, fill=fill)
        return fn

    return register


def windowed(*, days: tuple[int, ...], name: str, pillar: Pillar, unit: str, sentence: str,
             higher_is_riskier: bool | None = None, fill: float | None = None,
             also_needs: tuple[str, ...] = ()
             ) -> Callable[[Callable[..., ir.Value]], Callable[..., ir.Value]]:
    """Register one feature per window from one definition (Hamilton's ``@parameterize``).

    The decorated function takes its source and ``days``; ``name``, the sentence and the
    docstring say ``{days}`` where the window goes. The window is a value the function reads
    (``sources.window_key(days)``) and the declaration's ``window_days``, never a literal
    written twice, so a feature cannot say 365 days and read 180.
    """

    def register(fn: Callable[..., ir.Value]) -> Callable[..., ir.Value]:
        import functools

        params = list(inspect.signature(fn).parameters)
        if len(params) != 2 or params[1] != "days" or params[0] not in (*SOURCE_TABLES,
                                                                          "features"):
            raise TypeError(f"{fn.__name__}: parameters (source, days), got {params}")
        source = params[0]
        doc = (inspect.getdoc(fn) or "").splitlines()[0].rstrip(".")
        for window in days:
            feature_name = name.format(days=window)
            if feature_name in REGISTRY:
                raise ValueError(f"feature {feature_name} declared twice")
            inputs = (tuple(n.format(days=window) for n in _derived_inputs(fn))
                      if source == "features" else ())
            REGISTRY[feature_name] = Feature(
                name=feature_name, pillar=pillar, description=doc.replace("{days}", str(window)),
                unit=unit, sentence=sentence.replace("{days}", str(window)),
                source=source,  # type: ignore[arg-type]
                compute=functools.partial(fn, days=window), kind="number", window_days=window,
                higher_is_riskier=higher_is_riskier,
                needs=SOURCE_TABLES.get(source, ()) + also_needs, inputs=inputs, fill=fill)
        return fn

    return register


def _derived_inputs(fn: Callable[..., ir.Value]) -> tuple[str, ...]:
    """Names of the features a derived feature reads (``features.<name>`` in its source)."""
    import re

    source = inspect.getsource(fn)
    names = re.findall(r"features\.([a-z_0-9]+)|features\[f?\"([a-z_0-9{}]+)\"\]", source)
    return tuple(dict.fromkeys(a or b for a, b in names))


def needs_of(name: str) -> tuple[str, ...]:
    """Every contract table a feature depends on, following derived features to their roots."""
    spec = REGISTRY[name]
    if spec.source != "features":
        return spec.needs
    tables: dict[str, None] = {}
    for parent in spec.inputs:
        tables.update(dict.fromkeys(needs_of(parent)))
    return tuple(tables)


@dataclass(frozen=True)
class FeatureSet:
    """A named list of features that training and serving share."""

    name: str
    features: tuple[str, ...]
    description: str

    def available(self, tables: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(features computable from ``tables``, features absent because a table is missing)."""
        present = tuple(f for f in self.features if set(needs_of(f)) <= tables)
        absent = tuple(f for f in self.features if f not in present)
        return present, absent


def load_all() -> dict[str, Feature]:
    """Import every feature module so the registry is complete."""
    from churnlens.features import (  # noqa: F401
        commercial,
        history,
        onboarding,
        satisfaction,
        support,
        usage,
    )

    return REGISTRY


def feature_sets() -> dict[str, FeatureSet]:
    load_all()
    everything = tuple(REGISTRY)
    return {
        "churn_v1": FeatureSet("churn_v1", everything,
                               "Every registered feature, all five pillars."),
    }
