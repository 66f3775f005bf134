"""The event vocabulary: which event types a build expands its families over, how they are
named, how the rollup counts them, and that the store rebuilds when the top set changes.

Values per event type on the hand-computed company are in ``test_feature_values.py``; the
leakage property test runs the generated columns with the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from churnlens.features.pipeline import build_features, read_snapshots
from churnlens.features.registry import (
    FAMILIES,
    REGISTRY,
    VOCABULARY_SIZE,
    choose_vocabulary,
    load_all,
    register_vocabulary,
    slug_of,
)
from churnlens.features.snapshots import SnapshotSpec, plan, snapshot_table
from churnlens.features.store import read_manifest
from churnlens.raw.loader import open_source
from churnlens.raw.mapping import Mapping
from churnlens.raw.validation import History, validate_history
from conftest import write_tables

T = date(2024, 3, 1)
NOW = datetime(2024, 12, 31)
ONLY_USAGE = ("accounts", "usage_events")


def test_slugs_are_column_safe_and_deterministic() -> None:
    assert slug_of("Add to cart") == "add_to_cart"
    assert slug_of("  Checkout/Complete!! ") == "checkout_complete"
    assert slug_of("???") == "event"
    assert slug_of("é" * 3 + "x" * 60) == "x" * 40
    per_event = {"Add to cart": (9, True), "add-to-cart": (9, False), "view": (20, False),
                 "add_to_cart": (3, True), "rare": (1, True), "rarer": (1, True)}
    vocabulary = choose_vocabulary(per_event, money_event=None)
    again = choose_vocabulary(dict(reversed(list(per_event.items()))), money_event=None)
    assert vocabulary == again, "the order the counts were read in must not matter"
    slugs = {e.event: e.slug for e in vocabulary.events}
    # top five by count, the tie at 1 broken by name ("rare" < "rarer")
    assert set(slugs) == {"view", "Add to cart", "add-to-cart", "add_to_cart", "rare"}
    assert list(slugs) == sorted(slugs), "name order: columns stay put when ranks swap"
    assert len(set(slugs.values())) == VOCABULARY_SIZE, "slugs collide"
    assert all(s.replace("_", "").isalnum() and s == s.lower() for s in slugs.values())
    # the three spellings of one slug each carry a tag of their own name
    assert slugs["view"] == "view" and slugs["rare"] == "rare"
    tagged = [slugs["Add to cart"], slugs["add-to-cart"], slugs["add_to_cart"]]
    assert all(s.startswith("add_to_cart_") and len(s) == len("add_to_cart_") + 8
               for s in tagged)
    # a name's slug depends on what it collides with, not on which other names are chosen
    alone = choose_vocabulary({"Add to cart": (9, True), "add-to-cart": (9, True)}, None)
    assert alone.events[0].slug == slugs["Add to cart"]


@pytest.fixture
def registry_kept() -> Iterator[None]:
    """The registry as it was before the test: what it generates stays in it."""
    before = dict(load_all())
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


@pytest.mark.usefixtures("registry_kept")
def test_generated_features_take_the_template_and_skip_money_quantities() -> None:
    vocabulary = choose_vocabulary({"order": (10, True), "page {view}": (50, False),
                                    "items": (20, True)}, money_event="order")
    names = register_vocabulary(vocabulary)
    assert set(names) == {"events_90d__page_view", "events_90d__items", "events_90d__order",
                          "events_365d__page_view", "events_365d__items",
                          "events_365d__order", "quantity_90d__items"}
    counted = REGISTRY["events_90d__page_view"]
    template = FAMILIES["events_of_type"]
    assert (counted.pillar, counted.unit, counted.window_days) == (template.pillar,
                                                                   template.unit, 90)
    assert counted.explain(3) == "3 'page {view}' events in the last 90 days"
    assert REGISTRY["quantity_90d__items"].explain(12.5) == (
        "12.5 in quantity of 'items' in the last 90 days")


def _company(events: list[tuple[str, str, int, float]]) -> dict[str, list[dict[str, Any]]]:
    """Accounts a and b; ``events`` as (account, event, days before T, quantity)."""
    accounts = [{"account_id": a, "name": a, "created_at": datetime(2023, 1, 1),
                 "industry": None, "region": None, "csm": None} for a in ("a", "b")]
    rows = [{"account_id": account, "user_id": f"{account}-u", "event": event,
             "event_ts": datetime.combine(T - timedelta(days=age), datetime.min.time())
             + timedelta(hours=12), "quantity": quantity}
            for account, event, age, quantity in events]
    return {"accounts": accounts, "usage_events": rows}


def _history(folder: Path, tables: dict[str, list[dict[str, Any]]]) -> History:
    return validate_history(open_source(write_tables(folder, tables), Mapping(),
                                        required=ONLY_USAGE),
                            now=NOW, strict=True, required=ONLY_USAGE)


SPEC = SnapshotSpec(churn_definition="inactivity", inactivity_days=400,
                    history_end=date(2024, 7, 1))


def test_colliding_event_names_are_counted_apart(tmp_path: Path) -> None:
    tables = _company([("a", "Add to cart", 5, 2.0), ("a", "Add to cart", 6, 3.0),
                       ("a", "add-to-cart", 7, 1.0), ("b", "add-to-cart", 100, 1.0),
                       ("b", "add-to-cart", 400, 1.0), ("a", "Add to cart", 0, 9.0)])
    history = _history(tmp_path / "raw", tables)
    snapshot_plan = plan(history.tables, SPEC, dates=[T])
    slugs = {e.event: e.slug for e in snapshot_plan.vocabulary.events}
    assert slugs["Add to cart"] != slugs["add-to-cart"]
    out = snapshot_table(history.tables, history.backend, SPEC, snapshot_plan).execute()
    out = out.set_index("account_id")
    cart, dash = slugs["Add to cart"], slugs["add-to-cart"]
    assert out.loc["a", f"events_90d__{cart}"] == 2  # the one on T is not seen
    assert out.loc["a", f"events_90d__{dash}"] == 1
    assert out.loc["b", f"events_90d__{dash}"] == 0 and out.loc["b", f"events_365d__{dash}"] == 1
    assert out.loc["a", f"quantity_90d__{cart}"] == 5.0
    assert f"quantity_90d__{dash}" not in out.columns, "add-to-cart's quantity is always 1"
    assert out.loc["a", "events_90d__" + cart] + out.loc["a", "events_90d__" + dash] == \
        out.loc["a", "events_180d"]


def test_a_new_top_set_rebuilds_the_store_and_is_recorded(tmp_path: Path) -> None:
    base = [("a", f"e{i}", 10 + i, 1.0) for i in range(VOCABULARY_SIZE) for _ in range(3)]
    history = _history(tmp_path / "raw1", _company(base))
    root = tmp_path / "features"
    first = build_features(history, SPEC, root)
    manifest = read_manifest(root)
    assert manifest is not None
    assert [e["event"] for e in manifest["vocabulary"]] == [f"e{i}" for i in range(5)]
    assert first.report["generated_features"] == list(first.plan.generated)
    assert "events_90d__e4" in manifest["features"]
    # a new event type outnumbers e4: an incremental build keeps the store's vocabulary (a
    # model trained on its columns must still find them) ...
    newcomer = _history(tmp_path / "raw3", _company([*base, *[("b", "zz", 20, 1.0)] * 4]))
    kept = build_features(newcomer, SPEC, root)
    assert "events_90d__e4" in kept.plan.features and "events_90d__zz" not in kept.plan.features
    assert [e["event"] for e in read_manifest(root)["vocabulary"]] == [  # type: ignore[index]
        f"e{i}" for i in range(5)]
    # ... and so does --full; --refresh-vocabulary chooses it again: every snapshot rebuilt,
    # with the new columns
    assert "events_90d__zz" not in build_features(newcomer, SPEC, root, full=True).plan.features
    rebuilt = build_features(newcomer, SPEC, root, refresh_vocabulary=True)
    assert not rebuilt.reused
    manifest = read_manifest(root)
    assert manifest is not None
    assert "zz" in [e["event"] for e in manifest["vocabulary"]]
    stored = read_snapshots(root).to_pandas()
    assert "events_90d__zz" in stored.columns and "events_90d__e4" not in stored.columns


@pytest.mark.parametrize("measure", ["events__nothing", "events__e0"])
def test_a_vocabulary_measure_the_build_did_not_sum_is_refused(measure: str) -> None:
    import ibis

    from churnlens.features import sources

    usage = ibis.table({"events__e0_w90": "int64"}, name="u")
    assert sources.account_measure(usage, "events__e0", 90) is not None
    with pytest.raises(KeyError, match="no per-account"):
        sources.account_measure(usage, measure, 365)
