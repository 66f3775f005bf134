"""The long view: a year of activity, its rhythm, and money where the history has it.

Purchase and usage logs that nobody wrote for churnlens are read best over long windows: how
often an account comes back (its usual gap between active days, and how long it has been quiet
against it), how much it did over a year, and what it spent. Rates over a year are taken over
``min(365, days since the first activity)``, so a young account is not read as declining.
Spend needs the ``money_event`` setting (the event whose quantity is an amount): without it
there is no monetary feature, and spend is never summed with counts.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from churnlens.features.expressions import ratio
from churnlens.features.registry import feature, windowed
from churnlens.features.sources import account_measure, window_key

LONG_WINDOW_DAYS = 365
"""The window of the long-run rates and of the usual gap: a year covers every season once."""
PER_DAYS = 30
"""Rates are said per 30 days, the unit a CSM reads usage in."""


@windowed(days=(180, LONG_WINDOW_DAYS), name="events_{days}d", pillar="adoption", role="lever",
          unit="events", higher_is_riskier=False, fill=0,
          sentence="{value} product actions in the last {days} days")
def events_in_window(usage: ir.Table, days: int) -> ir.Value:
    """Product events in the {days} days before as_of."""
    return account_measure(usage, "events", days).sum()


@windowed(days=(30, 90, LONG_WINDOW_DAYS), name="active_days_{days}d", pillar="adoption",
          role="lever", unit="days", higher_is_riskier=False, fill=0,
          valid=lambda days: (0, days),
          sentence="Active on {value} of the last {days} days")
def active_days_in_window(usage: ir.Table, days: int) -> ir.Value:
    """Days with any event of the account in the {days} days before as_of."""
    return account_measure(usage, "account_days", days).sum()


@windowed(days=(90,), name="active_days_prev_{days}d", pillar="adoption", role="lever", past=True,
          unit="days", higher_is_riskier=False, fill=0,
          valid=lambda days: (0, days),
          sentence="Active on {value} days in the {days} days before the last {days}")
def active_days_in_previous_window(usage: ir.Table, days: int) -> ir.Value:
    """Days with any event of the account in the {days} days before the last {days}."""
    return account_measure(usage, "account_days", days, previous=True).sum()


@windowed(days=(LONG_WINDOW_DAYS,), name="typical_gap_days_{days}d", pillar="adoption",
          role="lever", unit="days", higher_is_riskier=True,
          sentence="Usually {value} days between active days (last {days} days)")
def typical_gap(usage: ir.Table, days: int) -> ir.Value:
    """Mean days between consecutive active days in the {days} days before as_of (null
    with fewer than two)."""
    assert days == LONG_WINDOW_DAYS, "the first active day is kept for the long window only"
    span = usage[f"first_age_{window_key(days)}"].max() - usage.last_age.min()
    return ratio(span, account_measure(usage, "account_days", days).sum() - 1)


@feature(pillar="adoption", role="context", unit="days", higher_is_riskier=False,
         grows_with_time=True,
         sentence="First activity {value} days ago")
def days_since_first_event(onboarding: ir.Table) -> ir.Value:
    """Days since the account's first event of all (null before it has one)."""
    return onboarding.as_of_day - onboarding.first_event_day


@feature(pillar="adoption", role="lever", unit="ratio", higher_is_riskier=True,
         sentence="Quiet for {value}x its usual gap between active days")
def recency_vs_usual_gap(features: ir.Table) -> ir.Value:
    """Days since the last activity over the usual gap between active days (a year's)."""
    return ratio(features.days_since_last_activity, features.typical_gap_days_365d)


def _per_period(total: ir.NumericValue, first_event_age: ir.IntegerValue, days: int
                ) -> ir.NumericValue:
    """``total`` of the last ``days`` days per 30 days of the time the account could act in
    them: ``min(days, days since its first event)``."""
    observed = ibis.least(ibis.literal(days), first_event_age)
    return ratio(total * PER_DAYS, observed)


@windowed(days=(LONG_WINDOW_DAYS,), name="event_rate_{days}d", pillar="adoption", role="lever",
          unit="events per 30 days", higher_is_riskier=False,
          sentence="{value} product actions per 30 days over the last {days} days "
          "(or since the first activity)")
def event_rate(features: ir.Table, days: int) -> ir.Value:
    """Events per 30 days over the last {days} days, or since the first event if later."""
    return _per_period(features[f"events_{days}d"], features.days_since_first_event, days)


@windowed(days=(LONG_WINDOW_DAYS,), name="active_day_rate_{days}d", pillar="adoption", role="lever",
          unit="days per 30 days", higher_is_riskier=False,
          valid=(0, PER_DAYS),
          sentence="Active on {value} days per 30 over the last {days} days "
          "(or since the first activity)")
def active_day_rate(features: ir.Table, days: int) -> ir.Value:
    """Active days per 30 days over the last {days} days, or since the first event if later."""
    return _per_period(features[f"active_days_{days}d"], features.days_since_first_event, days)


@windowed(days=(90,), name="activity_trend_{days}d", pillar="adoption", role="lever", unit="ratio",
          higher_is_riskier=False, sentence="Active days at {value}x the previous {days} days")
def activity_trend(features: ir.Table, days: int) -> ir.Value:
    """Active days in the last {days} days over those of the {days} days before."""
    return ratio(features[f"active_days_{days}d"], features[f"active_days_prev_{days}d"])


@feature(pillar="adoption", unit="score", window_days=LONG_WINDOW_DAYS, higher_is_riskier=False,
         role="lever",
         valid=(0, 1),
         sentence="Activity regularity of {value} over the last year (1: the same pace in "
         "each of its three periods, 0: all of it in one)")
def activity_regularity_365d(features: ir.Table) -> ir.Value:
    """How evenly the year's active days are spread over its last 90 days, the 90 before and
    the rest (1 minus the coefficient of variation of the three daily rates, over its largest
    possible value); null for an account younger than a year or with no active day in it."""
    recent = features.active_days_90d.cast("float64")
    before = features.active_days_prev_90d.cast("float64")
    rest = features.active_days_365d.cast("float64") - recent - before
    rates = [recent / 90, before / 90, rest / (LONG_WINDOW_DAYS - 180)]
    mean = sum(rates[1:], rates[0]) / 3
    spread = (sum(((r - mean) ** 2 for r in rates[1:]), (rates[0] - mean) ** 2) / 3).sqrt()
    regularity = 1 - ratio(spread, mean) / 2 ** 0.5
    old_enough = features.days_since_first_event >= LONG_WINDOW_DAYS
    return old_enough.ifelse(regularity, ibis.null("float64"))


# --------------------------------------------------------------------------- money


@windowed(days=(90, LONG_WINDOW_DAYS), name="spend_{days}d", pillar="commercial", role="lever",
          unit="money", higher_is_riskier=False, fill=0, also_needs=("money",),
          sentence="Spent {value} in the last {days} days")
def spend_in_window(usage: ir.Table, days: int) -> ir.Value:
    """Money spent (the money event's amounts) in the {days} days before as_of."""
    return account_measure(usage, "spend", days).sum()


@windowed(days=(90,), name="spend_prev_{days}d", pillar="commercial", role="lever", past=True,
          unit="money", higher_is_riskier=False, fill=0, also_needs=("money",),
          sentence="Spent {value} in the {days} days before the last {days}")
def spend_in_previous_window(usage: ir.Table, days: int) -> ir.Value:
    """Money spent in the {days} days before the last {days}."""
    return account_measure(usage, "spend", days, previous=True).sum()


@windowed(days=(LONG_WINDOW_DAYS,), name="purchase_days_{days}d", pillar="commercial", role="lever",
          unit="days", higher_is_riskier=False, fill=0, also_needs=("money",),
          sentence="Bought on {value} of the last {days} days")
def purchase_days(usage: ir.Table, days: int) -> ir.Value:
    """Days with a money event (orders, counted once a day) in the {days} days before as_of."""
    return account_measure(usage, "spend_days", days).sum()


@windowed(days=(LONG_WINDOW_DAYS,), name="order_value_{days}d", pillar="commercial", role="lever",
          unit="money per purchase day", higher_is_riskier=False,
          sentence="Spent {value} on an average purchase day (last {days} days)")
def order_value(features: ir.Table, days: int) -> ir.Value:
    """Average spend per purchase day in the last {days} days."""
    return ratio(features[f"spend_{days}d"], features[f"purchase_days_{days}d"])


@windowed(days=(LONG_WINDOW_DAYS,), name="spend_rate_{days}d", pillar="commercial", role="lever",
          unit="money per 30 days", higher_is_riskier=False,
          sentence="Spent {value} per 30 days over the last {days} days "
          "(or since the first activity)")
def spend_rate(features: ir.Table, days: int) -> ir.Value:
    """Spend per 30 days over the last {days} days, or since the first event if later."""
    return _per_period(features[f"spend_{days}d"], features.days_since_first_event, days)


@windowed(days=(90,), name="spend_trend_{days}d", pillar="commercial", role="lever", unit="ratio",
          higher_is_riskier=False, sentence="Spend at {value}x the previous {days} days")
def spend_trend(features: ir.Table, days: int) -> ir.Value:
    """Spend in the last {days} days over that of the {days} days before."""
    return ratio(features[f"spend_{days}d"], features[f"spend_prev_{days}d"])
