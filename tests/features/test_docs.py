"""The feature catalogue in docs/ is the registry's own output, never a stale copy."""

from __future__ import annotations

from pathlib import Path

from churnlens.features.docs import catalogue
from churnlens.features.registry import REGISTRY, load_all


def test_docs_match_the_registry() -> None:
    path = Path(__file__).parents[2] / "docs" / "features.md"
    assert path.read_text() == catalogue(), "regenerate: python -m churnlens.features.docs"


def test_every_feature_is_fully_declared() -> None:
    load_all()
    assert len(REGISTRY) >= 40
    for feature in REGISTRY.values():
        assert feature.description and feature.unit and feature.sentence, feature.name
        assert feature.needs or feature.inputs, feature.name
        sentence = feature.explain("x" if feature.kind == "category" else 0.5)
        assert "{" not in sentence, feature.name


def test_sentences_read_like_a_csm_would_say_them() -> None:
    load_all()
    assert REGISTRY["active_users_change_30d"].explain(-4) == (
        "Active users down by 4 versus the previous 30 days")
    assert REGISTRY["seat_utilisation_30d"].explain(0.42) == (
        "42% of paid seats active in the last 30 days")
    assert REGISTRY["mean_csat_90d"].explain(None) == "Mean CSAT of tickets from the last 90 days "\
        "rated by as_of: no data."
