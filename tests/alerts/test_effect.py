"""The playbook effect estimate: published values, edges, and coverage on simulated firings."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from churnlens.alerts.effect import (
    MIN_RESOLVED_PER_ARM,
    ArmCounts,
    Firing,
    count_firings,
    effect_table,
    estimate_effect,
    estimate_effects,
    newcombe_interval,
    wilson_interval,
)

DRAWS = 2_000


def arm(rule: str, treated: bool, churned: int, resolved: int, pending: int = 0) -> list[Firing]:
    """One arm's firings of a rule: ``churned`` of ``resolved`` churned, ``pending`` unknown."""
    return ([Firing(rule, treated, True)] * churned
            + [Firing(rule, treated, False)] * (resolved - churned)
            + [Firing(rule, treated, None)] * pending)


def render(table: object) -> str:
    """The table as a terminal of 300 columns shows it, as plain text."""
    console = Console(record=True, width=300)
    console.print(table)
    return console.export_text()


# --------------------------------------------------------------------------- the interval


@pytest.mark.parametrize(("counts", "expected"), [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 10, 10), (-1.0, -0.6075)),
    ((10, 10, 0, 20), (0.6791, 1.0)),
])
def test_newcombe_matches_his_published_examples(counts: tuple[int, int, int, int],
                                                 expected: tuple[float, float]) -> None:
    """Method 10 of Newcombe (1998), Table II: the interval is the one his paper defines."""
    low, high = newcombe_interval(*counts)
    assert (float(low), float(high)) == pytest.approx(expected, abs=5e-5)


def test_wilson_keeps_a_width_at_zero_and_all_and_is_nan_with_nothing_resolved() -> None:
    low, high = wilson_interval([0, 20, 0], [20, 20, 0])
    assert low[0] == 0 and 0.1 < high[0] < 0.2
    assert 0.8 < low[1] < 0.9 and high[1] == 1
    assert np.isnan(low[2]) and np.isnan(high[2])


def test_confidence_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="confidence"):
        newcombe_interval(1, 20, 2, 20, confidence=1.0)
    with pytest.raises(ValueError, match="confidence"):
        estimate_effect("r", ArmCounts(20, 1), ArmCounts(20, 2), confidence=0)


# --------------------------------------------------------------------------- counting firings


def test_firings_count_into_arms_with_unknown_outcomes_pending_not_survived() -> None:
    firings = arm("renewal", True, 3, 10, pending=4) + arm("renewal", False, 2, 5, pending=1)
    assert count_firings(firings) == {"renewal": (ArmCounts(10, 3, 4), ArmCounts(5, 2, 1))}


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="more churned"):
        ArmCounts(resolved=3, churned=4)
    with pytest.raises(ValueError, match="negative"):
        ArmCounts(resolved=3, churned=1, pending=-1)
    with pytest.raises(ValueError, match="min_resolved"):
        estimate_effect("r", ArmCounts(20, 1), ArmCounts(20, 2), min_resolved=0)


# --------------------------------------------------------------------------- the edges


def test_no_firings_gives_no_rows_and_a_listed_rule_says_so() -> None:
    assert estimate_effects([]) == []
    (effect,) = estimate_effects([], rules=["health_drop"])
    assert effect.status == "not_enough_data"
    assert effect.reason == "no firings yet"
    assert effect.difference is effect.low is effect.high is None
    assert effect.verdict == "not enough data yet"


def test_a_rule_without_control_firings_has_no_estimate_and_says_why() -> None:
    (effect,) = estimate_effects(arm("high_tier", True, 30, 100))
    assert effect.status == "not_enough_data"
    assert effect.reason == "no firing held out as control"
    assert effect.difference is None
    assert effect.treated == ArmCounts(100, 30)


def test_a_thin_arm_names_its_count_the_minimum_and_what_is_still_pending() -> None:
    firings = arm("nps", True, 10, 40) + arm("nps", False, 2, 12, pending=9)
    (effect,) = estimate_effects(firings)
    assert effect.status == "not_enough_data"
    assert effect.reason == (f"control has 12 resolved firings of the {MIN_RESOLVED_PER_ARM} "
                             "needed (9 more once their horizon passes)")


def test_before_any_horizon_passes_there_is_no_estimate() -> None:
    firings = arm("renewal", True, 0, 0, pending=50) + arm("renewal", False, 0, 0, pending=30)
    (effect,) = estimate_effects(firings)
    assert effect.status == "not_enough_data"
    assert effect.reason == "the horizon has not passed for any of its 80 firings yet"


def test_pending_firings_do_not_count_as_retained() -> None:
    """Reading unknown outcomes as "no churn" would halve the treated rate here."""
    firings = (arm("drop", True, 10, 25, pending=25) + arm("drop", False, 10, 25))
    (effect,) = estimate_effects(firings)
    assert effect.status == "estimated"
    assert effect.treated.churn_rate == effect.control.churn_rate == 0.4
    assert effect.difference == 0


def test_all_churned_in_both_arms_gives_zero_with_an_honest_width() -> None:
    """Wald would give [0, 0] here: certainty from fifty accounts."""
    effect = estimate_effect("stalled", ArmCounts(25, 25), ArmCounts(25, 25))
    assert effect.status == "estimated"
    assert effect.difference == 0
    assert effect.low is not None and effect.high is not None
    assert -0.2 < effect.low < 0 < effect.high < 0.2
    assert effect.verdict == "no clear difference"


def test_all_treated_churned_and_no_control_did_stays_inside_minus_one_one() -> None:
    effect = estimate_effect("spike", ArmCounts(25, 25), ArmCounts(25, 0))
    assert effect.difference == 1
    assert effect.low is not None and 0.7 < effect.low < 1
    assert effect.high == 1
    assert effect.verdict == "higher churn with a task"


def test_difference_is_treated_minus_control_so_a_working_playbook_reads_negative() -> None:
    firings = arm("renewal", True, 10, 100) + arm("renewal", False, 30, 100)
    (effect,) = estimate_effects(firings, min_resolved=20)
    assert effect.difference == pytest.approx(-0.20)
    assert effect.high is not None and effect.high < 0
    assert effect.verdict == "lower churn with a task"


# --------------------------------------------------------------------------- the report


def test_report_shows_numbers_for_estimates_and_reasons_for_the_rest() -> None:
    firings = (arm("renewal", True, 10, 100) + arm("renewal", False, 30, 100)
               + arm("nps_[detractor]", True, 3, 10, pending=5))
    text = render(effect_table(estimate_effects(firings, rules=["expansion"])))
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    assert "10.0%" in rows["renewal"] and "30.0%" in rows["renewal"]
    assert "-20.0" in rows["renewal"] and "[-30.6, -9.0]" in rows["renewal"]
    assert "lower churn with a task" in rows["renewal"]
    assert "not enough data yet: no firings yet" in rows["expansion"]
    assert (f"not enough data yet: treated has 10 resolved firings of the {MIN_RESOLVED_PER_ARM} "
            "needed (5 more once their horizon passes); no firing held out as control"
            ) in rows["nps_[detractor]"]
    assert "95% interval" in text


def test_report_refuses_rows_of_different_confidence_under_one_header() -> None:
    effects = [estimate_effect("a", ArmCounts(20, 1), ArmCounts(20, 2)),
               estimate_effect("b", ArmCounts(20, 1), ArmCounts(20, 2), confidence=0.9)]
    with pytest.raises(ValueError, match="one confidence level"):
        effect_table(effects)


# --------------------------------------------------------------------------- coverage


def simulate(seed: int, base: float, effect: float, firings: int, holdout: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Churned and resolved counts per arm over DRAWS repetitions of one rule's firings.

    Each firing is held out with probability ``holdout``, as the rules do; a control account
    churns with probability ``base`` and a treated one with ``base + effect``: the planted effect
    of being treated, by firing.
    """
    rng = np.random.default_rng(seed)
    treated = rng.random((DRAWS, firings)) >= holdout
    churned = rng.random((DRAWS, firings)) < np.where(treated, base + effect, base)
    resolved_treated = treated.sum(axis=1)
    return ((churned & treated).sum(axis=1), resolved_treated,
            (churned & ~treated).sum(axis=1), firings - resolved_treated)


# Exact coverage of these settings, enumerated over every assignment and outcome (conditional on
# both arms reaching the minimum): 0.950, 0.952, 0.949, 0.950, 0.951, 0.957 at 95%; 0.900 and
# 0.896 at 90%. Over 2,000 draws the simulated rate has a standard error near 0.005, so ±0.02 is
# four. The textbook Wald interval covers the 5%-after-a-task setting 0.925 and fails it; rarer
# churn still (5% against 2%) gives Newcombe 0.964: conservative, as Wilson-based intervals are.
@pytest.mark.parametrize(("base", "effect", "firings", "holdout", "confidence"), [
    (0.30, -0.10, 400, 0.2, 0.95),  # a typical rule: 20% held out
    (0.10, -0.05, 600, 0.5, 0.95),  # rare churn
    (0.40, -0.15, 60, 0.5, 0.95),   # small arms, about 30 each
    (0.25, 0.00, 50, 0.5, 0.95),    # small arms, a playbook that does nothing
    (0.20, 0.10, 100, 0.3, 0.95),   # a playbook that hurts
    (0.15, -0.10, 120, 0.3, 0.95),  # 5% churn after a task, about 36 held out
    (0.30, -0.10, 400, 0.2, 0.90),
    (0.40, -0.15, 60, 0.5, 0.90),
])
def test_interval_covers_the_planted_effect_at_its_nominal_rate(
        base: float, effect: float, firings: int, holdout: float, confidence: float) -> None:
    churned_t, resolved_t, churned_c, resolved_c = simulate(
        int(firings * 1000 + base * 100), base, effect, firings, holdout)
    low, high = newcombe_interval(churned_t, resolved_t, churned_c, resolved_c, confidence)
    # the report shows an interval only where both arms reach the minimum
    shown = (resolved_t >= MIN_RESOLVED_PER_ARM) & (resolved_c >= MIN_RESOLVED_PER_ARM)
    assert shown.sum() > 0.8 * DRAWS
    coverage = ((low <= effect) & (effect <= high))[shown].mean()
    assert confidence - 0.02 <= coverage <= confidence + 0.02


def test_each_draw_through_the_report_path_gives_the_vectorised_interval() -> None:
    """The coverage above is the report's own interval, not a twin of it."""
    churned_t, resolved_t, churned_c, resolved_c = simulate(7, 0.4, -0.15, 60, 0.5)
    low, high = newcombe_interval(churned_t, resolved_t, churned_c, resolved_c)
    for i in range(20):
        firings = (arm("r", True, int(churned_t[i]), int(resolved_t[i]))
                   + arm("r", False, int(churned_c[i]), int(resolved_c[i])))
        (one,) = estimate_effects(firings, min_resolved=1)
        assert (one.low, one.high) == pytest.approx((low[i], high[i]), abs=1e-12)
        assert one.difference == pytest.approx(
            churned_t[i] / resolved_t[i] - churned_c[i] / resolved_c[i])


@pytest.mark.parametrize("effect", [-0.08, 0.08])
def test_point_estimate_has_the_sign_of_the_planted_effect(effect: float) -> None:
    """At 1,000 firings an arm, a planted ±8 points is four standard errors from zero."""
    churned_t, resolved_t, churned_c, resolved_c = simulate(11, 0.30, effect, 2_000, 0.5)
    estimate = churned_t / resolved_t - churned_c / resolved_c
    assert (np.sign(estimate) == np.sign(effect)).mean() >= 0.995
    assert estimate.mean() == pytest.approx(effect, abs=0.002)
    low, high = newcombe_interval(churned_t, resolved_t, churned_c, resolved_c)
    excludes_zero_on_its_side = high < 0 if effect < 0 else low > 0
    assert excludes_zero_on_its_side.mean() >= 0.9

