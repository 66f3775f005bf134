"""Every feature's valid range (``Feature.valid``): declared, or implied by its unit where that
is honest, and a number without one refused when it is declared. What-if answers hold changed
values to these ranges (``serving/whatif.py``); their values against real data are checked in
``test_feature_values.py``."""

from __future__ import annotations

import pytest

from churnlens.features.registry import (
    FAMILIES,
    Feature,
    Vocabulary,
    VocabularyEvent,
    load_all,
    unit_bounds,
)


def test_every_feature_has_a_range_and_every_category_its_levels() -> None:
    events = (VocabularyEvent(event="Add to cart", slug="add_to_cart", sums_quantity=True),)
    declared = list(load_all().values())  # imports the families too
    generated = [f for family in FAMILIES.values() for f in family.expand(Vocabulary(events))]
    features = [*declared, *generated]
    assert generated and len(features) > 80
    for spec in features:
        if spec.kind == "category":
            assert spec.valid is None, spec.name
            continue
        assert isinstance(spec.valid, tuple) and len(spec.valid) == 2, spec.name
        low, high = spec.valid
        assert low is None or high is None or low < high, spec.name
        if spec.kind == "flag":
            assert spec.valid == (0, 1), spec.name


@pytest.mark.parametrize(("name", "valid"), [
    ("seats", (0, None)), ("days_to_renewal", (0, None)), ("last_nps", (0, 10)),
    ("nps_180d", (-100, 100)), ("mean_csat_90d", (1, 5)), ("detractor_share_180d", (0, 1)),
    ("events_per_seat_30d", (0, None)),  # a rate of a count
    ("active_days_30d", (0, 30)), ("active_days_365d", (0, 365)),  # per window, from one
    ("nps_change_180d", (-10, 10)), ("mrr_change_90d", (None, None)),  # changes declare theirs
    ("mrr_change_share_90d", (-1, None)),
])
def test_ranges_follow_the_unit_unless_declared(
        name: str, valid: tuple[float | None, float | None]) -> None:
    assert load_all()[name].valid == valid


def test_a_number_whose_unit_implies_no_range_must_declare_one() -> None:
    assert unit_bounds("score") is None and unit_bounds("events per seat") == (0, None)
    with pytest.raises(TypeError, match="declare valid="):
        Feature(name="vibes", pillar="adoption", role="lever", description="Vibes", unit="score",
                sentence="{value}", source="usage", compute=lambda usage: usage)
    declared = Feature(name="vibes", pillar="adoption", role="lever", description="Vibes",
                       unit="score",
                       sentence="{value}", source="usage", compute=lambda usage: usage,
                       valid=(0, 1))
    assert declared.valid == (0, 1)
    with pytest.raises(ValueError, match="empty"):
        Feature(name="vibes", pillar="adoption", role="lever", description="Vibes", unit="share",
                sentence="{value}", source="usage", compute=lambda usage: usage,
                valid=(1, 0))
