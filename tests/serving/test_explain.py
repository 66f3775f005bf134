"""Explanations: SHAP adds up, points share out the calibrated gap, tiers and health."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from churnlens.serving.explain import (
    explain,
    health_score,
    levers_of,
    pillar_points,
    role_points,
    tier,
    top_features,
)
from churnlens.serving.playbooks import PlaybookError, load_playbooks
from churnlens.training.bundle import TargetModel
from churnlens.training.calibration import fit_isotonic, fit_platt

FEATURES = ("seat_utilisation_30d", "tickets_90d", "days_to_renewal", "mean_nps_180d")


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 6000
    x = pd.DataFrame({
        "seat_utilisation_30d": rng.uniform(0, 1.2, n),
        "tickets_90d": rng.poisson(3, n).astype(float),
        "days_to_renewal": rng.integers(0, 365, n).astype(float),
        "mean_nps_180d": np.where(rng.random(n) < 0.3, np.nan, rng.uniform(0, 10, n)),
    })
    logit = -2 - 2.5 * (x.seat_utilisation_30d - 0.6) + 0.2 * x.tickets_90d \
        - 0.004 * x.days_to_renewal
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


@pytest.mark.parametrize("fit_calibrator", [fit_platt, fit_isotonic])
def test_contributions_add_up_and_points_share_out_the_gap(data, fit_calibrator) -> None:  # type: ignore[no-untyped-def]
    x, y = data
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbosity": -1, "seed": 1},
                        lgb.Dataset(x, y), num_boost_round=60)
    model = TargetModel(booster=booster, calibrator=fit_calibrator(booster.predict(x), y))
    explained = explain(model, x)
    # TreeSHAP: contributions plus the base value reproduce the raw score exactly
    raw = booster.predict(x, raw_score=True)
    assert np.allclose(explained.contributions.sum(axis=1) + explained.base_margin, raw,
                       atol=1e-9)
    assert np.allclose(explained.probability, model.probability(x), atol=1e-12)
    # probability points add up to the calibrated probability minus the calibrated base
    gap = (explained.probability - explained.base_probability) * 100
    assert np.allclose(explained.points.sum(axis=1), gap, atol=1e-9)
    # low seat utilisation raises churn: its points are positive where it is lowest
    low = x.seat_utilisation_30d < 0.1
    assert (explained.points[low.to_numpy(), 0] > 0).mean() > 0.9


def test_top_features_are_ordered_by_size() -> None:
    points = np.array([[0.1, -3.0, 2.0, 0.0], [5.0, 0.2, -0.3, 1.0]])
    assert top_features(points, 3).tolist() == [[1, 2, 0], [0, 3, 2]]


def test_pillars_tiers_and_health() -> None:
    points = np.array([[1.0, 2.0, -0.5, 0.25]])
    by_pillar = pillar_points(FEATURES, points)
    assert by_pillar["adoption"][0] == 1.0
    assert by_pillar["support"][0] == 2.0
    assert by_pillar["commercial"][0] == -0.5
    assert by_pillar["satisfaction"][0] == 0.25
    assert tier(np.array([0.3, 0.12, 0.01]), 0.25, 0.10).tolist() == ["high", "medium", "low"]
    # failing pillars are judged on levers: the renewal date (context) adds nothing
    assert pillar_points(FEATURES, points, levers_only=True)["commercial"][0] == 0.0
    assert pillar_points(FEATURES, points, levers_only=True)["support"][0] == 2.0


def test_levers_and_context_share_out_the_gap_and_drivers_are_levers() -> None:
    assert levers_of(FEATURES).tolist() == [True, True, False, True]
    points = np.array([[1.0, 2.0, -9.5, 0.25], [0.0, -1.0, 4.0, 0.5]])
    roles = role_points(FEATURES, points)
    np.testing.assert_allclose(roles["lever"] + roles["context"], points.sum(axis=1))
    assert roles["context"].tolist() == [-9.5, 4.0]
    # the biggest mover is days_to_renewal, but drivers come from levers only
    levers = levers_of(FEATURES)
    assert top_features(points, 2, among=levers).tolist() == [[1, 0], [1, 3]]
    assert top_features(points, 5, among=~levers).tolist() == [[2], [2]]


def test_health_score_is_50_at_the_reference_and_moves_with_every_point_of_risk() -> None:
    grid = np.round(np.arange(0.0, 1.0001, 0.001), 3)
    for reference in (0.005, 0.01, 0.05, 0.2, 0.5):
        health = health_score(grid, reference)
        assert health_score(np.array([reference]), reference)[0] == 50.0
        assert (np.diff(health) <= 0).all()  # lower as the risk is higher
        assert ((health >= 0) & (health <= 100)).all()
        # one percentage point more risk is always a lower health score, even near 0 and 1
        step = 10  # grid points per percentage point
        assert (health[step:] < health[:-step]).all(), reference
        # no saturation: only the ends of [0, 1] reach 0 or 100
        inner = health[(grid >= 0.001) & (grid <= 0.999)]
        assert ((inner > 0) & (inner < 100)).all()
    # the formula: 100 / (1 + sqrt(odds ratio)), a decimal place
    odds = (0.2 / 0.8) / (0.05 / 0.95)
    assert health_score(np.array([0.2]), 0.05)[0] == round(100 / (1 + odds ** 0.5), 1)
    # a pure function of one probability: the same risk reads the same beside any others
    assert health_score(np.array([0.13, 0.9]), 0.05)[0] == health_score(np.array([0.13]),
                                                                         0.05)[0]
    # resolution where the risk is: 13% and 90% no longer both read 0
    assert health_score(np.array([0.13]), 0.05)[0] > health_score(np.array([0.9]), 0.05)[0] + 20


def test_default_playbooks_pick_by_tier_pillar_and_renewal() -> None:
    playbooks = load_playbooks()
    facts = {"tier": "high", "churn_probability": 0.4, "expansion_probability": 0.02,
             "days_to_renewal": 30.0, "tenure_days": 400.0, "failing_pillar": "adoption",
             "pillar_points": "+9.0", "pillar_title": "Adoption", "churn_pct": "40",
             "risk_pct": "35", "expansion_pct": "2"}
    assert playbooks.choose(facts)[0] == "renewal save"
    assert "(35%) with the renewal 30 days away" in playbooks.choose(facts)[1]  # the tier's risk
    assert playbooks.choose({**facts, "days_to_renewal": 200.0})[0] == "adoption push"
    assert playbooks.choose({**facts, "days_to_renewal": 200.0,
                             "failing_pillar": "support"})[0] == "support escalation"
    healthy = {**facts, "tier": "low", "expansion_probability": 0.3, "expansion_pct": "30"}
    assert playbooks.choose(healthy) == (
        "expansion offer", "Healthy account with a 30% chance of expanding within the horizon.")
    assert playbooks.choose({**healthy, "expansion_probability": 0.01})[0] == "monitor"


def test_a_bad_playbook_file_names_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text("rules:\n  - playbook: call them\n    when: {tier: [high], mood: [sad]}\n")
    with pytest.raises(PlaybookError, match=r"rule 1 \(call them\) has unknown conditions"):
        load_playbooks(path)


def test_serve_refuses_a_bad_playbook_file_saying_why(tmp_path: Path) -> None:
    from conftest import churnlens

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: [1, 2]\n")
    result = churnlens(tmp_path / "home", "serve", "--port", "1", check=False,
                       env={"CHURNLENS_PLAYBOOKS": str(rules)}, timeout=60)
    assert result.returncode == 2
    assert "Cannot serve" in result.stderr and "rules.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_relative_tiers_mean_the_same_at_any_base_rate() -> None:
    """High risk is three times the base rate's odds: about 21% at an 8% base rate and 74%
    at 49%, where a fixed 25% would put most accounts in the high tier."""
    from churnlens.serving.explain import tier_thresholds

    high, medium = tier_thresholds("relative", 0.08, 3.0, 1.0, 0.25, 0.10)
    assert abs(high - 0.2069) < 1e-3 and abs(medium - 0.08) < 1e-9
    high, medium = tier_thresholds("relative", 0.49, 3.0, 1.0, 0.25, 0.10)
    assert abs(high - 0.7426) < 1e-3 and abs(medium - 0.49) < 1e-9
    rng = np.random.default_rng(0)
    churn = np.clip(rng.normal(0.49, 0.2, 10_000), 0, 1)
    assert (tier(churn, high, medium) == "high").mean() < 0.15
    assert (tier(churn, 0.25, 0.10) == "high").mean() > 0.85  # the fixed thresholds
    assert tier_thresholds("absolute", 0.49, 3.0, 1.0, 0.25, 0.10) == (0.25, 0.10)
