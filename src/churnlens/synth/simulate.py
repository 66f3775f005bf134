"""Run the simulated company month by month and write the five contract tables.

Usage events are produced and written one month at a time, so memory stays bounded by a month
of events whatever the company's size. Every random draw comes from one seeded generator per
purpose, so the same configuration gives byte-identical files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnlens.synth import catalog as cat
from churnlens.synth.dynamics import (
    CHURN_WEIGHTS,
    DOWNGRADE_WEIGHTS,
    EXPANSION_WEIGHTS,
    STALL_ACTIVATION_SHARE,
    AccountState,
    MonthContext,
    Observed,
    apply_billing_day,
    draw_observed,
    drift_health,
    hazards,
    regular_exposure,
    remember,
    sigmoid,
)
from churnlens.synth.oracle import HORIZON_DAYS, LOOKAHEAD_MONTHS, true_probabilities

DAY = np.timedelta64(1, "D")
SECONDS_PER_DAY = 86_400
INITIAL_SHARE = 0.5
"""Share of accounts that were already customers when the recorded history begins."""


@dataclass(frozen=True)
class CompanyConfig:
    """Size and shape of a generated company."""

    accounts: int = 500
    months: int = 24
    seed: int = 7
    start: date = date(2023, 1, 1)
    rollouts: int = 32
    """Simulated futures per account and month for the oracle's probabilities."""
    dirty: bool = False


@dataclass
class GenerationResult:
    out: Path
    rows: dict[str, int] = field(default_factory=dict)
    bad_rows: dict[str, dict[str, int]] = field(default_factory=dict)


# --------------------------------------------------------------------------- calendar


def month_start(start: date, month: int) -> np.datetime64:
    return (np.datetime64(start, "M") + month).astype("datetime64[D]")


def days_in_month(start: date, month: int) -> int:
    return int((month_start(start, month + 1) - month_start(start, month)) / DAY)


def month_contexts(config: CompanyConfig, rng: np.random.Generator) -> list[MonthContext]:
    """Seasonality plus a few company-wide outages that flood support with tickets."""
    total = config.months + LOOKAHEAD_MONTHS
    outage_months = set(rng.choice(max(config.months, 1), size=min(3, config.months),
                                   replace=False).tolist())
    contexts = []
    for m in range(total):
        calendar_month = int(str(month_start(config.start, m))[5:7])
        season = {8: -0.3, 12: -0.4, 1: 0.1, 9: 0.1}.get(calendar_month, 0.0)
        outage = 2.5 if m in outage_months else 1.0
        contexts.append(MonthContext(index=m, season=season, outage=outage))
    return contexts


# --------------------------------------------------------------------------- accounts


@dataclass
class Roster:
    """Static facts of every account (never changed by the simulation)."""

    account_id: np.ndarray
    name: np.ndarray
    industry: np.ndarray
    region: np.ndarray
    csm: np.ndarray
    created_month: np.ndarray
    created_day: np.ndarray
    created_second: np.ndarray
    n_activated: np.ndarray
    feature_order: np.ndarray
    first_breadth: np.ndarray


def _company_names(rng: np.random.Generator, n: int) -> np.ndarray:
    first = rng.integers(len(cat.NAME_FIRST), size=n)
    second = rng.integers(len(cat.NAME_SECOND), size=n)
    suffix = rng.integers(len(cat.NAME_SUFFIX), size=n)
    return np.array([f"{cat.NAME_FIRST[a]} {cat.NAME_SECOND[b]} {cat.NAME_SUFFIX[c]}"
                     for a, b, c in zip(first, second, suffix, strict=True)], dtype=object)


def _feature_order(rng: np.random.Generator, n: int) -> np.ndarray:
    """Each account's order of adopting features: core ones tend to come first."""
    popularity = np.linspace(1.5, -1.5, len(cat.FEATURES))
    keys = popularity + rng.gumbel(size=(n, len(cat.FEATURES)))
    return np.argsort(-keys, axis=1).astype(np.int8)


def create_accounts(config: CompanyConfig, rng: np.random.Generator
                    ) -> tuple[Roster, AccountState]:
    n = config.accounts
    initial = rng.random(n) < INITIAL_SHARE
    created_month = np.where(initial, -rng.integers(1, 37, size=n),
                             rng.integers(0, max(config.months, 1), size=n))
    # Billing days 2-28: every renewal falls strictly after a month start, so an account is
    # either a customer at the start of a month (and in that month's truth) or it is not.
    created_day = rng.integers(2, 29, size=n)
    created_second = rng.integers(8 * 3600, 19 * 3600, size=n)

    industry = rng.integers(len(cat.INDUSTRIES), size=n)
    region = rng.choice(len(cat.REGIONS), size=n, p=cat.REGION_WEIGHTS)
    plan = rng.choice(len(cat.PLANS), size=n, p=cat.PLAN_WEIGHTS)
    seats = np.maximum(1, np.rint(cat.MEDIAN_SEATS[plan] * rng.lognormal(0.0, 0.6, size=n)))
    seats = np.minimum(seats, 2000).astype(np.int64)
    annual = rng.random(n) < cat.ANNUAL_SHARE[plan]
    discount = np.where(plan == 2, rng.uniform(0.0, 0.3, size=n),
                        np.where(rng.random(n) < 0.15, rng.uniform(0.05, 0.2, size=n), 0.0))
    price = np.round(cat.LIST_PRICE_PER_SEAT[plan] * (1 - discount)
                     * np.where(annual, 1 - cat.ANNUAL_DISCOUNT, 1.0), 2)
    arr = seats * price * 12
    csm = np.array([
        cat.CSMS[cat.REGIONS[r]][rng.integers(len(cat.CSMS[cat.REGIONS[r]]))]
        if a >= cat.CSM_MIN_ARR else None
        for r, a in zip(region, arr, strict=True)], dtype=object)

    health_mean = cat.INDUSTRY_HEALTH[industry] + 0.15 * (plan - 1) + rng.normal(0, 0.55, n)
    health = health_mean + rng.normal(0, 0.5, n)

    # Onboarding: a stall (more likely for weak accounts) leaves few seats activated.
    stall = rng.random(n) < sigmoid(-1.3 - 1.0 * health)
    activation = np.where(stall, 0.12, np.clip(0.55 + 0.15 * health, 0.3, 0.95))
    n_activated = rng.binomial(seats, activation)
    stalled = n_activated < STALL_ACTIVATION_SHARE * seats
    health = health - 0.8 * stall
    health_mean = health_mean - 0.4 * stall

    starts = np.array([month_start(config.start, int(m)) for m in created_month])
    onboarding_end = starts + (created_day - 1 + 30) * DAY
    regular_from = np.array([_first_month_on_or_after(config.start, int(m), e)
                             for m, e in zip(created_month, onboarding_end, strict=True)])
    tail_start = np.array([month_start(config.start, int(r) - 1) for r in regular_from])
    tail_days = np.array([days_in_month(config.start, int(r) - 1) for r in regular_from])
    onboarding_tail = 1.0 - ((onboarding_end - tail_start) / DAY) / tail_days
    onboarding_tail = np.clip(onboarding_tail, 0.0, 1.0)

    roster = Roster(
        account_id=np.array([f"acc_{i:06d}" for i in range(n)], dtype=object),
        name=_company_names(rng, n),
        industry=np.array(cat.INDUSTRIES, dtype=object)[industry],
        region=np.array(cat.REGIONS, dtype=object)[region],
        csm=csm,
        created_month=created_month,
        created_day=created_day,
        created_second=created_second,
        n_activated=n_activated,
        feature_order=_feature_order(rng, n),
        first_breadth=1 + rng.binomial(len(cat.FEATURES) - 1, sigmoid(-0.4 + 1.1 * health)),
    )
    state = AccountState(
        plan=plan.astype(np.int64), annual=annual, seats=seats, price_per_seat=price,
        health=health, health_mean=health_mean, anchor_month=created_month.astype(np.int64),
        billing_day=created_day.astype(np.int64), stalled=stalled,
        onboarding_seen=~initial, regular_from=np.where(initial, created_month, regular_from),
        onboarding_tail=onboarding_tail,
        mau=np.zeros((n, 2), dtype=np.int64), breadth=np.zeros(n, dtype=np.int64),
        tickets=np.zeros((n, 3), dtype=np.int64), severe=np.zeros((n, 3), dtype=np.int64),
        nps_sum=np.zeros((n, 6)), nps_count=np.zeros((n, 6), dtype=np.int64),
    )
    if initial.any():
        _warm_up_histories(state, np.flatnonzero(initial), rng)
    return roster, state


def _first_month_on_or_after(start: date, month: int, moment: np.datetime64) -> int:
    m = month
    while month_start(start, m) < moment:
        m += 1
    return m


def _warm_up_histories(state: AccountState, index: np.ndarray, rng: np.random.Generator) -> None:
    """Give accounts that predate the history a plausible recent past to start from.

    Those months are not written to any table, so the hazards of the first recorded months
    read what the simulation remembers, like a company whose warehouse starts mid-life.
    """
    sub = state.take(index)
    ctx = MonthContext(index=-1, season=0.0, outage=1.0)
    ones = np.ones(len(index))
    for _ in range(6):
        remember(sub, draw_observed(sub, ctx, ones, ones, rng))
    state.put(index, sub)


# --------------------------------------------------------------------------- events


def _user_bias(account: np.ndarray, user: np.ndarray) -> np.ndarray:
    """A fixed engagement propensity per user, reproducible without storing it."""
    x = (account.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
         + user.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9))
    x ^= x >> np.uint64(31)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(29)
    u = (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    u = np.clip(u, 1e-9, 1 - 1e-9)
    return np.log(u / (1 - u)) - 0.03 * user


def _group_positions(sizes: np.ndarray) -> np.ndarray:
    """0..size-1 within each group, for groups laid end to end."""
    total = int(sizes.sum())
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(total) - offsets


def _day_weights(start: date, month: int) -> np.ndarray:
    days = month_start(start, month) + np.arange(days_in_month(start, month)) * DAY
    weekday = (days.astype("datetime64[D]").view("int64") - 4) % 7  # 0 = Monday
    return np.where(weekday >= 5, 0.25, 1.0)


def _draw_times(rng: np.random.Generator, first_day: np.ndarray, end_day: np.ndarray,
                weights: np.ndarray) -> np.ndarray:
    """Seconds since the month start: weekdays busier than weekends, office hours busiest."""
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    low, high = cumulative[first_day], cumulative[end_day]
    target = low + (high - low) * rng.random(len(first_day))
    day = np.clip(np.searchsorted(cumulative, target, side="right") - 1, first_day, end_day - 1)
    seconds = np.clip(rng.normal(14.0, 3.0, len(day)), 0.0, 23.99) * 3600
    return day * SECONDS_PER_DAY + seconds.astype(np.int64)


@dataclass
class EventBatch:
    account: np.ndarray
    user: np.ndarray
    ts: np.ndarray
    """Seconds since the Unix epoch."""
    feature: np.ndarray
    quantity: np.ndarray

    @staticmethod
    def concat(batches: list[EventBatch]) -> EventBatch:
        if not batches:
            return EventBatch(*(np.zeros(0, dtype=np.int64) for _ in range(5)))
        return EventBatch(*(np.concatenate([getattr(b, f) for b in batches])
                            for f in ("account", "user", "ts", "feature", "quantity")))

    def select(self, mask: np.ndarray) -> EventBatch:
        return EventBatch(self.account[mask], self.user[mask], self.ts[mask], self.feature[mask],
                          self.quantity[mask])


def _features_and_quantities(rng: np.random.Generator, roster: Roster, account: np.ndarray,
                             order_in_account: np.ndarray, breadth: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray]:
    """The first ``breadth`` events of an account touch distinct features; the rest repeat them."""
    slot = np.where(order_in_account < breadth, order_in_account,
                    (rng.random(len(account)) * breadth).astype(np.int64))
    feature = roster.feature_order[account, slot].astype(np.int64)
    bulk = np.isin(feature, [cat.FEATURES.index(f) for f in cat.BULK_FEATURES])
    quantity = np.where(bulk, 1 + rng.poisson(15, len(account)), 1)
    return feature, quantity


def regular_events(rng: np.random.Generator, roster: Roster, account: np.ndarray,
                   seats: np.ndarray, observed: Observed, first_day: np.ndarray,
                   end_day: np.ndarray, month_epoch: int, weights: np.ndarray) -> EventBatch:
    """Events of one month that realise exactly the drawn active users, volume and breadth."""
    keep = (observed.mau > 0) & (end_day > first_day)
    account, seats, first_day, end_day = account[keep], seats[keep], first_day[keep], end_day[keep]
    mau, events, breadth = (observed.mau[keep], observed.events[keep],
                            observed.breadth_target[keep])
    if len(account) == 0:
        return EventBatch.concat([])

    # Pick the month's active users: the most engaged seats, with some churn of who is active.
    seat_account = np.repeat(np.arange(len(account)), seats)
    seat_user = _group_positions(seats)
    key = _user_bias(account[seat_account], seat_user) + rng.gumbel(size=len(seat_user))
    order = np.lexsort((-key, seat_account))
    rank = _group_positions(seats)
    chosen = order[rank < np.repeat(mau, seats)]
    active_user = seat_user[chosen]  # per account, most engaged first
    active_offset = np.cumsum(mau) - mau

    extra = events - mau
    extra_owner = np.repeat(np.arange(len(account)), extra)
    pick = (np.repeat(mau, extra) * rng.random(len(extra_owner)) ** 2).astype(np.int64)
    owner = np.concatenate([np.repeat(np.arange(len(account)), mau), extra_owner])
    user = np.concatenate([active_user, active_user[active_offset[extra_owner] + pick]])
    order_in_account = np.concatenate([_group_positions(mau), mau[extra_owner] +
                                       _group_positions(extra)])
    acc = account[owner]
    feature, quantity = _features_and_quantities(rng, roster, acc, order_in_account,
                                                 breadth[owner])
    ts = month_epoch + _draw_times(rng, first_day[owner], end_day[owner], weights)
    return EventBatch(acc, user, ts, feature, quantity)


def onboarding_events(rng: np.random.Generator, roster: Roster, account: np.ndarray,
                      signup_epoch: np.ndarray) -> EventBatch:
    """The first 30 days: exactly the activated users act, each at least once."""
    activated = roster.n_activated[account]
    owner = np.repeat(np.arange(len(account)), activated)
    user = _group_positions(activated)
    first = rng.random(len(owner)) * 30 * SECONDS_PER_DAY
    more = rng.poisson(2.0, len(owner))
    again_owner = np.repeat(np.arange(len(owner)), more)
    later = first[again_owner] + rng.random(len(again_owner)) * (30 * SECONDS_PER_DAY
                                                                  - first[again_owner])
    all_owner = np.concatenate([owner, owner[again_owner]])
    offsets = np.concatenate([first, later]).astype(np.int64)
    all_user = np.concatenate([user, user[again_owner]])
    order_in_account = _group_positions(np.bincount(all_owner, minlength=len(account)))
    sort = np.argsort(all_owner, kind="stable")
    all_owner, offsets, all_user = all_owner[sort], offsets[sort], all_user[sort]
    acc = account[all_owner]
    feature, quantity = _features_and_quantities(rng, roster, acc, order_in_account,
                                                 roster.first_breadth[acc])
    return EventBatch(acc, all_user, signup_epoch[all_owner] + offsets, feature, quantity)


# --------------------------------------------------------------------------- writing

EVENT_SCHEMA = pa.schema([
    ("account_id", pa.string()), ("user_id", pa.string()), ("event_ts", pa.timestamp("us")),
    ("event", pa.string()), ("quantity", pa.float64()),
])


def _event_table(batch: EventBatch, roster_ids: pa.Array) -> pa.Table:
    order = np.lexsort((batch.user, batch.account, batch.ts))
    b = batch.select(order)
    account_ids = roster_ids.take(pa.array(b.account))
    users = pc.binary_join_element_wise(account_ids, pc.cast(pa.array(b.user), pa.string()), "-u")
    features = pa.array(np.array(cat.FEATURES, dtype=object)[b.feature], type=pa.string())
    return pa.table({
        "account_id": account_ids, "user_id": users,
        "event_ts": pa.array(b.ts * 1_000_000, type=pa.timestamp("us")),
        "event": features, "quantity": pa.array(b.quantity.astype(np.float64)),
    }, schema=EVENT_SCHEMA)


def _epoch_seconds(day: np.ndarray | np.datetime64) -> np.ndarray:
    return np.asarray(day).astype("datetime64[s]").astype(np.int64)


# --------------------------------------------------------------------------- the run


class _Ledger:
    """Subscription periods as they open and close."""

    def __init__(self, n: int, start_day: np.ndarray, state: AccountState):
        self.open_start = start_day.copy()
        self.rows: list[dict[str, np.ndarray]] = []
        self._state = state

    def close(self, account: np.ndarray, day: np.ndarray, reopen: bool,
              before: AccountState | None = None) -> None:
        if len(account) == 0:
            return
        source = before if before is not None else self._state.take(account)
        self.rows.append({
            "account": account, "plan": source.plan, "seats": source.seats,
            "mrr": np.round(source.seats * source.price_per_seat, 2), "annual": source.annual,
            "start": self.open_start[account], "end": day,
        })
        if reopen:
            self.open_start[account] = day

    def finish(self, alive: np.ndarray) -> None:
        account = np.flatnonzero(alive)
        self.close(account, np.full(len(account), np.datetime64("NaT"), dtype="datetime64[D]"),
                   reopen=False)


def generate_company(config: CompanyConfig, out: Path,
                     progress: Callable[[int, int], None] | None = None) -> GenerationResult:
    """Simulate ``config`` and write its tables under ``out`` (replacing what was there)."""
    seeds = np.random.SeedSequence(config.seed).spawn(6)
    rng_setup, rng_world, rng_events, rng_oracle, rng_support, rng_dirty = (
        np.random.default_rng(s) for s in seeds)

    contexts = month_contexts(config, rng_setup)
    roster, state = create_accounts(config, rng_setup)
    n = config.accounts
    roster_ids = pa.array(roster.account_id.tolist(), type=pa.string())

    out = Path(out)
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "usage_events").mkdir(parents=True)

    signup_day = np.array([month_start(config.start, int(m)) for m in roster.created_month]) + (
        roster.created_day - 1) * DAY
    signup_epoch = _epoch_seconds(signup_day) + roster.created_second
    ledger = _Ledger(n, signup_day, state)
    status = np.where(roster.created_month < 0, 1, 0)  # 0 not yet, 1 customer, 2 churned
    churn_day = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")

    carried = EventBatch.concat([])
    truth_parts: list[pa.Table] = []
    tickets: list[dict[str, np.ndarray]] = []
    answers: list[dict[str, np.ndarray]] = []
    event_rows = 0

    for m in range(config.months):
        first = month_start(config.start, m)
        n_days = days_in_month(config.start, m)
        month_epoch = int(_epoch_seconds(first))
        weights = _day_weights(config.start, m)
        if m > 0:
            alive = np.flatnonzero(status == 1)
            sub = state.take(alive)
            drift_health(sub, rng_world)
            state.put(alive, sub)

        customers = np.flatnonzero(status == 1)
        arrivals = np.flatnonzero(roster.created_month == m)

        # Truth, from the state at the start of the month.
        window_end = first + HORIZON_DAYS * DAY

        def in_window(k: int, billing_day: np.ndarray, _m: int = m,
                      _end: np.datetime64 = window_end) -> np.ndarray:
            return month_start(config.start, _m + k) + (billing_day - 1) * DAY < _end

        sub = state.take(customers)
        p_churn, p_expand = true_probabilities(sub, m, in_window, contexts, config.rollouts,
                                               rng_oracle)
        truth_parts.append(pa.table({
            "account_id": roster_ids.take(pa.array(customers, type=pa.int64())),
            "as_of": pa.array(np.full(len(customers), first), type=pa.date32()),
            "p_churn_90d": p_churn, "p_expand_90d": p_expand,
            "hidden_health": sub.health,
        }))

        # The billing day: churn at renewals, then expansion or downgrade.
        hz = hazards(sub, m)
        churned = rng_world.random(len(customers)) < hz.churn
        before = sub.copy()
        changed = apply_billing_day(sub, _without(hz, churned), rng_world)
        billing_day = first + (sub.billing_day - 1) * DAY
        moved = changed["expanded"] | changed["downgraded"]
        ledger.close(customers[churned], billing_day[churned], reopen=False,
                     before=before.take(np.flatnonzero(churned)))
        ledger.close(customers[moved], billing_day[moved], reopen=True,
                     before=before.take(np.flatnonzero(moved)))
        status[customers[churned]] = 2
        churn_day[customers[churned]] = billing_day[churned]
        state.put(customers, sub)

        # The month's activity, for everyone who was a customer at some point of it.
        status[arrivals] = 1
        present = np.concatenate([customers, arrivals])
        sub = state.take(present)
        arrival_day = np.concatenate([np.zeros(len(customers), dtype=np.int64),
                                      roster.created_day[arrivals] - 1])
        end_day = np.full(len(present), n_days)
        left = np.concatenate([churned, np.zeros(len(arrivals), dtype=bool)])
        end_day[left] = sub.billing_day[left] - 1
        presence = np.clip(end_day - arrival_day, 0, None) / n_days
        exposure = regular_exposure(sub, m)
        exposure = np.where(left, np.minimum(exposure, presence), exposure)
        regular_first_day = np.where(m >= sub.regular_from, 0,
                                     np.rint((1 - sub.onboarding_tail) * n_days)).astype(np.int64)
        regular_first_day = np.minimum(regular_first_day, end_day)
        observed = draw_observed(sub, contexts[m], exposure, presence, rng_world)
        remember(sub, observed)
        state.put(present, sub)

        batch = [regular_events(rng_events, roster, present, sub.seats, observed,
                                regular_first_day, end_day, month_epoch, weights)]
        if len(arrivals):
            batch.append(onboarding_events(rng_events, roster, arrivals, signup_epoch[arrivals]))
        batch.append(carried)
        events = EventBatch.concat(batch)
        next_epoch = int(_epoch_seconds(month_start(config.start, m + 1)))
        ends = churn_day[events.account]
        gone = ~np.isnat(ends) & (events.ts >= _epoch_seconds(ends))
        events = events.select(~gone)
        carried = events.select(events.ts >= next_epoch)
        events = events.select(events.ts < next_epoch)
        table = _event_table(events, roster_ids)
        pq.write_table(table, staging / "usage_events" / f"part-{m:05d}.parquet")
        event_rows += table.num_rows

        start_day = np.maximum(arrival_day, 0)
        not_before = signup_epoch[present]
        tickets.append(_tickets(rng_support, present, sub, observed, contexts[m], start_day,
                                end_day, month_epoch, weights, not_before))
        answers.append(_answers(rng_support, present, sub, observed, start_day, end_day,
                                month_epoch, weights, not_before))
        if progress:
            progress(m + 1, config.months)

    data_end = month_start(config.start, config.months)
    ledger.finish(status == 1)
    rows = {
        "usage_events": event_rows,
        "accounts": _write_accounts(staging, roster, signup_epoch, config),
        "subscriptions": _write_subscriptions(staging, ledger, roster_ids),
        "tickets": _write_tickets(staging, tickets, roster_ids, data_end),
        "surveys": _write_answers(staging, answers, roster_ids),
    }
    truth = pa.concat_tables(truth_parts)
    pq.write_table(truth, staging / "truth.parquet")
    rows["truth"] = truth.num_rows
    (staging / "truth_drivers.json").write_text(json.dumps(truth_drivers(), indent=2) + "\n")

    bad_rows: dict[str, dict[str, int]] = {}
    if config.dirty:
        from churnlens.synth.dirty import make_dirty

        bad_rows = make_dirty(staging, rng_dirty)
    manifest = {"config": {**asdict(config), "start": config.start.isoformat()},
                "history_start": config.start.isoformat(), "history_end": str(data_end),
                "rows": rows, "injected_bad_rows": bad_rows}
    (staging / "company.json").write_text(json.dumps(manifest, indent=2) + "\n")

    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return GenerationResult(out=out, rows=rows, bad_rows=bad_rows)


def _without(hz, churned: np.ndarray):  # type: ignore[no-untyped-def]
    """Hazards with expansion and downgrade switched off for accounts that just left."""
    from dataclasses import replace

    return replace(hz, expand=np.where(churned, 0.0, hz.expand),
                   downgrade=np.where(churned, 0.0, hz.downgrade))


def truth_drivers() -> dict[str, object]:
    return {
        "description": (
            "Monthly hazards of the simulated company, as logistic weights on quantities the "
            "history records. Hidden health moves those quantities but never enters a hazard. "
            "Churn is drawn only at renewals (every billing day for monthly plans, each "
            "anniversary for annual ones); expansion (+10% seats or more, or a plan upgrade) "
            "at any billing day; downgrade at renewals, to last month's active users plus 15%."),
        "churn": CHURN_WEIGHTS,
        "expansion": EXPANSION_WEIGHTS,
        "downgrade": DOWNGRADE_WEIGHTS,
        "truth": "p_churn_90d / p_expand_90d: probability within [as_of, as_of + 90 days) under "
                 "the simulation, from rollouts of the same dynamics.",
    }


# --------------------------------------------------------------------------- support, NPS


def _tickets(rng: np.random.Generator, present: np.ndarray, state: AccountState,
             observed: Observed, ctx: MonthContext, first_day: np.ndarray, end_day: np.ndarray,
             month_epoch: int, weights: np.ndarray, not_before: np.ndarray
             ) -> dict[str, np.ndarray]:
    owner = np.repeat(np.arange(len(present)), observed.tickets)
    severe_owner_rank = _group_positions(observed.tickets)
    severe = severe_owner_rank < observed.severe[owner]
    priority = np.where(severe, np.where(rng.random(len(owner)) < 0.3, 3, 2),
                        np.where(rng.random(len(owner)) < 0.4, 0, 1))
    outage = ctx.outage > 1
    category = rng.choice(len(cat.TICKET_CATEGORIES) - 1, size=len(owner),
                          p=[0.35, 0.25, 0.12, 0.15, 0.13])
    if outage:
        category = np.where(rng.random(len(owner)) < 0.5, cat.TICKET_CATEGORIES.index("outage"),
                            category)
    created = month_epoch + _draw_times(rng, first_day[owner], np.maximum(end_day[owner],
                                        first_day[owner] + 1), weights)
    created = np.maximum(created, not_before[owner] + 60)  # never before the signup itself
    health = state.health[owner]
    median_hours = np.array([70.0, 40.0, 20.0, 6.0])[priority] * np.exp(-0.3 * health)
    hours = median_hours * rng.lognormal(0.0, 0.8, len(owner))
    never = rng.random(len(owner)) < 0.03
    resolved = np.where(never, -1, created + (hours * 3600).astype(np.int64))
    rated = ~never & (rng.random(len(owner)) < 0.45)
    csat = np.clip(np.rint(rng.normal(3.7 + 0.7 * health - 0.4 * severe
                                      - 0.3 * np.log(hours / 24 + 1e-3).clip(-2, 3), 0.9)), 1, 5)
    return {"account": present[owner], "created": created, "resolved": resolved,
            "priority": priority, "category": category, "csat": np.where(rated, csat, np.nan)}


def _answers(rng: np.random.Generator, present: np.ndarray, state: AccountState,
             observed: Observed, first_day: np.ndarray, end_day: np.ndarray, month_epoch: int,
             weights: np.ndarray, not_before: np.ndarray) -> dict[str, np.ndarray]:
    owner = np.repeat(np.arange(len(present)), observed.nps_answers)
    when = month_epoch + _draw_times(rng, first_day[owner], np.maximum(end_day[owner],
                                     first_day[owner] + 1), weights)
    when = np.maximum(when, not_before[owner] + 60)
    user = (rng.random(len(owner)) * np.maximum(state.seats[owner], 1)).astype(np.int64)
    with_comment = rng.random(len(owner)) < 0.2
    pick = rng.random(len(owner))
    return {"account": present[owner], "when": when, "user": user, "score": observed.nps_scores,
            "comment": with_comment, "pick": pick}


def _comment(score: int, pick: float) -> str:
    band = "detractor" if score <= 6 else "passive" if score <= 8 else "promoter"
    options = cat.NPS_COMMENTS[band]
    return options[int(pick * len(options))]


def _write_accounts(out: Path, roster: Roster, signup_epoch: np.ndarray,
                    config: CompanyConfig) -> int:
    table = pa.table({
        "account_id": roster.account_id.tolist(),
        "name": roster.name.tolist(),
        "created_at": pa.array(signup_epoch * 1_000_000, type=pa.timestamp("us")),
        "industry": roster.industry.tolist(),
        "region": roster.region.tolist(),
        "csm": pa.array(roster.csm.tolist(), type=pa.string()),
    })
    pq.write_table(table, out / "accounts.parquet")
    return table.num_rows


def _write_subscriptions(out: Path, ledger: _Ledger, roster_ids: pa.Array) -> int:
    rows = {key: np.concatenate([r[key] for r in ledger.rows]) for key in ledger.rows[0]}
    order = np.lexsort((rows["start"], rows["account"]))
    rows = {key: value[order] for key, value in rows.items()}
    n = len(order)
    table = pa.table({
        "account_id": roster_ids.take(pa.array(rows["account"], type=pa.int64())),
        "subscription_id": [f"sub_{i:08d}" for i in range(n)],
        "plan": np.array(cat.PLANS, dtype=object)[rows["plan"]].tolist(),
        "seats": pa.array(rows["seats"], type=pa.int64()),
        "mrr": pa.array(rows["mrr"], type=pa.float64()),
        "billing_period": np.where(rows["annual"], "annual", "monthly").tolist(),
        "start_date": pa.array(rows["start"], type=pa.date32()),
        "end_date": pa.array(rows["end"], type=pa.date32(), from_pandas=True),
    })
    pq.write_table(table, out / "subscriptions.parquet")
    return n


def _write_tickets(out: Path, parts: list[dict[str, np.ndarray]], roster_ids: pa.Array,
                   data_end: np.datetime64) -> int:
    rows = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    order = np.lexsort((rows["account"], rows["created"]))
    rows = {key: value[order] for key, value in rows.items()}
    end = int(_epoch_seconds(data_end))
    open_at_end = (rows["resolved"] < 0) | (rows["resolved"] >= end)
    resolved = pa.array(np.where(open_at_end, 0, rows["resolved"]) * 1_000_000,
                        type=pa.timestamp("us"), mask=open_at_end)
    csat = np.where(open_at_end, np.nan, rows["csat"])
    table = pa.table({
        "ticket_id": [f"tkt_{i:08d}" for i in range(len(order))],
        "account_id": roster_ids.take(pa.array(rows["account"], type=pa.int64())),
        "created_at": pa.array(rows["created"] * 1_000_000, type=pa.timestamp("us")),
        "resolved_at": resolved,
        "priority": np.array(cat.PRIORITIES, dtype=object)[rows["priority"]].tolist(),
        "category": np.array(cat.TICKET_CATEGORIES, dtype=object)[rows["category"]].tolist(),
        "csat": pa.array(csat, type=pa.float64(), from_pandas=True),
    })
    pq.write_table(table, out / "tickets.parquet")
    return table.num_rows


def _write_answers(out: Path, parts: list[dict[str, np.ndarray]], roster_ids: pa.Array) -> int:
    rows = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    order = np.lexsort((rows["account"], rows["when"]))
    rows = {key: value[order] for key, value in rows.items()}
    account_ids = roster_ids.take(pa.array(rows["account"], type=pa.int64()))
    comments = [_comment(int(s), float(p)) if c else None
                for s, p, c in zip(rows["score"], rows["pick"], rows["comment"], strict=True)]
    table = pa.table({
        "response_id": [f"nps_{i:08d}" for i in range(len(order))],
        "account_id": account_ids,
        "user_id": pc.binary_join_element_wise(
            account_ids, pc.cast(pa.array(rows["user"]), pa.string()), "-u"),
        "responded_at": pa.array(rows["when"] * 1_000_000, type=pa.timestamp("us")),
        "score": pa.array(rows["score"], type=pa.int64()),
        "comment": pa.array(comments, type=pa.string()),
    })
    pq.write_table(table, out / "surveys.parquet")
    return table.num_rows
