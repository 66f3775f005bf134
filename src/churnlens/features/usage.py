"""Adoption: how many people use the product, how much, how broadly, and which way it is going."""

from __future__ import annotations

import ibis.expr.types as ir

from churnlens.features.expressions import ratio as _ratio
from churnlens.features.registry import feature
from churnlens.features.sources import distinct_features


@feature(pillar="adoption", role="lever", unit="users", window_days=7, higher_is_riskier=False,
         fill=0, sentence="{value} users active in the last 7 days")
def active_users_7d(usage: ir.Table) -> ir.Value:
    """Distinct users with any event in the 7 days before as_of."""
    return usage.active_7.sum()


@feature(pillar="adoption", role="lever", unit="users", window_days=30, higher_is_riskier=False,
         fill=0, sentence="{value} users active in the last 30 days")
def active_users_30d(usage: ir.Table) -> ir.Value:
    """Distinct users with any event in the 30 days before as_of."""
    return usage.active_30.sum()


@feature(pillar="adoption", role="lever", unit="users", window_days=90, higher_is_riskier=False,
         fill=0, sentence="{value} users active in the last 90 days")
def active_users_90d(usage: ir.Table) -> ir.Value:
    """Distinct users with any event in the 90 days before as_of."""
    return usage.active_90.sum()


@feature(pillar="adoption", role="lever", past=True, unit="users", window_days=30,
         higher_is_riskier=False, fill=0,
         sentence="{value} users were active in the 30 days before the last 30")
def active_users_prev_30d(usage: ir.Table) -> ir.Value:
    """Distinct users active 31 to 60 days before as_of."""
    return usage.active_prev_30.sum()


@feature(pillar="adoption", role="lever", past=True, unit="users", window_days=90,
         higher_is_riskier=False, fill=0,
         sentence="{value} users were active in the 90 days before the last 90")
def active_users_prev_90d(usage: ir.Table) -> ir.Value:
    """Distinct users active 91 to 180 days before as_of."""
    return usage.active_prev_90.sum()


@feature(pillar="adoption", role="lever", unit="ratio", window_days=30, higher_is_riskier=False,
         valid=(0, 1),  # a day's active users are some of the month's
         sentence="Stickiness (DAU/MAU) of {value} over the last 30 days")
def dau_mau_30d(usage: ir.Table) -> ir.Value:
    """Average daily active users over 30 days divided by the 30-day active users."""
    return _ratio(usage.days_30.sum().cast("float64") / 30.0, usage.active_30.sum())


@feature(pillar="adoption", role="lever", unit="events", window_days=30, higher_is_riskier=False,
         fill=0, sentence="{value} product actions in the last 30 days")
def events_30d(usage: ir.Table) -> ir.Value:
    """Product events in the 30 days before as_of."""
    return usage.events_30.sum()


@feature(pillar="adoption", role="lever", past=True, unit="events", window_days=30,
         higher_is_riskier=False, fill=0,
         sentence="{value} product actions in the 30 days before the last 30")
def events_prev_30d(usage: ir.Table) -> ir.Value:
    """Product events 31 to 60 days before as_of."""
    return usage.events_prev_30.sum()


@feature(pillar="adoption", role="lever", unit="events", window_days=30, higher_is_riskier=False,
         fill=0, sentence="{value} key actions (the ones that deliver value) in the last 30 days")
def key_actions_30d(usage: ir.Table) -> ir.Value:
    """Key-action events (the configured value-delivering actions) in the last 30 days."""
    return usage.key_30.sum()


@feature(pillar="adoption", role="lever", unit="units", window_days=30, higher_is_riskier=False,
         fill=0, sentence="Usage volume of {value} units in the last 30 days")
def usage_quantity_30d(usage: ir.Table) -> ir.Value:
    """Sum of event quantities (API calls, rows imported, ...) in the last 30 days."""
    return usage.quantity_30.sum()


@feature(pillar="adoption", role="lever", unit="days", higher_is_riskier=True,
         sentence="Last product activity {value} days ago")
def days_since_last_activity(usage: ir.Table) -> ir.Value:
    """Days since the account's last event (null when none in 365 days)."""
    return usage.last_age.min()


@feature(pillar="adoption", role="lever", unit="share", window_days=30, higher_is_riskier=True,
         sentence="{pct}% of the last 30 days' activity came from a single user")
def top_user_share_30d(user_activity: ir.Table) -> ir.Value:
    """Share of the last 30 days' events that came from the most active user."""
    return _ratio(user_activity.events_30.max(), user_activity.events_30.sum())


@feature(pillar="adoption", role="lever", unit="features", window_days=30,
         higher_is_riskier=False, fill=0,
         sentence="{value} product features used in the last 30 days")
def features_used_30d(feature_usage: ir.Table) -> ir.Value:
    """Distinct product features (event names) used in the 30 days before as_of."""
    return distinct_features(feature_usage, "w30")


@feature(pillar="adoption", role="lever", past=True, unit="features", window_days=30,
         higher_is_riskier=False, fill=0,
         sentence="{value} features were used in the 30 days before the last 30")
def features_used_prev_30d(feature_usage: ir.Table) -> ir.Value:
    """Distinct product features used 31 to 60 days before as_of."""
    return distinct_features(feature_usage, "prev30")


@feature(pillar="adoption", role="lever", unit="features", window_days=90,
         higher_is_riskier=False, fill=0,
         sentence="{value} product features used in the last 90 days")
def features_used_90d(feature_usage: ir.Table) -> ir.Value:
    """Distinct product features used in the 90 days before as_of."""
    return distinct_features(feature_usage, "w90")


# --------------------------------------------------------------------------- derived


@feature(pillar="adoption", role="lever", unit="ratio", window_days=30, higher_is_riskier=False,
         sentence="Active users at {value}x the previous 30 days")
def active_users_trend_30d(features: ir.Table) -> ir.Value:
    """Active users in the last 30 days over those of the 30 days before."""
    return _ratio(features.active_users_30d, features.active_users_prev_30d)


@feature(pillar="adoption", role="lever", unit="users", window_days=30, higher_is_riskier=False,
         valid=(None, None),  # a change: fewer users is negative
         sentence="Active users {direction} by {abs} versus the previous 30 days")
def active_users_change_30d(features: ir.Table) -> ir.Value:
    """Change in 30-day active users versus the 30 days before."""
    return features.active_users_30d - features.active_users_prev_30d


@feature(pillar="adoption", role="lever", unit="ratio", window_days=90, higher_is_riskier=False,
         sentence="Active users at {value}x the previous 90 days")
def active_users_trend_90d(features: ir.Table) -> ir.Value:
    """Active users in the last 90 days over those of the 90 days before."""
    return _ratio(features.active_users_90d, features.active_users_prev_90d)


@feature(pillar="adoption", role="lever", unit="share", window_days=30, higher_is_riskier=False,
         valid=(0, None),  # more active users than paid seats happens
         sentence="{pct}% of paid seats active in the last 30 days")
def seat_utilisation_30d(features: ir.Table) -> ir.Value:
    """Active users in the last 30 days per paid seat."""
    return _ratio(features.active_users_30d, features.seats)


@feature(pillar="adoption", role="lever", unit="share", window_days=7, higher_is_riskier=False,
         valid=(0, None),  # more active users than paid seats happens
         sentence="{pct}% of paid seats active in the last 7 days")
def seat_utilisation_7d(features: ir.Table) -> ir.Value:
    """Active users in the last 7 days per paid seat."""
    return _ratio(features.active_users_7d, features.seats)


@feature(pillar="adoption", role="lever", unit="events per seat", window_days=30,
         higher_is_riskier=False, sentence="{value} actions per paid seat in the last 30 days")
def events_per_seat_30d(features: ir.Table) -> ir.Value:
    """Product events in the last 30 days per paid seat."""
    return _ratio(features.events_30d, features.seats)


@feature(pillar="adoption", role="lever", unit="events per user", window_days=30,
         higher_is_riskier=False, sentence="{value} actions per active user in the last 30 days")
def events_per_active_user_30d(features: ir.Table) -> ir.Value:
    """Product events in the last 30 days per active user."""
    return _ratio(features.events_30d, features.active_users_30d)


@feature(pillar="adoption", role="lever", unit="ratio", window_days=30, higher_is_riskier=False,
         sentence="Product actions at {value}x the previous 30 days")
def usage_trend_30d(features: ir.Table) -> ir.Value:
    """Events in the last 30 days over those of the 30 days before."""
    return _ratio(features.events_30d, features.events_prev_30d)


@feature(pillar="adoption", role="lever", unit="features", window_days=30, higher_is_riskier=False,
         valid=(None, None),  # a change: fewer features is negative
         sentence="Features in use {direction} by {abs} versus the previous 30 days")
def breadth_change_30d(features: ir.Table) -> ir.Value:
    """Change in distinct features used versus the 30 days before."""
    return features.features_used_30d - features.features_used_prev_30d


@feature(pillar="adoption", role="lever", unit="key actions per seat", window_days=30,
         higher_is_riskier=False, sentence="{value} key actions per paid seat in the last 30 days")
def key_actions_per_seat_30d(features: ir.Table) -> ir.Value:
    """Key actions in the last 30 days per paid seat."""
    return _ratio(features.key_actions_30d, features.seats)


