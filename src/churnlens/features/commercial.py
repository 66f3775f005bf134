"""Commercial: what the account pays, for what, how long it has stayed and when it renews."""

from __future__ import annotations

import ibis.expr.types as ir

from churnlens.features.registry import feature


@feature(pillar="commercial", role="context", unit="currency per month", higher_is_riskier=False,
         sentence="Monthly recurring revenue of {value}")
def mrr(subscriptions: ir.Table) -> ir.Value:
    """Monthly recurring revenue of the subscription held at as_of."""
    return subscriptions.mrr


@feature(pillar="commercial", role="context", unit="currency per year", higher_is_riskier=False,
         sentence="Annual recurring revenue of {value}")
def arr(subscriptions: ir.Table) -> ir.Value:
    """Annual recurring revenue (12 x MRR) at as_of."""
    return subscriptions.mrr * 12.0


@feature(pillar="commercial", role="context", unit="seats", higher_is_riskier=False,
         sentence="{value} paid seats")
def seats(subscriptions: ir.Table) -> ir.Value:
    """Paid seats of the subscription held at as_of."""
    return subscriptions.seats


@feature(pillar="commercial", role="context", unit="plan", kind="category",
         sentence="On the {value} plan")
def plan(subscriptions: ir.Table) -> ir.Value:
    """Plan of the subscription held at as_of."""
    return subscriptions.plan


@feature(pillar="commercial", role="context", unit="period", kind="category",
         sentence="Billed {value}")
def billing_period(subscriptions: ir.Table) -> ir.Value:
    """How the subscription held at as_of is billed (monthly or annual)."""
    return subscriptions.billing_period


@feature(pillar="commercial", role="context", unit="days", higher_is_riskier=None,
         sentence="Renewal in {value} days")
def days_to_renewal(subscriptions: ir.Table) -> ir.Value:
    """Days until the next renewal (anniversary of the first subscription, by billing period)."""
    return subscriptions.days_to_renewal


@feature(pillar="commercial", role="context", unit="currency per month", window_days=90,
         higher_is_riskier=False,
         valid=(None, None),  # a change: a contraction is negative
         sentence="MRR {direction} by {abs} over the last 90 days")
def mrr_change_90d(subscriptions: ir.Table) -> ir.Value:
    """MRR at as_of minus MRR 90 days earlier (null if not a customer then)."""
    return subscriptions.mrr - subscriptions.mrr_90d_ago


@feature(pillar="commercial", role="context", unit="changes", window_days=365,
         higher_is_riskier=True, sentence="{value} downgrades in the last year")
def downgrades_365d(subscriptions: ir.Table) -> ir.Value:
    """Subscription changes in the last 365 days that lowered MRR."""
    return subscriptions.downgrades_365d


@feature(pillar="commercial", role="context", unit="changes", window_days=365,
         higher_is_riskier=False, sentence="{value} expansions in the last year")
def expansions_365d(subscriptions: ir.Table) -> ir.Value:
    """Subscription changes in the last 365 days that raised MRR."""
    return subscriptions.expansions_365d


@feature(pillar="commercial", role="context", unit="share", higher_is_riskier=None,
         sentence="Paying {pct}% below the plan's highest price per seat")
def discount_share(subscriptions: ir.Table) -> ir.Value:
    """1 - price per seat / the highest price per seat seen on the same plan before as_of."""
    price = subscriptions.mrr / subscriptions.seats.cast("float64").nullif(0.0)
    return 1.0 - price / subscriptions.list_price_per_seat.nullif(0.0)


@feature(pillar="commercial", role="context", unit="days", higher_is_riskier=False,
         grows_with_time=True,
         sentence="Customer for {value} days")
def tenure_days(accounts: ir.Table) -> ir.Value:
    """Days since the account signed up."""
    return accounts.as_of_day - accounts.created_day


@feature(pillar="commercial", role="context", unit="industry", kind="category",
         sentence="Industry: {value}")
def industry(accounts: ir.Table) -> ir.Value:
    """Industry of the customer."""
    return accounts.industry


@feature(pillar="commercial", role="context", unit="region", kind="category",
         sentence="Region: {value}")
def region(accounts: ir.Table) -> ir.Value:
    """Sales region of the customer."""
    return accounts.region


@feature(pillar="commercial", role="context", unit="flag", kind="flag", higher_is_riskier=False,
         sentence="Has a named CSM: {yes_no}")
def has_csm(accounts: ir.Table) -> ir.Value:
    """Whether a Customer Success Manager is assigned."""
    return accounts.csm.notnull().ifelse(1, 0)


@feature(pillar="commercial", role="context", unit="share", window_days=90, higher_is_riskier=False,
         valid=(-1, None),  # MRR can fall by all of itself, and grow many times over
         sentence="MRR {direction} by {pct}% over the last 90 days")
def mrr_change_share_90d(features: ir.Table) -> ir.Value:
    """Relative MRR change over the last 90 days."""
    before = features.mrr - features.mrr_change_90d
    return features.mrr_change_90d / before.nullif(0.0)
