"""One risk drives what a CSM sees: tier, health and the portfolio order read ``risk`` (renewal
risk where there is a renewal date), each against the reference of its own scale, while the
90-day probability stays in every row for the forecast and the KPIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from homes import champion_inputs

from churnlens.features.registry import REGISTRY, load_all
from churnlens.serving import score as scoring
from churnlens.settings import Settings
from churnlens.training.bundle import Bundle

Scored = tuple[Settings, Bundle, pd.DataFrame, pd.DataFrame]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    settings, bundle, frame = champion_inputs(tmp_path_factory)
    return settings, bundle, frame, scoring.score_probabilities(bundle, frame, settings)


def test_health_is_50_at_the_reference_of_each_risks_scale(scored: Scored) -> None:
    settings, bundle, _, table = scored
    stored = bundle.manifest["renewal_rate"]  # frozen by training, not read off the portfolio
    assert 0 < stored < 1 and scoring.renewal_rate(bundle) == stored
    references = np.array([stored, scoring.average_rate(bundle)])
    health = scoring.risk_health(bundle, references, np.array(["renewal", "horizon"]))
    assert health.tolist() == [50.0, 50.0]
    # every row's tier and health are those of its risk, not of its 90-day probability
    risk, basis = table["risk"].to_numpy(), table["risk_basis"].to_numpy()
    assert (table["health_score"].to_numpy() == scoring.risk_health(bundle, risk, basis)).all()
    assert (table["tier"].to_numpy() == scoring.risk_tiers(bundle, settings, risk, basis)).all()
    assert (table["risk"] != table["churn_probability"]).any()
    assert table["churn_probability"].notna().all()


def test_usage_collapsed_eight_months_before_renewal_is_flagged_now(scored: Scored) -> None:
    settings, bundle, frame, before = scored
    load_all()
    days = pd.to_numeric(frame["days_to_renewal"], errors="coerce").to_numpy()
    far = np.flatnonzero((days >= 210) & (days <= 270))
    assert len(far), "the trained home has no account renewing in about eight months"
    row = int(far[np.argmin(before["risk"].to_numpy()[far])])  # the healthiest of them
    idle = int(np.argmax(frame["days_since_last_activity"].fillna(0).to_numpy()))
    usage = [f for f in bundle.space.features
             if REGISTRY[f].pillar == "adoption" and REGISTRY[f].is_lever]
    collapsed = frame.copy()
    collapsed.loc[row, usage] = frame.loc[idle, usage].to_numpy()  # the idlest account's usage
    after = scoring.sort_riskiest(scoring.score_probabilities(bundle, collapsed, settings))
    mine = after.index[after["account_id"] == frame.loc[row, "account_id"]][0]
    account = after.loc[mine]
    assert account["risk_basis"] == "renewal"
    assert account["risk"] > before.loc[row, "risk"]
    assert account["health_score"] < min(50.0, before.loc[row, "health_score"])
    assert account["tier"] != "low"
    # the 90-day probability barely sees it (no renewal within the horizon); the order does
    by_horizon = int((after["churn_probability"] > account["churn_probability"]).sum())
    assert mine < len(after) / 2 <= by_horizon
