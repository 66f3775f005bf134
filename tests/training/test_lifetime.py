"""Lifetime value and expected 12-month revenue: hand-computable survival, revenue bases, and
the backtest's realised revenue."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from churnlens.training import lifetime


def _constant(hazard: float, rows: int = 1, periods: int = 3) -> np.ndarray:
    return 1.0 - (1.0 - hazard) ** np.tile(np.arange(1, periods + 1), (rows, 1)).astype(float)


def test_a_constant_hazard_gives_geometric_sums() -> None:
    h, mrr = 0.05, 100.0
    curve = _constant(h)
    year_loss = np.array([1.0 - (1.0 - h) ** 12])
    months = lifetime.survival(curve, year_loss, np.array([np.nan]), np.array([np.nan]), 24)
    np.testing.assert_allclose(months[0], (1.0 - h) ** np.arange(25))
    plain = lifetime.ValueAssumptions(discount_rate=0.0, horizon_months=24, gross_margin=1.0)
    twelve, value = lifetime.values(months, np.array([mrr]), np.ones(1), 3, plain)
    assert twelve[0] == pytest.approx(mrr * (1 - (1 - h) ** 12) / h)
    assert value[0] == pytest.approx(mrr * (1 - (1 - h) ** 24) / h)
    # discounted monthly at 10% a year, and 80% margin: one geometric ratio
    assumptions = lifetime.ValueAssumptions(discount_rate=0.10, horizon_months=24,
                                            gross_margin=0.8)
    ratio = (1 - h) * 1.10 ** (-1 / 12)
    _, discounted = lifetime.values(months, np.array([mrr]), np.ones(1), 3, assumptions)
    assert discounted[0] == pytest.approx(0.8 * mrr * (1 - ratio ** 24) / (1 - ratio))


def test_an_annual_account_is_lost_at_its_renewal_month() -> None:
    """Renewing in eight months with a 30% renewal risk and nothing else: it pays eight months
    for sure and the last four with 70%."""
    months = lifetime.survival(np.zeros((1, 3)), np.array([0.3]), np.array([0.3]),
                               np.array([220.0]), 12)
    np.testing.assert_allclose(months[0, :8], 1.0)
    np.testing.assert_allclose(months[0, 8:], 0.7)
    twelve, _ = lifetime.values(months, np.array([100.0]), np.ones(1), 3,
                                lifetime.ValueAssumptions(horizon_months=12))
    assert twelve[0] == pytest.approx(100.0 * (8 + 4 * 0.7))
    # expected expansion raises revenue from the end of the horizon on
    grown, _ = lifetime.values(months, np.array([100.0]), np.array([1.1]), 3,
                               lifetime.ValueAssumptions(horizon_months=12))
    assert grown[0] == pytest.approx(100.0 * (3 + 1.1 * (5 + 4 * 0.7)))


def test_revenue_from_mrr_else_spend_else_absent_with_a_reason() -> None:
    base, basis = lifetime.monthly_revenue(
        {"mrr": np.array([50.0, np.nan, 0.0]), "spend_90d": np.array([1.0, 900.0, np.nan])}, 3)
    assert base[:2].tolist() == [50.0, 300.0] and np.isnan(base[2])
    assert basis[:2].tolist() == ["mrr", "spend_90d"]
    assert basis[2].startswith("no revenue")
    none, why = lifetime.monthly_revenue({}, 1)
    assert np.isnan(none[0]) and "no money_event" in why[0]
    months = lifetime.survival(np.zeros((1, 3)), np.array([0.1]), np.array([np.nan]),
                               np.array([np.nan]), 12)
    twelve, value = lifetime.values(months, none, np.ones(1), 3, lifetime.ValueAssumptions())
    assert np.isnan(twelve[0]) and np.isnan(value[0])  # absent, never 0


def test_realised_revenue_counts_the_months_an_account_stayed() -> None:
    dates = [date(2024, m, 1) for m in range(1, 13)] + [date(2025, 1, 1)]
    rows = [{"account_id": "stays", "as_of": d, "mrr": 10.0} for d in dates]
    rows += [{"account_id": "leaves", "as_of": d, "mrr": 20.0} for d in dates[:5]]
    frame = pd.DataFrame(rows)
    paid = lifetime.realised_revenue(frame, [date(2024, 1, 1), date(2024, 6, 1)])
    got = {(r.account_id, str(r.as_of)): r.realised for r in paid.itertuples()}
    assert got == {("stays", "2024-01-01"): 120.0, ("leaves", "2024-01-01"): 100.0}
    figures = lifetime.backtest_figures(np.array([110.0, 110.0]), np.array([120.0, 100.0]),
                                        np.array([120.0, 240.0]),
                                        np.array(["2024-01-01"] * 2))
    assert figures["total_error_share"] == pytest.approx(0.0)
    assert figures["per_account_wape"] == pytest.approx(20.0 / 220.0)
    assert figures["naive"]["total_error_share"] == pytest.approx(140.0 / 220.0)
