"""Satisfaction: what the account's people say when asked (NPS)."""

from __future__ import annotations

import ibis.expr.types as ir

from churnlens.features.expressions import ratio
from churnlens.features.registry import feature


def _share(condition: ir.BooleanValue, window: ir.BooleanValue) -> ir.Value:
    return ratio((condition & window).sum(), window.sum())


@feature(pillar="satisfaction", role="lever", unit="NPS (0-10)", higher_is_riskier=False,
         sentence="Last NPS answer: {value} out of 10")
def last_nps(surveys: ir.Table) -> ir.Value:
    """Score of the most recent NPS answer in the 365 days before as_of.

    Two answers given at the same moment: the one with the greater ``response_id``.
    """
    return surveys.score.argmax(surveys.answer_order)


@feature(pillar="satisfaction", role="lever", unit="NPS (0-10)", window_days=180,
         higher_is_riskier=False, sentence="Mean NPS answer of {value} over the last 180 days")
def mean_nps_180d(surveys: ir.Table) -> ir.Value:
    """Mean NPS score of the answers in the last 180 days."""
    # float first: PostgreSQL's avg of an integer is a decimal
    return surveys.score.cast("float64").mean(where=surveys.age <= 180)


@feature(pillar="satisfaction", role="lever", past=True, unit="NPS (0-10)", window_days=180,
         higher_is_riskier=False, sentence="Mean NPS answer of {value} in the 180 days before that")
def mean_nps_prev_180d(surveys: ir.Table) -> ir.Value:
    """Mean NPS score of the answers 181 to 365 days before as_of."""
    return surveys.score.cast("float64").mean(where=surveys.age > 180)


@feature(pillar="satisfaction", role="lever", unit="answers", window_days=180,
         higher_is_riskier=False, fill=0, sentence="{value} NPS answers in the last 180 days")
def nps_responses_180d(surveys: ir.Table) -> ir.Value:
    """NPS answers given in the last 180 days."""
    return (surveys.age <= 180).sum()


@feature(pillar="satisfaction", role="lever", unit="share", window_days=180, higher_is_riskier=True,
         sentence="{pct}% of NPS answers in the last 180 days were detractors (0-6)")
def detractor_share_180d(surveys: ir.Table) -> ir.Value:
    """Share of the last 180 days' answers scoring 0 to 6."""
    return _share(surveys.score <= 6, surveys.age <= 180)


@feature(pillar="satisfaction", role="lever", unit="share", window_days=180,
         higher_is_riskier=False,
         sentence="{pct}% of NPS answers in the last 180 days were promoters (9-10)")
def promoter_share_180d(surveys: ir.Table) -> ir.Value:
    """Share of the last 180 days' answers scoring 9 or 10."""
    return _share(surveys.score >= 9, surveys.age <= 180)


@feature(pillar="satisfaction", role="lever", unit="days", higher_is_riskier=True,
         sentence="Last NPS answer {value} days ago")
def days_since_last_nps(surveys: ir.Table) -> ir.Value:
    """Days since the last NPS answer (null when none in 365 days)."""
    return surveys.age.min()


@feature(pillar="satisfaction", role="lever", unit="NPS points", window_days=180,
         higher_is_riskier=False, sentence="Net Promoter Score of {value} over the last 180 days")
def nps_180d(features: ir.Table) -> ir.Value:
    """Promoters minus detractors, in percent of the last 180 days' answers."""
    return (features.promoter_share_180d - features.detractor_share_180d) * 100.0


@feature(pillar="satisfaction", role="lever", unit="NPS (0-10)", window_days=180,
         higher_is_riskier=False,
         valid=(-10, 10),  # the change of a mean on the 0-10 scale
         sentence="Mean NPS answer {direction} by {abs} versus the 180 days before")
def nps_change_180d(features: ir.Table) -> ir.Value:
    """Mean NPS of the last 180 days minus that of the 180 days before."""
    return features.mean_nps_180d - features.mean_nps_prev_180d


@feature(pillar="satisfaction", role="lever", unit="answers per seat", window_days=180,
         higher_is_riskier=False, sentence="{value} NPS answers per seat in the last 180 days")
def nps_response_rate_180d(features: ir.Table) -> ir.Value:
    """NPS answers in the last 180 days per paid seat (how engaged people are with surveys)."""
    return ratio(features.nps_responses_180d, features.seats)
