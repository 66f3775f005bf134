"""Every feature says whether it is a lever or context, generated ones through their family."""

from __future__ import annotations

import pytest

from churnlens.features.registry import (
    FAMILIES,
    REGISTRY,
    Vocabulary,
    VocabularyEvent,
    declared,
    feature,
    register_vocabulary,
)


def test_every_declared_feature_and_family_says_lever_or_context() -> None:
    features = declared()
    assert len(features) > 50
    assert {f.role for f in features.values()} == {"lever", "context"}
    assert {t.role for t in FAMILIES.values()} <= {"lever", "context"}
    # what no one moves this week is context: timing, contract, plan, seats bought, firmographics
    for name in ("days_to_renewal", "tenure_days", "billing_period", "plan", "seats", "mrr",
                 "industry", "region", "days_since_first_event"):
        assert features[name].role == "context", name
    # behaviour is a lever: usage, adoption, tickets, NPS, onboarding, spend
    for name in ("seat_utilisation_30d", "features_used_30d", "tickets_90d", "mean_nps_180d",
                 "first_value_reached", "spend_90d", "recency_vs_usual_gap"):
        assert features[name].role == "lever", name
    # a closed window explains a score but no action moves it now
    assert features["active_users_prev_30d"].past and not features["active_users_30d"].past


def test_generated_features_take_their_familys_role() -> None:
    names = register_vocabulary(Vocabulary((VocabularyEvent("Export report", "export_report"),)))
    assert names
    for name in names:
        spec = REGISTRY[name]
        assert spec.generated is not None
        assert spec.role == FAMILIES[spec.generated.family].role


def test_a_declaration_without_a_role_is_refused() -> None:
    with pytest.raises(TypeError, match="role"):
        feature(pillar="adoption", unit="users", sentence="{value}")  # type: ignore[call-arg]
