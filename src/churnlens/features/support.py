"""Support: how much help the account needs, how bad it is, and how it felt about the answers."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from churnlens.features.expressions import ratio
from churnlens.features.registry import feature


@feature(pillar="support", role="lever", unit="tickets", window_days=30, higher_is_riskier=True,
         fill=0, sentence="{value} support tickets in the last 30 days")
def tickets_30d(tickets: ir.Table) -> ir.Value:
    """Tickets opened in the 30 days before as_of."""
    return (tickets.age <= 30).sum()


@feature(pillar="support", role="lever", unit="tickets", window_days=90, higher_is_riskier=True,
         fill=0, sentence="{value} support tickets in the last 90 days")
def tickets_90d(tickets: ir.Table) -> ir.Value:
    """Tickets opened in the 90 days before as_of."""
    return (tickets.age <= 90).sum()


@feature(pillar="support", role="lever", past=True, unit="tickets", window_days=90,
         higher_is_riskier=True, fill=0,
         sentence="{value} tickets in the 90 days before the last 90")
def tickets_prev_90d(tickets: ir.Table) -> ir.Value:
    """Tickets opened 91 to 180 days before as_of."""
    return (tickets.age > 90).sum()


@feature(pillar="support", role="lever", unit="tickets", window_days=90, higher_is_riskier=True,
         fill=0, sentence="{value} high or urgent tickets in the last 90 days")
def high_urgent_tickets_90d(tickets: ir.Table) -> ir.Value:
    """High- or urgent-priority tickets opened in the last 90 days."""
    return tickets.severe.sum(where=tickets.age <= 90)


@feature(pillar="support", role="lever", unit="tickets", higher_is_riskier=True, fill=0,
         sentence="{value} tickets still open")
def open_tickets(tickets: ir.Table) -> ir.Value:
    """Tickets opened in the last 180 days and not resolved by as_of."""
    return tickets.open.sum()


@feature(pillar="support", role="lever", unit="hours", window_days=90, higher_is_riskier=True,
         sentence="Median resolution time of {value} hours over the last 90 days")
def median_resolution_hours_90d(tickets: ir.Table) -> ir.Value:
    """Median hours to resolve the tickets of the last 90 days that were resolved by as_of."""
    # the window as a null-out, not median(where=): Spark's percentile refuses a filtered one
    recent = ibis.ifelse(tickets.age <= 90, tickets.resolution_hours, ibis.null("float64"))
    return recent.median()


@feature(pillar="support", role="lever", unit="CSAT (1-5)", window_days=90, higher_is_riskier=False,
         sentence="Support satisfaction (CSAT) of {value} out of 5 over the last 90 days")
def mean_csat_90d(tickets: ir.Table) -> ir.Value:
    """Mean CSAT of tickets from the last 90 days rated by as_of."""
    return tickets.csat.mean(where=tickets.age <= 90)


@feature(pillar="support", role="lever", unit="tickets", window_days=90, higher_is_riskier=True,
         fill=0, sentence="{value} tickets rated 1 or 2 for satisfaction in the last 90 days")
def low_csat_tickets_90d(tickets: ir.Table) -> ir.Value:
    """Tickets of the last 90 days rated 1 or 2 by as_of."""
    return ((tickets.csat <= 2) & (tickets.age <= 90)).sum()


@feature(pillar="support", role="lever", unit="tickets", window_days=90, higher_is_riskier=True,
         fill=0, sentence="{value} repeat tickets on the same topic in the last 90 days")
def repeat_category_tickets_90d(tickets: ir.Table) -> ir.Value:
    """Tickets of the last 90 days beyond the first in their category (the same problem again)."""
    # a ticket without a category is no repeat of anything: count categorised tickets only
    recent = (tickets.age <= 90) & tickets.category.notnull()
    return recent.sum() - tickets.category.nunique(where=recent)


@feature(pillar="support", role="lever", unit="days", higher_is_riskier=False,
         sentence="Last support ticket {value} days ago")
def days_since_last_ticket(tickets: ir.Table) -> ir.Value:
    """Days since the last ticket was opened (null when none in 180 days)."""
    return tickets.age.min()


@feature(pillar="support", role="lever", unit="tickets per 10 seats", window_days=90,
         higher_is_riskier=True, sentence="{value} tickets per 10 seats in the last 90 days")
def tickets_per_10_seats_90d(features: ir.Table) -> ir.Value:
    """Tickets in the last 90 days per 10 paid seats."""
    return ratio(features.tickets_90d * 10, features.seats)


@feature(pillar="support", role="lever", unit="tickets", window_days=90, higher_is_riskier=True,
         valid=(None, None),  # a change: fewer tickets is negative
         sentence="Tickets {direction} by {abs} versus the previous 90 days")
def tickets_change_90d(features: ir.Table) -> ir.Value:
    """Change in tickets opened versus the 90 days before."""
    return features.tickets_90d - features.tickets_prev_90d
