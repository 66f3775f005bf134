"""The laws of the simulated company, shared by the simulation and its oracle.

Hidden health moves the quantities that the history records; the hazards read only those
recorded quantities. Because ``simulate`` and ``oracle`` call the very same functions, the
oracle's probabilities are exactly the simulation's own, not a second model of it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from churnlens.synth.catalog import FEATURES, LIST_PRICE_PER_SEAT

N_FEATURES = len(FEATURES)
HEALTH_PERSISTENCE = 0.85
HEALTH_NOISE = 0.30
STALL_ACTIVATION_SHARE = 0.3
"""Onboarding counts as stalled when fewer than this share of seats acted in the first 30 days."""

CHURN_WEIGHTS: dict[str, float] = {
    "intercept_monthly_renewal": -3.7,
    "intercept_annual_renewal": -1.6,
    "active_users_per_seat_prev_month (minus 0.6)": -2.4,
    "log_active_users_trend_prev_two_months (clipped +-1.5)": -0.8,
    "features_used_prev_month (minus 6)": -0.12,
    "tickets_last_3_months_per_10_seats (capped 15)": 0.06,
    "high_or_urgent_tickets_last_3_months (capped 5)": 0.35,
    "mean_nps_last_6_months (minus 7)": -0.22,
    "no_nps_answer_last_6_months": 0.15,
    "onboarding_stalled x exp(-tenure_months / 6)": 1.6,
    "log1p_tenure_months": -0.25,
    "plan_starter": 0.3,
    "plan_enterprise": -0.4,
}
EXPANSION_WEIGHTS: dict[str, float] = {
    "intercept": -3.9,
    "active_users_per_seat_prev_month (minus 0.75)": 3.0,
    "log_active_users_trend_prev_two_months (clipped +-1.5)": 0.6,
    "features_used_prev_month (minus 6)": 0.1,
    "mean_nps_last_6_months (minus 7)": 0.12,
    "no_nps_answer_last_6_months": -0.05,
    "high_or_urgent_tickets_last_3_months (capped 5)": -0.25,
    "onboarding_stalled": -1.0,
    "plan_starter": 0.2,
    "plan_growth": 0.15,
    "plan_enterprise": -0.2,
}
DOWNGRADE_WEIGHTS: dict[str, float] = {
    "intercept": -2.6,
    "active_users_per_seat_prev_month (minus 0.45)": -4.0,
}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class AccountState:
    """What the simulation knows about a set of accounts at the start of a month.

    Every field is an array with one row per account (the rolling histories have one column per
    past month, most recent first). ``health`` and ``health_mean`` are hidden: no table records
    them, and the hazards never read them.
    """

    plan: np.ndarray
    annual: np.ndarray
    seats: np.ndarray
    price_per_seat: np.ndarray
    health: np.ndarray
    health_mean: np.ndarray
    anchor_month: np.ndarray
    """Month index of the subscription's first day (renewals fall on its anniversaries)."""
    billing_day: np.ndarray
    stalled: np.ndarray
    onboarding_seen: np.ndarray
    """True when the first 30 days lie inside the recorded history."""
    regular_from: np.ndarray
    """First month index whose whole span lies after the first 30 days."""
    onboarding_tail: np.ndarray
    """Share of month ``regular_from - 1`` that lies after the first 30 days."""
    mau: np.ndarray
    """Distinct active users in each of the last two months, shape (n, 2)."""
    breadth: np.ndarray
    """Distinct features used last month."""
    tickets: np.ndarray
    """Tickets opened in each of the last three months, shape (n, 3)."""
    severe: np.ndarray
    """High or urgent tickets in each of the last three months, shape (n, 3)."""
    nps_sum: np.ndarray
    """Sum of NPS scores answered in each of the last six months, shape (n, 6)."""
    nps_count: np.ndarray

    def take(self, index: np.ndarray) -> AccountState:
        return AccountState(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def tile(self, copies: int) -> AccountState:
        """``copies`` independent futures of every account, account-major."""
        return self.take(np.repeat(np.arange(len(self.seats)), copies))

    def copy(self) -> AccountState:
        return replace(self, **{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def put(self, index: np.ndarray, other: AccountState) -> None:
        for f in fields(self):
            getattr(self, f.name)[index] = getattr(other, f.name)

    @property
    def mrr(self) -> np.ndarray:
        return self.seats * self.price_per_seat


@dataclass(frozen=True)
class MonthContext:
    """Company-wide conditions of one calendar month."""

    index: int
    season: float
    """Shift of activity in logit units (summer and year-end holidays are quieter)."""
    outage: float
    """Multiplier on ticket rates (1.0 in a normal month)."""


@dataclass(frozen=True)
class Hazards:
    churn: np.ndarray
    """Probability of churning at this month's billing day, where it is a renewal."""
    expand: np.ndarray
    """Probability of adding seats or upgrading the plan at this month's billing day."""
    downgrade: np.ndarray
    """Probability of cutting seats at this month's renewal, given no expansion."""
    renewal: np.ndarray
    """This month's billing day is a renewal (monthly plans: every month; annual: anniversaries)."""
    billing: np.ndarray
    """This month has a billing day after the subscription began."""


@dataclass(frozen=True)
class Observed:
    """What one month adds to the history of each account, as counts the tables will hold."""

    mau: np.ndarray
    events: np.ndarray
    breadth_target: np.ndarray
    tickets: np.ndarray
    severe: np.ndarray
    nps_scores: np.ndarray
    """Concatenated scores of every answer, account-major (see ``nps_answers``)."""
    nps_answers: np.ndarray

    @property
    def breadth(self) -> np.ndarray:
        """Distinct features the events will touch: the first events cover distinct features."""
        return np.minimum(self.breadth_target, self.events)


def recorded_signals(state: AccountState, month: int) -> dict[str, np.ndarray]:
    """The history's own quantities at the start of ``month``, as the hazards read them."""
    seats = np.maximum(state.seats, 1)
    adoption_known = month - 1 >= state.regular_from
    trend_known = month - 2 >= state.regular_from
    utilisation = np.where(adoption_known, np.minimum(state.mau[:, 0] / seats, 1.0), np.nan)
    trend = np.where(
        trend_known,
        np.clip(np.log((state.mau[:, 0] + 1.0) / (state.mau[:, 1] + 1.0)), -1.5, 1.5),
        0.0,
    )
    breadth = np.where(adoption_known, state.breadth, np.nan)
    nps_count = state.nps_count.sum(axis=1)
    nps_mean = np.where(nps_count > 0, state.nps_sum.sum(axis=1) / np.maximum(nps_count, 1),
                        np.nan)
    tenure = (month - state.anchor_month).astype(float)
    return {
        "utilisation": utilisation,
        "trend": trend,
        "breadth": breadth,
        "tickets_per_10_seats": np.minimum(10.0 * state.tickets.sum(axis=1) / seats, 15.0),
        "severe": np.minimum(state.severe.sum(axis=1), 5).astype(float),
        "nps_mean": nps_mean,
        "stalled_known": state.onboarding_seen & state.stalled & (month >= state.regular_from),
        "tenure": tenure,
    }


def hazards(state: AccountState, month: int) -> Hazards:
    """Churn, expansion and downgrade probabilities at ``month``'s billing day.

    Unknown quantities (a month still inside onboarding, no NPS answer) contribute nothing but
    their indicator, exactly as a model reading the history would have to treat them.
    """
    s = recorded_signals(state, month)
    cw, ew, dw = CHURN_WEIGHTS, EXPANSION_WEIGHTS, DOWNGRADE_WEIGHTS
    util = s["utilisation"]
    has_util = ~np.isnan(util)
    has_nps = ~np.isnan(s["nps_mean"])
    nps_gap = np.where(has_nps, s["nps_mean"] - 7.0, 0.0)
    breadth_gap = np.where(has_util, s["breadth"] - 6.0, 0.0)
    plan = state.plan

    churn_logit = (
        np.where(state.annual, cw["intercept_annual_renewal"], cw["intercept_monthly_renewal"])
        + np.where(has_util, cw["active_users_per_seat_prev_month (minus 0.6)"] * (util - 0.6),
                   0.0)
        + cw["log_active_users_trend_prev_two_months (clipped +-1.5)"] * s["trend"]
        + cw["features_used_prev_month (minus 6)"] * breadth_gap
        + cw["tickets_last_3_months_per_10_seats (capped 15)"] * s["tickets_per_10_seats"]
        + cw["high_or_urgent_tickets_last_3_months (capped 5)"] * s["severe"]
        + cw["mean_nps_last_6_months (minus 7)"] * nps_gap
        + np.where(has_nps, 0.0, cw["no_nps_answer_last_6_months"])
        + cw["onboarding_stalled x exp(-tenure_months / 6)"] * s["stalled_known"]
        * np.exp(-s["tenure"] / 6.0)
        + cw["log1p_tenure_months"] * np.log1p(np.maximum(s["tenure"], 0.0))
        + np.select([plan == 0, plan == 2], [cw["plan_starter"], cw["plan_enterprise"]], 0.0)
    )
    expand_logit = (
        ew["intercept"]
        + np.where(has_util,
                   ew["active_users_per_seat_prev_month (minus 0.75)"] * (util - 0.75), 0.0)
        + ew["log_active_users_trend_prev_two_months (clipped +-1.5)"] * s["trend"]
        + ew["features_used_prev_month (minus 6)"] * breadth_gap
        + ew["mean_nps_last_6_months (minus 7)"] * nps_gap
        + np.where(has_nps, 0.0, ew["no_nps_answer_last_6_months"])
        + ew["high_or_urgent_tickets_last_3_months (capped 5)"] * s["severe"]
        + ew["onboarding_stalled"] * s["stalled_known"]
        + np.select([plan == 0, plan == 1, plan == 2],
                    [ew["plan_starter"], ew["plan_growth"], ew["plan_enterprise"]], 0.0)
    )
    downgrade_logit = dw["intercept"] + np.where(
        has_util, dw["active_users_per_seat_prev_month (minus 0.45)"] * (util - 0.45), -10.0)

    billing = month > state.anchor_month
    since = month - state.anchor_month
    renewal = billing & (~state.annual | (since % 12 == 0))
    return Hazards(
        churn=np.where(renewal, sigmoid(churn_logit), 0.0),
        expand=np.where(billing, sigmoid(expand_logit), 0.0),
        downgrade=np.where(renewal & (downgrade_target(state) < state.seats),
                           sigmoid(downgrade_logit), 0.0),
        renewal=renewal,
        billing=billing,
    )


def downgrade_target(state: AccountState) -> np.ndarray:
    """Seats an account cuts to at a downgrade: what it used last month plus a little headroom."""
    return np.maximum(1, np.ceil(state.mau[:, 0] * 1.15)).astype(np.int64)


def expansion_seats(seats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """New seat count after an expansion: always at least 10% more, so every one is a real one."""
    added = np.maximum(1, np.ceil(seats * rng.uniform(0.1, 0.6, size=seats.shape)))
    return (seats + added).astype(np.int64)


def apply_billing_day(state: AccountState, hz: Hazards, rng: np.random.Generator,
                      allow_expansion: bool = True) -> dict[str, np.ndarray]:
    """Draw expansion and downgrade at the billing day and update seats and prices in place.

    Churn is not drawn here: the simulation draws it itself, and the oracle integrates over it.
    Returns the masks of what happened, for the simulation to record.
    """
    n = len(state.seats)
    expanded = allow_expansion & (rng.random(n) < hz.expand)
    upgrade = expanded & (state.plan < 2) & (rng.random(n) < 0.2)
    add_seats = expanded & ~upgrade
    downgraded = ~expanded & (rng.random(n) < hz.downgrade)
    new_seats = expansion_seats(state.seats, rng)
    state.seats = np.where(add_seats, new_seats, state.seats)
    if upgrade.any():
        next_plan = np.minimum(state.plan + 1, len(LIST_PRICE_PER_SEAT) - 1)
        ratio = LIST_PRICE_PER_SEAT[next_plan] / LIST_PRICE_PER_SEAT[state.plan]
        state.price_per_seat = np.where(upgrade, state.price_per_seat * ratio,
                                        state.price_per_seat)
        state.plan = np.where(upgrade, next_plan, state.plan)
    state.seats = np.where(downgraded, downgrade_target(state), state.seats)
    return {"expanded": expanded, "upgraded": upgrade, "downgraded": downgraded}


def regular_exposure(state: AccountState, month: int) -> np.ndarray:
    """Share of ``month`` that counts as regular (post-onboarding) activity."""
    return np.where(month >= state.regular_from, 1.0,
                    np.where(month == state.regular_from - 1, state.onboarding_tail, 0.0))


def draw_observed(state: AccountState, ctx: MonthContext, exposure: np.ndarray,
                  presence: np.ndarray, rng: np.random.Generator) -> Observed:
    """What one month of activity, support and surveys adds, given each account's health.

    ``exposure`` is the share of the month with regular product use; ``presence`` the share
    during which the account was a customer at all (tickets and surveys need only that).
    """
    h = state.health
    seats = state.seats
    p_active = sigmoid(0.3 + 1.3 * h + ctx.season) * np.sqrt(exposure)
    mau = rng.binomial(seats, np.clip(p_active, 0.0, 1.0))
    extra_rate = np.exp(1.3 + 0.35 * h + 0.5 * ctx.season) * exposure
    events = mau + rng.poisson(extra_rate * mau)
    breadth_target = 1 + rng.binomial(N_FEATURES - 1, sigmoid(-0.4 + 1.1 * h))

    alive = presence > 0
    ticket_rate = 0.06 * (1.0 + seats) ** 0.6 * np.exp(-0.7 * h) * ctx.outage * presence
    tickets = rng.poisson(ticket_rate)
    severe = rng.binomial(tickets, sigmoid(-1.6 - 0.8 * h + 0.5 * (ctx.outage > 1)))

    survey_month = alive & ((ctx.index - state.anchor_month) % 3 == 1)
    answers = np.where(survey_month, rng.binomial(np.minimum(seats, 25), 0.3), 0)
    mean_score = np.repeat(6.6 + 2.0 * h, answers)
    scores = np.clip(np.rint(rng.normal(mean_score, 1.5)), 0, 10).astype(np.int64)
    return Observed(mau=mau, events=events, breadth_target=breadth_target, tickets=tickets,
                    severe=severe, nps_scores=scores, nps_answers=answers)


def remember(state: AccountState, obs: Observed) -> None:
    """Shift the rolling histories by one month, in place."""
    state.mau = np.column_stack([obs.mau, state.mau[:, 0]])
    state.breadth = obs.breadth
    state.tickets = np.column_stack([obs.tickets, state.tickets[:, :2]])
    state.severe = np.column_stack([obs.severe, state.severe[:, :2]])
    owner = np.repeat(np.arange(len(obs.nps_answers)), obs.nps_answers)
    nps_sum = np.bincount(owner, weights=obs.nps_scores, minlength=len(obs.nps_answers))
    state.nps_sum = np.column_stack([nps_sum, state.nps_sum[:, :5]])
    state.nps_count = np.column_stack([obs.nps_answers, state.nps_count[:, :5]])


def drift_health(state: AccountState, rng: np.random.Generator) -> None:
    """Next month's hidden health: pulled back to the account's own mean, plus noise."""
    state.health = (state.health_mean
                    + HEALTH_PERSISTENCE * (state.health - state.health_mean)
                    + HEALTH_NOISE * rng.standard_normal(len(state.health)))
