"""The feature registry: each feature declared once, as data beside the expression computing it.

Like a Feast feature view, the point-in-time semantics are declared, not buried in code paths:
entity ``account_id``, timestamp rule ``as_of`` (a snapshot sees only rows dated before the
start of day ``as_of``), and for each feature its pillar, unit, window, description and the
sentence that explains a value to a CSM. Like Hamilton, each feature is a named, typed function
whose parameters name its inputs; the pipeline (``snapshots.py``) wires them.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import ibis.expr.types as ir

Pillar = Literal["onboarding", "adoption", "support", "satisfaction", "commercial"]
Kind = Literal["number", "flag", "category"]
Role = Literal["lever", "context"]
"""A lever is behaviour the customer or the CSM can change (usage, adoption, tickets, NPS,
onboarding, spend); context is what frames it and no one moves this week (renewal timing,
tenure, billing period, contract, plan, seats bought, firmographics). Explanations list
drivers from levers and context apart, the failing pillar is judged on levers, and only
levers are proposed as improvements."""
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

Bounds = tuple[float | None, float | None]
"""A feature's valid range, (lowest, highest), each end included; None where a side has no
bound. What a what-if may set it to: a value outside cannot be true of any account."""

NOT_NEGATIVE: Bounds = (0, None)
UNIT_BOUNDS: dict[str, Bounds] = {
    **dict.fromkeys(("users", "seats", "events", "key actions", "features", "tickets",
                     "answers", "changes", "days", "hours", "money", "units", "quantity",
                     "currency per month", "currency per year"), NOT_NEGATIVE),
    "share": (0, 1), "ratio": NOT_NEGATIVE, "flag": (0, 1),
    "NPS (0-10)": (0, 10), "NPS points": (-100, 100), "CSAT (1-5)": (1, 5),
}
"""The range a unit implies where that is honest: a count, a duration, money (the contract
refuses negative MRR and quantities) and a ratio of counts are never negative; a share lies in
[0, 1]; a survey answer on its scale. A feature whose value is a change (``*_change_*``) or
exceeds its unit's whole (seat utilisation over 100%) declares its own."""


def unit_bounds(unit: str) -> Bounds | None:
    """The range ``unit`` implies (``UNIT_BOUNDS``), a rate of a count (``events per seat``)
    being never negative either; None for a unit that implies none (``score``), whose features
    must declare theirs."""
    if unit in UNIT_BOUNDS:
        return UNIT_BOUNDS[unit]
    counted, per, _ = unit.partition(" per ")
    if per and UNIT_BOUNDS.get(counted) == NOT_NEGATIVE:
        return NOT_NEGATIVE
    return None


WindowBounds = Bounds | Callable[[int], Bounds]
"""A template's range: the same for every window, or one per window (``days`` -> bounds)."""


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
    role: Role
    """``lever`` or ``context``: see :data:`Role`. Every declaration says which."""
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
    generated: Generated | None = None
    """For a feature expanded from a family: which family, event type and window; None for a
    declared one."""
    past: bool = False
    """Whether it describes a window that has closed (the 30 days before the last 30, the
    first 30 days after signup): a lever that explains a score, but no action taken now can
    move it, so it is never proposed as an improvement."""

    grows_with_time: bool = False
    """True for a count of days since a fixed event (sign-up, first event): it grows by one a
    day by definition, so its distribution moves as the customer base ages, and drift checks
    compare it with the ageing taken out (``training.drift``)."""

    valid: Bounds | None = None
    """The values it can take (``Bounds``): declared, or implied by its unit; None for a
    category, whose levels are its range."""

    def __post_init__(self) -> None:
        """Take the unit's range where none is declared; refuse a number without one, at
        import, so no feature reaches a what-if unchecked."""
        if self.kind == "category":
            return
        valid = self.valid if self.valid is not None else unit_bounds(self.unit)
        if valid is None:
            raise TypeError(f"{self.name}: unit {self.unit!r} implies no valid range; declare "
                            "valid=(lowest, highest), None for an open side")
        low, high = valid
        if low is not None and high is not None and low > high:
            raise ValueError(f"{self.name}: valid range {valid} is empty")
        object.__setattr__(self, "valid", valid)

    @property
    def is_lever(self) -> bool:
        return self.role == "lever"

    def explain(self, value: object) -> str:
        """The registry's sentence for ``value``, as a CSM reads it."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return f"{self.description}: no data."
        if self.kind == "category":
            return self.sentence.format(value=value)
        number = float(value)  # type: ignore[arg-type]
        sentence = self.sentence
        if abs(number) == 1:  # "Renewal in 1 day", "1 support ticket", never "1 days"
            sentence = _ONE_OF.sub(lambda m: m.group(1) + m.group(2)[:-1], sentence)
        return sentence.format(
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


_ONE_OF = re.compile(r"(\{(?:value|abs)\} (?:[A-Za-z]+ ){0,3}?)(days|seats|users|tickets|"
                     r"actions|answers|downgrades|expansions|features|events|hours)\b(?! were)")
"""A count in a sentence and the plural noun it counts (up to three words later): the noun
is made singular when the count is one."""


def _fmt(number: float) -> str:
    if not math.isfinite(number):
        return "unknown"
    if abs(number) < 1e12 and number == int(number):
        return f"{int(number):,}"
    return f"{number:,.1f}" if abs(number) >= 10 else f"{number:,.2f}"


REGISTRY: dict[str, Feature] = {}


def feature(*, pillar: Pillar, role: Role, unit: str, sentence: str, kind: Kind = "number",
            window_days: int | None = None, higher_is_riskier: bool | None = None,
            fill: float | None = None, also_needs: tuple[str, ...] = (), past: bool = False,
            grows_with_time: bool = False, valid: Bounds | None = None
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
            compute=fn, role=role, kind=kind, window_days=window_days,
            higher_is_riskier=higher_is_riskier,
            needs=SOURCE_TABLES.get(source, ()) + also_needs, inputs=inputs, fill=fill,
            past=past, grows_with_time=grows_with_time, valid=valid)
        return fn

    return register


def _for_window(valid: WindowBounds | None, days: int) -> Bounds | None:
    return valid(days) if callable(valid) else valid


def windowed(*, days: tuple[int, ...], name: str, pillar: Pillar, role: Role, unit: str,
             sentence: str, higher_is_riskier: bool | None = None, fill: float | None = None,
             also_needs: tuple[str, ...] = (), past: bool = False,
             valid: WindowBounds | None = None
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
                compute=functools.partial(fn, days=window), role=role, kind="number",
                window_days=window, higher_is_riskier=higher_is_riskier,
                needs=SOURCE_TABLES.get(source, ()) + also_needs, inputs=inputs, fill=fill,
                past=past, valid=_for_window(valid, window))
        return fn

    return register


def _derived_inputs(fn: Callable[..., ir.Value]) -> tuple[str, ...]:
    """Names of the features a derived feature reads (``features.<name>`` in its source)."""
    import re

    source = inspect.getsource(fn)
    names = re.findall(r"features\.([a-z_0-9]+)|features\[f?\"([a-z_0-9{}]+)\"\]", source)
    return tuple(dict.fromkeys(a or b for a, b in names))


# --------------------------------------------------------------------------- families

VOCABULARY_SIZE = 5
"""Event types of the vocabulary: the most frequent ones of the history. Each adds two to
three features, and a long tail of rare events would add columns that are zero almost
everywhere."""
SLUG_LENGTH = 40
"""Longest slug of an event name in a feature name."""


@dataclass(frozen=True)
class VocabularyEvent:
    """One event type of the history's vocabulary, as a build chose it."""

    event: str
    """The event name as the history spells it."""
    slug: str
    """Its spelling in feature and column names: ``[a-z0-9_]``, unique in the vocabulary."""
    rows: int = 0
    """Its events in the history when it was chosen (what ranked it)."""
    sums_quantity: bool = False
    """Whether its quantity is summed: it varies, and the event is not the money event (whose
    quantities are spend already)."""

    def measure(self, what: str) -> str:
        """The per-account measure of this event: ``<what>__<slug>``, e.g. ``events__export``."""
        return f"{what}__{self.slug}"


@dataclass(frozen=True)
class Vocabulary:
    """The event types whose counts (and quantities) a build computes apart, in rank order."""

    events: tuple[VocabularyEvent, ...] = ()

    def as_json(self) -> list[dict[str, object]]:
        return [{"event": e.event, "slug": e.slug, "rows": e.rows,
                 "sums_quantity": e.sums_quantity} for e in self.events]

    def definition(self) -> list[list[object]]:
        """What the vocabulary means for the stored columns (not how often each event was
        seen): part of the store's fingerprint, so a new top set rebuilds every snapshot."""
        return [[e.event, e.slug, e.sums_quantity] for e in self.events]

    @staticmethod
    def from_json(rows: Iterable[dict[str, object]] | None) -> Vocabulary:
        return Vocabulary(tuple(
            VocabularyEvent(event=str(r["event"]), slug=str(r["slug"]),
                            rows=int(r.get("rows") or 0),  # type: ignore[call-overload]
                            sums_quantity=bool(r.get("sums_quantity")))
            for r in rows or ()))


def slug_of(event: str) -> str:
    """An event name spelt for a column: lower case, runs of anything but ``[a-z0-9]`` as one
    ``_``, at most ``SLUG_LENGTH`` characters (``"Add to cart"`` -> ``add_to_cart``)."""
    text = re.sub(r"[^a-z0-9]+", "_", event.lower()).strip("_")[:SLUG_LENGTH].strip("_")
    return text or "event"


def _tag(event: str) -> str:
    return hashlib.sha256(event.encode()).hexdigest()[:8]


def choose_vocabulary(per_event: dict[str, tuple[int, bool]], money_event: str | None,
                      size: int = VOCABULARY_SIZE) -> Vocabulary:
    """The ``size`` most frequent event types (ties by name), each with a unique slug, in
    name order.

    ``per_event`` maps an event name to (events, whether its quantity varies). Names whose
    slugs collide (``"Add to cart"`` and ``"add-to-cart"``) each get an 8-digit tag of their
    own name appended, so a name's slug depends only on which names it collides with, never on
    the order they were read in.
    """
    ranked = sorted(per_event.items(), key=lambda item: (-item[1][0], item[0]))[:size]
    bases = {name: slug_of(name) for name, _ in ranked}
    taken: dict[str, int] = {}
    for base in bases.values():
        taken[base] = taken.get(base, 0) + 1
    slugs = {name: base if taken[base] == 1 else f"{base}_{_tag(name)}"
             for name, base in bases.items()}
    if len(set(slugs.values())) != len(slugs):
        raise ValueError(f"event names whose slugs cannot be told apart: {sorted(slugs)}")
    return Vocabulary(tuple(
        VocabularyEvent(event=name, slug=slugs[name], rows=rows,
                        sums_quantity=varies and name != money_event)
        for name, (rows, varies) in sorted(ranked)))  # name order: columns stay put when
    #                                                   the chosen types swap ranks


@dataclass(frozen=True)
class Generated:
    """Where a generated feature comes from: its family, its event type and its window."""

    family: str
    event: VocabularyEvent
    days: int

    @property
    def measure(self) -> str:
        """The per-account measure the feature sums (``events__<slug>``)."""
        return self.event.measure(FAMILIES[self.family].measure)


@dataclass(frozen=True)
class FeatureFamily:
    """One template, expanded into a feature per (event type, window) of the vocabulary.

    ``name`` is the template function's; ``pattern`` (the feature names), ``description`` and
    ``sentence`` say ``{days}`` and ``{event}`` where the window and the event go (a feature
    name takes the event's slug, the words its own name); pillar, role (lever or context),
    unit and direction are the template's. ``measure`` is what the engine sums per event type
    (``sources.roll_up_events``), ``only`` which event types the family applies to.
    """

    name: str
    pattern: str
    pillar: Pillar
    description: str
    unit: str
    sentence: str
    days: tuple[int, ...]
    measure: str
    compute: Callable[..., ir.Value]
    role: Role
    higher_is_riskier: bool | None = None
    fill: float | None = None
    only: Callable[[VocabularyEvent], bool] = field(default=lambda event: True)
    applies_to: str = "every event type of the vocabulary"
    """``only`` in words, for the catalogue."""
    valid: WindowBounds | None = None
    """The features' range; None: the unit's."""

    def feature(self, event: VocabularyEvent, days: int) -> Feature:
        """The ordinary feature this family makes for ``event`` over ``days``."""
        import functools

        words = event.event.replace("{", "{{").replace("}", "}}")  # survives str.format
        return Feature(
            name=self.pattern.format(days=days, event=event.slug), pillar=self.pillar,
            description=self.description.replace("{days}", str(days)).replace(
                "{event}", event.event),
            unit=self.unit,
            sentence=self.sentence.replace("{days}", str(days)).replace("{event}", words),
            source="usage", compute=functools.partial(self.compute, days=days,
                                                      measure=event.measure(self.measure)),
            role=self.role, window_days=days, higher_is_riskier=self.higher_is_riskier,
            needs=SOURCE_TABLES["usage"], fill=self.fill,
            generated=Generated(family=self.name, event=event, days=days),
            valid=_for_window(self.valid, days))

    def expand(self, vocabulary: Vocabulary) -> list[Feature]:
        return [self.feature(event, days) for days in self.days
                for event in vocabulary.events if self.only(event)]


FAMILIES: dict[str, FeatureFamily] = {}
"""Feature families by the name of their template function, declared by ``family``."""


def family(*, name: str, days: tuple[int, ...], measure: str, pillar: Pillar, role: Role,
           unit: str, sentence: str, higher_is_riskier: bool | None = None,
           fill: float | None = None, only: Callable[[VocabularyEvent], bool] | None = None,
           applies_to: str = "every event type of the vocabulary",
           valid: WindowBounds | None = None
           ) -> Callable[[Callable[..., ir.Value]], Callable[..., ir.Value]]:
    """Declare the decorated function as a family of per-event-type usage features, named
    ``name`` (a pattern with ``{days}`` and ``{event}``).

    The function takes ``usage``, ``days`` and ``measure`` (the per-account measure of one
    event type, ``<measure>__<slug>``) and reads it through ``sources.account_measure``, so
    the window and the event type are values it is given, never literals of its own.
    """

    def register(fn: Callable[..., ir.Value]) -> Callable[..., ir.Value]:
        params = list(inspect.signature(fn).parameters)
        if params != ["usage", "days", "measure"]:
            raise TypeError(f"{fn.__name__}: parameters (usage, days, measure), got {params}")
        if fn.__name__ in FAMILIES:
            raise ValueError(f"feature family {fn.__name__} declared twice")
        doc = (inspect.getdoc(fn) or "").splitlines()[0].rstrip(".")
        FAMILIES[fn.__name__] = FeatureFamily(
            name=fn.__name__, pattern=name, pillar=pillar, description=doc, unit=unit,
            sentence=sentence, days=days, measure=measure, compute=fn, role=role,
            higher_is_riskier=higher_is_riskier, fill=fill, only=only or (lambda event: True),
            applies_to=applies_to, valid=valid)
        return fn

    return register


def register_vocabulary(vocabulary: Vocabulary) -> tuple[str, ...]:
    """Expand every family over ``vocabulary`` into ``REGISTRY``; the generated names, in
    family, window and rank order.

    Called wherever a vocabulary is read back (a build's plan, the store's manifest, a model
    bundle), so a generated feature resolves like a declared one in any process. A name
    registered by an earlier vocabulary is replaced: its definition follows the latest.
    """
    load_all()
    names = []
    for template in FAMILIES.values():
        for generated in template.expand(vocabulary):
            existing = REGISTRY.get(generated.name)
            if existing is not None and existing.generated is None:
                raise ValueError(f"generated feature {generated.name} would replace a declared "
                                 "one")
            REGISTRY[generated.name] = generated
            names.append(generated.name)
    return tuple(names)


def register_generated(entries: dict[str, dict[str, object]]) -> None:
    """Re-register generated features from their records (``generated_record``), as a model
    bundle keeps them: ``{name: {"family": ..., "event": ..., "slug": ..., "days": ...}}``."""
    load_all()
    for name, record in entries.items():
        template = FAMILIES.get(str(record["family"]))
        if template is None:
            raise KeyError(f"{name}: no feature family {record['family']!r} in this churnlens")
        event = VocabularyEvent(event=str(record["event"]), slug=str(record["slug"]))
        feature_ = template.feature(event, int(record["days"]))  # type: ignore[call-overload]
        if feature_.name != name:
            raise ValueError(f"{name}: its record makes {feature_.name}")
        if name in REGISTRY and REGISTRY[name].generated is None:
            raise ValueError(f"generated feature {name} would replace a declared one")
        REGISTRY[name] = feature_


def generated_record(name: str) -> dict[str, object] | None:
    """What re-creates a generated feature in another process (None for a declared one)."""
    origin = REGISTRY[name].generated
    if origin is None:
        return None
    return {"family": origin.family, "event": origin.event.event, "slug": origin.event.slug,
            "days": origin.days}


def declared() -> dict[str, Feature]:
    """The features declared in code, without those generated from a vocabulary."""
    return {name: f for name, f in load_all().items() if f.generated is None}


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
    families: tuple[str, ...] = ()
    """Feature families expanded over each build's vocabulary (``register_vocabulary``)."""

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
        vocabulary,
    )

    return REGISTRY


def feature_sets() -> dict[str, FeatureSet]:
    everything = tuple(declared())
    return {
        "churn_v1": FeatureSet("churn_v1", everything,
                               "Every declared feature, all five pillars, and every family "
                               "expanded over the history's event vocabulary.",
                               families=tuple(FAMILIES)),
    }
