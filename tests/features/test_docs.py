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


def test_each_windowed_feature_reads_the_window_it_declares() -> None:
    """A window is a value the engine uses: every feature generated per window computes with
    the window its declaration and its name state, and a window the engine does not sum per
    account is refused instead of quietly reading another."""
    import ibis
    import pytest

    from churnlens.features import sources

    load_all()
    generated = [f for f in REGISTRY.values() if "days" in getattr(f.compute, "keywords", {})]
    assert len(generated) >= 10
    for feature in generated:
        days = feature.compute.keywords["days"]  # type: ignore[attr-defined]
        assert feature.window_days == days and f"_{days}d" in feature.name, feature.name
    columns = {f"{m}_{w}": "int64" for m in sources.ACCOUNT_MEASURES
               for w in sources.ACCOUNT_MEASURE_WINDOWS}
    usage = ibis.table({**columns, "last_age": "int64", "first_age_w365": "int64"}, name="u")
    sql = ibis.to_sql(usage.aggregate(events_365d=REGISTRY["events_365d"].compute(usage)))
    assert "events_w365" in sql and "events_w180" not in sql
    with pytest.raises(KeyError, match="no per-account events over w7"):
        sources.account_measure(usage, "events", 7)
    with pytest.raises(KeyError, match="no usage window of 45 days"):
        sources.window_key(45)


def test_no_feature_declares_a_window_its_source_does_not_hold() -> None:
    """A relation holds rows from a bounded look-back (tickets 180 days): a feature declared
    over a longer window would quietly read the shorter one."""
    from churnlens.features.sources import LOOKBACK_DAYS

    load_all()
    checked = 0
    for feature in REGISTRY.values():
        if feature.window_days is None or feature.source not in LOOKBACK_DAYS:
            continue
        reach = feature.window_days * (2 if "_prev_" in feature.name else 1)
        assert reach <= LOOKBACK_DAYS[feature.source], (
            f"{feature.name} reads {reach} days back; {feature.source} holds "
            f"{LOOKBACK_DAYS[feature.source]}")
        checked += 1
    assert checked >= 30
