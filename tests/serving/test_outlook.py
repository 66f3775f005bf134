"""Renewal risk and lifetime value in the score table: the champion of a small company."""

from __future__ import annotations

import numpy as np
import pytest
from homes import trained_home

from churnlens.serving import score as scoring
from churnlens.settings import load_settings


def test_the_score_table_carries_renewal_risk_and_value(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    home = trained_home(tmp_path_factory)
    settings = load_settings(home=home)
    bundle = scoring.champion(settings)
    frame, _ = scoring.latest_snapshot(settings)
    table = scoring.score_probabilities(bundle, frame, settings)
    assert set(scoring.table_schema(False).names) <= set(table.columns) | {"drift_flag"}
    p, renewal = table["churn_probability"], table["renewal_risk"]
    days = table["days_to_renewal"]
    inside, beyond = days < 90, days >= 90
    assert inside.any() and beyond.any()
    assert (renewal[inside] <= p[inside] + 1e-12).all()
    known = beyond & renewal.notna()
    assert (renewal[known] >= p[known] - 1e-12).all() and (renewal[known] <= 1).all()
    # one risk drives what a CSM sees: renewal risk wherever it is known
    np.testing.assert_allclose(
        table["risk"], np.where(renewal.notna() & days.notna(), renewal, p))
    # value from MRR: this month is paid, the 12 months at most MRR x 12 with expected growth
    mrr = frame.set_index("account_id")["mrr"].reindex(table["account_id"]).to_numpy()
    assert table["value_basis"].str.startswith("mrr").all()
    uplift = bundle.revenue.uplift() if bundle.revenue is not None else 0.0
    growth = 1 + np.nan_to_num(table["expansion_probability"]) * max(uplift, 0.0)
    assert (table["expected_revenue_12m"] <= 12 * mrr * growth + 1e-6).all()
    assert (table["expected_revenue_12m"] >= mrr - 1e-6).all()
    assert (table["lifetime_value"] > table["expected_revenue_12m"]).all()
    # the settings move it: a 12-month horizon, no discount and half margin
    cheaper = load_settings(home=home, ltv_horizon_months=12, ltv_gross_margin=0.5,
                            ltv_discount_rate=0.0)
    low = scoring.score_probabilities(bundle, frame, cheaper)
    np.testing.assert_allclose(low["lifetime_value"], 0.5 * table["expected_revenue_12m"])
