"""Onboarding: did the account get going in its first 30 days, and how fast did it reach value."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from churnlens.features.expressions import ratio
from churnlens.features.registry import feature

STALLED_BELOW = 0.3
"""Onboarding counts as stalled when fewer than this share of seats acted in the first 30 days."""


@feature(pillar="onboarding", role="lever", past=True, unit="share", higher_is_riskier=False,
         also_needs=("subscriptions",),
         valid=(0, None),  # more users activated than seats bought happens
         sentence="{pct}% of seats activated in the first 30 days")
def seats_activated_share_30d(onboarding: ir.Table) -> ir.Value:
    """Share of the first subscription's seats whose users acted within 30 days of signup."""
    return ratio(onboarding.activated_users, onboarding.seats_at_signup)


@feature(pillar="onboarding", role="lever", past=True, unit="days", higher_is_riskier=True,
         sentence="First key action came {value} days after signup")
def time_to_first_value_days(onboarding: ir.Table) -> ir.Value:
    """Days from signup to the first key action (null until it happens)."""
    return onboarding.first_key_day - onboarding.created_day


@feature(pillar="onboarding", role="lever", unit="flag", kind="flag", higher_is_riskier=False,
         sentence="Reached first value: {yes_no}")
def first_value_reached(onboarding: ir.Table) -> ir.Value:
    """Whether the account has performed a key action yet."""
    return onboarding.first_key_day.notnull().ifelse(1, 0)


@feature(pillar="onboarding", role="lever", unit="flag", kind="flag", higher_is_riskier=True,
         sentence="Onboarding stalled: {yes_no}")
def onboarding_stalled(features: ir.Table) -> ir.Value:
    """Fewer than 30% of seats active in the first 30 days, once those 30 days are over."""
    closed = features.tenure_days >= 30
    stalled = features.seats_activated_share_30d < STALLED_BELOW
    return ibis.ifelse(closed & stalled.fill_null(False), 1, 0)
