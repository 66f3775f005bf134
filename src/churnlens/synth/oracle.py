"""The oracle: each active account's true 90-day churn and expansion probability.

At the start of a month the simulation's state holds everything that will decide the next 90
days except the dice. The oracle rolls the same dynamics forward ``copies`` times. Churn is
integrated rather than sampled (a path's chance to survive is the product of one minus each
renewal's hazard), and so is the first expansion (on futures where no expansion has happened
yet), which gives exact probabilities for the first month and low-variance ones after it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from churnlens.synth.dynamics import (
    AccountState,
    MonthContext,
    apply_billing_day,
    draw_observed,
    drift_health,
    hazards,
    regular_exposure,
    remember,
)

HORIZON_DAYS = 90
LOOKAHEAD_MONTHS = 4
"""A 90-day window from a month start can reach the first billing days of the fourth month."""


def true_probabilities(
    state: AccountState,
    month: int,
    in_window: Callable[[int, np.ndarray], np.ndarray],
    contexts: list[MonthContext],
    copies: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """P(churn) and P(expansion) within 90 days of the start of ``month``, per account.

    ``in_window(k, billing_day)`` says whether month ``month + k``'s billing day falls inside
    the window. ``state`` holds this month's health and the histories through last month.
    """
    n = len(state.seats)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    with_expansion = state.tile(copies)
    no_expansion = state.tile(copies)
    survival = np.ones(n * copies)
    survival_no_expansion = np.ones(n * copies)
    p_expand = np.zeros(n * copies)
    billing_day = with_expansion.billing_day

    for k in range(LOOKAHEAD_MONTHS):
        current = month + k
        window = in_window(k, billing_day)

        hz = hazards(with_expansion, current)
        survival *= 1.0 - hz.churn * window
        apply_billing_day(with_expansion, hz, rng)

        hz = hazards(no_expansion, current)
        stays = 1.0 - hz.churn * window
        p_expand += survival_no_expansion * stays * hz.expand * window
        survival_no_expansion *= stays * (1.0 - hz.expand * window)
        apply_billing_day(no_expansion, hz, rng, allow_expansion=False)

        if k == LOOKAHEAD_MONTHS - 1:
            break
        for future in (with_expansion, no_expansion):
            presence = np.ones(len(future.seats))
            observed = draw_observed(future, contexts[current], regular_exposure(future, current),
                                     presence, rng)
            remember(future, observed)
            drift_health(future, rng)

    p_churn = 1.0 - survival.reshape(n, copies).mean(axis=1)
    return p_churn, p_expand.reshape(n, copies).mean(axis=1)
