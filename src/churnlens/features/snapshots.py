"""Snapshots and labels: the point-in-time table every model trains and scores on.

A snapshot is (account_id, as_of) for every account that is a customer at the start of day
``as_of``; its features see only rows dated before ``as_of`` (``sources.py``) and its labels only
what happens in ``[as_of, as_of + horizon)``. The whole table is one Ibis expression, executed by
whichever engine holds the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

import ibis
import ibis.expr.types as ir
from ibis import _

from churnlens.features import sources
from churnlens.features.registry import (
    AGGREGATED_SOURCES,
    ENTITY,
    REGISTRY,
    STATE_SOURCES,
    TIMESTAMP,
    Vocabulary,
    choose_vocabulary,
    feature_sets,
    load_all,
    register_vocabulary,
)
from churnlens.features.sources import Grid, _day, attach

DEFAULT_KEY_EVENTS = ("workflow_run", "report_create", "integration_sync")
LABELS = ("churned", "expanded")
MONEY = "money"
"""What money features need besides usage_events: a ``money_event`` setting."""
CHURN_DAY = "churn_day"
"""Days from as_of to the churn (0 = on as_of itself), null when the account did not churn in
the window: when, inside the horizon, the label ``churned`` happened (discrete-time hazard
models in ``training/hazard.py`` read it). Same rows and rules as ``churned``."""
RELATIVE_TOLERANCE = 1e-9
"""Slack on the expansion threshold: 100 x 1.1 is 110.00000000000001 in floating point, and an
exact +10% must count as reaching +10%."""


@dataclass(frozen=True)
class SnapshotSpec:
    """How snapshots and labels are cut; every field is a user setting."""

    grid: Literal["monthly", "weekly"] = "monthly"
    horizon_days: int = 90
    churn_definition: Literal["subscription", "inactivity"] = "subscription"
    inactivity_days: int = 90
    grace_days: int = 30
    expansion_min_share: float = 0.10
    key_events: tuple[str, ...] = DEFAULT_KEY_EVENTS
    feature_set: str = "churn_v1"
    money_event: str | None = None
    """The event whose quantity is an amount of money (spend features); None: no money."""
    history_start: date | None = None
    history_end: date | None = None
    """First day after the history (default: the day after the last event)."""
    first_as_of: date | None = None
    """Earliest snapshot (default: one grid step after the history starts)."""


@dataclass(frozen=True)
class SnapshotPlan:
    """What a build will compute, decided before any heavy work."""

    dates: tuple[date, ...]
    features: tuple[str, ...]
    absent_features: tuple[str, ...]
    absent_reason: dict[str, str] = field(default_factory=dict)
    history_start: date | None = None
    history_end: date | None = None
    event_names: tuple[str, ...] | None = None
    """The product features (event names) in the history, read in the same scan as its span;
    None: the build reads them itself."""
    events: int | None = None
    """Usage events in the history, counted in the same scan; None: unknown."""
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    """The event types the feature families were expanded over (``registry.FAMILIES``)."""
    generated: tuple[str, ...] = ()
    """The features expanded from them: a part of ``features``, after the declared ones."""


# --------------------------------------------------------------------------- the grid


def history_span(tables: dict[str, ir.Table]) -> tuple[date, date]:
    """First day of the history and the first day after it, from the usage events."""
    start, end, _, _, _ = history_span_and_events(tables)
    return start, end


def history_span_and_events(tables: dict[str, ir.Table]
                            ) -> tuple[date, date, tuple[str, ...], int,
                                       dict[str, tuple[int, bool]]]:
    """The history's span, its event names, how many events, and per event name (events,
    whether its quantity varies), from one scan of the usage events."""
    events = tables["usage_events"]
    per_event = events.group_by("event").aggregate(
        first=events.event_ts.min(), last=events.event_ts.max(), rows=_.count(),
        varies=(events.quantity.min() != events.quantity.max()).fill_null(False)).execute()
    if per_event.empty:
        raise ValueError("usage_events is empty: there is no history to build snapshots from")
    first, last = per_event["first"].min(), per_event["last"].max()
    named = per_event[per_event["event"].notna()]
    names = tuple(sorted(named["event"]))
    stats = {str(row.event): (int(row.rows), bool(row.varies))
             for row in named.itertuples(index=False)}
    return (first.date(), last.date() + timedelta(days=1), names, int(per_event["rows"].sum()),
            stats)


def grid_dates(start: date, end: date, grid: str, first: date | None = None) -> list[date]:
    """Snapshot dates strictly after ``start`` and on or before ``end``.

    Monthly snapshots fall on the 1st, weekly ones on Mondays, the first of them one step into
    the history, so every snapshot has some history behind it.
    """
    dates: list[date] = []
    if grid == "monthly":
        year, month = start.year, start.month
        current = date(year, month, 1)
        while current <= end:
            if current > start:
                dates.append(current)
            month += 1
            if month > 12:
                year, month = year + 1, 1
            current = date(year, month, 1)
    elif grid == "weekly":
        current = start + timedelta(days=(7 - start.weekday()) % 7 or 7)
        current += timedelta(days=7)
        while current <= end:
            dates.append(current)
            current += timedelta(days=7)
    else:
        raise ValueError(f"unknown grid {grid!r}: use monthly or weekly")
    if first is not None:
        dates = [d for d in dates if d >= first]
    return dates


# --------------------------------------------------------------------------- population


def population(tables: dict[str, ir.Table], grid: Grid, spec: SnapshotSpec,
               usage: ir.Table | None) -> ir.Table:
    """The accounts that are customers at the start of each snapshot day.

    Subscription businesses: the account holds a subscription that started before as_of and
    had not ended before it. Inactivity businesses: the account acted within
    ``inactivity_days`` before as_of.
    """
    accounts = tables["accounts"].select("account_id", created_day=_day(
        tables["accounts"].created_at))
    if spec.churn_definition == "subscription":
        held = sources.held_at(tables["subscriptions"], grid).select(
            "account_id", "as_of", "as_of_day")
    else:
        assert usage is not None
        recent = usage.filter(usage.last_age <= spec.inactivity_days)
        held = recent.select("account_id", "as_of").distinct().join(
            grid.table, "as_of").select("account_id", "as_of", "as_of_day")
    known = held.join(accounts, "account_id")
    return known.filter(known.created_day < known.as_of_day).select(
        "account_id", "as_of", "as_of_day").distinct()


# --------------------------------------------------------------------------- labels


def subscription_labels(subscriptions: ir.Table, grid: Grid, pop: ir.Table,
                        spec: SnapshotSpec) -> ir.Table:
    """Churned and expanded within [as_of, as_of + horizon), from subscription rows alone.

    Churn: a subscription ends inside the window and no subscription of the account starts
    within the grace period after it (a restart after the window closes is not seen); its
    day is the first such end.
    Expansion: a subscription starting inside the window carries MRR at least
    ``1 + expansion_min_share`` times the MRR held at as_of.
    """
    s = subscriptions.mutate(start_day=_day(subscriptions.start_date),
                             end_day=_day(subscriptions.end_date))
    s = s.mutate(next_start_day=s.start_day.lead().over(
        group_by="account_id", order_by=[s.start_day, s.subscription_id]))
    g = grid.table
    h = spec.horizon_days
    ends = s.filter(s.end_day.notnull())
    in_window = ends.join(g, [ends.end_day >= g.as_of_day, ends.end_day < g.as_of_day + h])
    gone = (in_window.next_start_day.isnull()
            | (in_window.next_start_day >= in_window.end_day + spec.grace_days)
            | (in_window.next_start_day >= in_window.as_of_day + h))
    churn = in_window.group_by(["account_id", "as_of"]).aggregate(
        churned=gone.any(),
        churn_day=gone.ifelse(in_window.end_day - in_window.as_of_day, ibis.null("int64")).min())

    baseline = sources.held_at(subscriptions, grid).select("account_id", "as_of",
                                                           mrr_at_as_of="mrr")
    starts = s.join(g, [s.start_day >= g.as_of_day, s.start_day < g.as_of_day + h])
    peak = starts.group_by(["account_id", "as_of"]).aggregate(peak_mrr=starts.mrr.max())
    grown = baseline.join(peak, ["account_id", "as_of"])
    threshold = grown.mrr_at_as_of * ((1.0 + spec.expansion_min_share)
                                      * (1.0 - RELATIVE_TOLERANCE))
    expansion = grown.select("account_id", "as_of", expanded=(grown.mrr_at_as_of > 0)
                             & (grown.peak_mrr >= threshold))

    labels = (pop.pipe(attach, churn, ["account_id", "as_of"])
              .pipe(attach, expansion, ["account_id", "as_of"]))
    return labels.select("account_id", "as_of", churned=labels.churned.fill_null(False),
                         expanded=labels.expanded.fill_null(False), churn_day=labels.churn_day)


def inactivity_labels(events: ir.Table, grid: Grid, pop: ir.Table, usage: ir.Table,
                      spec: SnapshotSpec) -> ir.Table:
    """Churn as silence, expansion as growth of usage quantity.

    Churned: at some day inside the window the account had gone ``inactivity_days`` without an
    event, counting from its last event before as_of and from each event inside the window;
    its day is the first day it had.
    Expanded: usage quantity inside the window reaches ``1 + expansion_min_share`` times that
    of the same length of time before as_of.
    """
    h, quiet = spec.horizon_days, spec.inactivity_days
    g = grid.table
    days = events.mutate(day=_day(events.event_ts)).group_by(["account_id", "day"]).aggregate(
        quantity=_.quantity.sum())
    ahead = days.join(g, [days.day >= g.as_of_day, days.day < g.as_of_day + h])
    before = days.join(g, [days.day < g.as_of_day, days.day >= g.as_of_day - h])
    last_before = usage.group_by(["account_id", "as_of"]).aggregate(last_age=usage.last_age.min())

    anchor = pop.join(last_before, ["account_id", "as_of"]).select(
        "account_id", "as_of", "as_of_day", day=_.as_of_day - _.last_age)
    points = anchor.union(ahead.select("account_id", "as_of", "as_of_day", "day"))
    window = ibis.window(group_by=["account_id", "as_of"], order_by="day")
    points = points.mutate(next_day=points.day.lead().over(window))
    silent = ((points.day + quiet < points.as_of_day + h)
              & (points.day + quiet >= points.as_of_day)
              & (points.next_day.isnull() | (points.next_day > points.day + quiet)))
    churn = points.group_by(["account_id", "as_of"]).aggregate(
        churned=silent.any(),
        churn_day=silent.ifelse(points.day + quiet - points.as_of_day, ibis.null("int64")).min())

    q_ahead = ahead.group_by(["account_id", "as_of"]).aggregate(q_ahead=ahead.quantity.sum())
    q_before = before.group_by(["account_id", "as_of"]).aggregate(q_before=before.quantity.sum())
    labels = (pop.pipe(attach, churn, ["account_id", "as_of"])
              .pipe(attach, q_ahead, ["account_id", "as_of"])
              .pipe(attach, q_before, ["account_id", "as_of"]))
    grew = (labels.q_before > 0) & (labels.q_ahead.fill_null(0)
                                    >= labels.q_before * ((1 + spec.expansion_min_share)
                                                          * (1.0 - RELATIVE_TOLERANCE)))
    return labels.select("account_id", "as_of", churned=labels.churned.fill_null(False),
                         expanded=grew.fill_null(False), churn_day=labels.churn_day)


# --------------------------------------------------------------------------- assembly


def plan(tables: dict[str, ir.Table], spec: SnapshotSpec,
         dates: list[date] | None = None, vocabulary: Vocabulary | None = None) -> SnapshotPlan:
    """Which snapshot dates and which features a build computes, and which are absent and why.

    ``vocabulary``: the event types to expand the families over (the store's, kept from its
    first build); None chooses them from this history's counts."""
    load_all()
    sets = feature_sets()
    if spec.feature_set not in sets:
        raise ValueError(f"unknown feature set {spec.feature_set!r}; known: {sorted(sets)}")
    start, end, event_names, event_count, per_event = history_span_and_events(tables)
    present_tables = set(tables)
    if spec.money_event is not None:
        if spec.money_event not in event_names:
            raise ValueError(
                f"money_event {spec.money_event!r} is not an event of usage_events; its events "
                f"are {', '.join(event_names[:12])}{' ...' if len(event_names) > 12 else ''}")
        present_tables.add(MONEY)
    feature_set = sets[spec.feature_set]
    features, absent = feature_set.available(present_tables)
    chosen_vocabulary = vocabulary
    vocabulary = Vocabulary()
    generated: tuple[str, ...] = ()
    if feature_set.families:
        # the families' features are data-dependent: expanded over this history's commonest
        # event types, registered so every reader resolves them like declared ones
        vocabulary = (chosen_vocabulary if chosen_vocabulary is not None
                      and chosen_vocabulary.events
                      else choose_vocabulary(per_event, spec.money_event))
        generated = tuple(n for n in register_vocabulary(vocabulary)
                          if REGISTRY[n].generated.family  # type: ignore[union-attr]
                          in feature_set.families)
        features = features + generated
    from churnlens.features.registry import needs_of

    def missing(name: str) -> str:
        lacking = sorted(set(needs_of(name)) - present_tables)
        return "needs " + ", ".join("the money_event setting" if t == MONEY else t
                                    for t in lacking)

    reasons = {name: missing(name) for name in absent}
    start = spec.history_start or start
    end = spec.history_end or end
    chosen = dates if dates is not None else grid_dates(start, end, spec.grid, spec.first_as_of)
    return SnapshotPlan(dates=tuple(chosen), features=features, absent_features=absent,
                        absent_reason=reasons, history_start=start, history_end=end,
                        event_names=event_names, events=event_count, vocabulary=vocabulary,
                        generated=generated)


def _attach_all(pop: ir.Table, parts: list[ir.Table]) -> ir.Table:
    """``pop`` with every part's columns, one left join per part on (account_id, as_of).

    One flat chain of joins and one select: attaching the parts one by one nests a select
    per part, and compiling that nesting cost more than a second on the full registry.
    """
    chain = pop
    for index, part in enumerate(parts):
        keys = {f"_key{index}_{ENTITY}": ENTITY, f"_key{index}_{TIMESTAMP}": TIMESTAMP}
        part = part.rename(keys)
        entity, timestamp = keys
        chain = chain.left_join(part, [chain[ENTITY] == part[entity],
                                       chain[TIMESTAMP] == part[timestamp]])
    columns = [*pop.columns]
    for part in parts:
        columns += [c for c in part.columns if c not in (ENTITY, TIMESTAMP)]
    return chain.select(*columns)


def columns_read(relation: ir.Table, expressions: list[ir.Value]) -> set[str]:
    """The columns of ``relation`` that ``expressions`` read: what a relation built for them
    needs to compute, and no more."""
    import ibis.expr.operations as ops

    return {field.name for expression in expressions
            for field in expression.op().find(ops.Field) if field.rel == relation.op()}


def snapshot_table(tables: dict[str, ir.Table], backend: ibis.BaseBackend, spec: SnapshotSpec,
                   snapshot_plan: SnapshotPlan, materialize: bool | None = None) -> ir.Table:
    """The snapshot expression: population, features in registry order, labels, ``labelled``.

    ``materialize``: compute the per-user usage rollup here, into a temporary table the
    expression reads (``sources.roll_up_events``); by default when the history holds more
    than ``sources.MATERIALIZE_ROLLUP_EVENTS`` events. ``False`` leaves the whole build one
    query with no work done yet: SQL compiled from it stays valid when the tables it names
    change.
    """
    grid = Grid.of(list(snapshot_plan.dates), backend)
    names = snapshot_plan.features
    register_vocabulary(snapshot_plan.vocabulary)  # the plan's, should another have replaced it
    needed_sources = {REGISTRY[n].source for n in names}
    events = tables["usage_events"]
    # the product features (event names) seen, for the masks that count distinct ones
    event_names = snapshot_plan.event_names
    if event_names is None:
        event_names = tuple(events.select("event").distinct().execute()["event"].dropna())
    if materialize is None:
        materialize = (snapshot_plan.events or 0) > sources.MATERIALIZE_ROLLUP_EVENTS
    rollups = sources.roll_up_events(events, tables["accounts"], grid, spec.key_events,
                                     event_names, materialize, spec.money_event,
                                     snapshot_plan.vocabulary)
    by_type = tuple(dict.fromkeys(
        (origin.measure, origin.days) for n in names
        if (origin := REGISTRY[n].generated) is not None))
    usage = sources.usage_by_user(rollups, grid, by_type)
    usage = sources.usage_by_user(rollups, grid, by_type, windowed=frozenset(columns_read(
        usage, [REGISTRY[n].compute(usage) for n in names if REGISTRY[n].source == "usage"])))
    # inactivity: who acted in the inactivity_days before as_of, which may reach past the
    # 180-day look-back of ``usage``
    activity = (sources.last_activity(events, grid, spec.inactivity_days)
                if spec.churn_definition == "inactivity" else usage)
    pop = population(tables, grid, spec, activity)

    relations: dict[str, ir.Table] = {}
    if "usage" in needed_sources:
        relations["usage"] = usage
    if "user_activity" in needed_sources:
        relations["user_activity"] = sources.user_activity_30d(rollups, grid)
    if "feature_usage" in needed_sources:
        relations["feature_usage"] = sources.usage_by_feature(rollups, grid)
    if "tickets" in needed_sources and "tickets" in tables:
        relations["tickets"] = sources.tickets_seen(tables["tickets"], grid)
    if "surveys" in needed_sources and "surveys" in tables:
        relations["surveys"] = sources.surveys_seen(tables["surveys"], grid)
    if "subscriptions" in needed_sources and "subscriptions" in tables:
        relations["subscriptions"] = sources.subscription_state(tables["subscriptions"], grid)
    if "accounts" in needed_sources:
        relations["accounts"] = sources.account_state(tables["accounts"], pop)
    if "onboarding" in needed_sources:
        relations["onboarding"] = sources.onboarding_state(
            tables["accounts"], rollups, tables.get("subscriptions"), pop)

    parts: list[ir.Table] = []
    for source, relation in relations.items():
        mine = [n for n in names if REGISTRY[n].source == source]
        if not mine:
            continue
        if source in AGGREGATED_SOURCES:
            # usage rows carry the hashed account: sum first, then name the few sums
            key = "account" if "account" in relation.columns else ENTITY
            part = relation.group_by([key, TIMESTAMP]).aggregate(
                **{n: REGISTRY[n].compute(relation) for n in mine})
            if key == "account":
                part = part.join(rollups.id_of, "account").drop("account")
        else:
            assert source in STATE_SOURCES
            part = relation.select(ENTITY, TIMESTAMP,
                                   **{n: REGISTRY[n].compute(relation) for n in mine})
        parts.append(part)
    wide = _attach_all(pop, parts)
    wide = wide.mutate(**{n: wide[n].fill_null(REGISTRY[n].fill) for n in names
                          if REGISTRY[n].fill is not None and n in wide.columns})
    # derived features, as few steps as their inputs allow: one nested select per feature
    # made compiling the whole expression cost more than a second
    pending = [n for n in names if REGISTRY[n].source == "features"]
    while pending:
        ready = [n for n in pending if not set(REGISTRY[n].inputs) & set(pending)] or pending[:1]
        wide = wide.mutate(**{n: REGISTRY[n].compute(wide) for n in ready})
        pending = [n for n in pending if n not in ready]

    if spec.churn_definition == "subscription":
        labels = subscription_labels(tables["subscriptions"], grid, pop, spec)
    else:
        labels = inactivity_labels(events, grid, pop, activity, spec)
    end_day = (snapshot_plan.history_end - date(1970, 1, 1)).days  # type: ignore[operator]
    complete = wide.as_of_day + spec.horizon_days <= end_day
    wide = wide.mutate(labelled=complete)
    wide = wide.pipe(attach, labels, [ENTITY, TIMESTAMP])
    out = wide.select(
        ENTITY, TIMESTAMP, *names,
        churned=wide.labelled.ifelse(wide.churned, ibis.null("boolean")),
        expanded=wide.labelled.ifelse(wide.expanded, ibis.null("boolean")),
        labelled=wide.labelled,
        **{CHURN_DAY: wide.labelled.ifelse(wide.churn_day.cast("int32"), ibis.null("int32"))})
    return out.order_by([TIMESTAMP, ENTITY])
