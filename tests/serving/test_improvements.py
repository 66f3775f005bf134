"""Improvements: the lever changes that would lower an account's churn risk most, as the model
itself scores them, and drivers apart from context."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from homes import champion_inputs

from churnlens.features.registry import REGISTRY, load_all
from churnlens.serving import score as scoring
from churnlens.serving.improve import MAX_IMPROVEMENTS, levers_of
from churnlens.serving.playbooks import load_playbooks
from churnlens.settings import Settings
from churnlens.training.bundle import Bundle

Scored = tuple[Settings, Bundle, pd.DataFrame, pd.DataFrame]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    settings, bundle, frame = champion_inputs(tmp_path_factory)
    table = scoring.score_frame(bundle, frame, settings, load_playbooks(None))
    return settings, bundle, frame, table


def _what_if(settings: Settings, bundle: Bundle, frame: pd.DataFrame, row: int,
             changes: dict[str, Any]) -> float:
    """The account's churn probability with ``changes``, as the what-if scores it: its rows
    edited, then ``score_rows`` (the API's and the page's what-if)."""
    rows = scoring.Rows.of(bundle, frame).take([row])
    for name, value in changes.items():
        column = bundle.space.features.index(name)
        rows.x[0, column] = float("nan") if value is None else float(value)
        rows.values[0, column] = value
        if name in rows.meta:
            rows.meta[name] = np.array([value], dtype=object)
    table = scoring.score_rows(bundle, rows, settings, load_playbooks(None))
    return float(table["churn_probability"].iloc[0])


def test_the_stated_probability_is_what_a_what_if_with_the_change_scores(scored: Scored
                                                                          ) -> None:
    settings, bundle, frame, table = scored
    position = {a: i for i, a in enumerate(frame["account_id"].astype(str))}
    helped = table[table["improvements_json"].map(lambda t: bool(json.loads(t)))]
    assert len(helped) >= 10
    checked = 0
    for _, row in helped.sort_values("churn_probability", ascending=False).head(8).iterrows():
        for improvement in json.loads(row["improvements_json"]):
            assert improvement["churn_probability"] == pytest.approx(row["churn_probability"],
                                                                     abs=1e-9)
            after = _what_if(settings, bundle, frame, position[row["account_id"]],
                             improvement["changes"])
            assert after == pytest.approx(improvement["improved_churn_probability"], abs=1e-9)
            assert after < row["churn_probability"] - 0.001
            checked += 1
    assert checked >= 8


def test_improvements_move_levers_the_healthy_way_and_what_derives_from_them(scored: Scored
                                                                             ) -> None:
    _, bundle, frame, table = scored
    load_all()
    plays = {rule.playbook for rule in load_playbooks(None).rules}
    movable = {lever.feature: lever for lever in levers_of(bundle.space.features)}
    derived_seen = 0
    for text, account in zip(table["improvements_json"], table["account_id"], strict=True):
        listed = json.loads(text)
        assert len(listed) <= MAX_IMPROVEMENTS
        assert len({i["pillar"] for i in listed}) == len(listed)  # one per pillar
        assert [i["points"] for i in listed] == sorted(i["points"] for i in listed)
        for improvement in listed:
            spec = REGISTRY[improvement["feature"]]
            assert spec.is_lever and not spec.past and improvement["feature"] in movable
            better = (improvement["improved_value"] < improvement["value"]
                      if spec.higher_is_riskier else
                      improvement["improved_value"] > improvement["value"])
            assert better, improvement
            assert improvement["playbook"] in plays
            assert improvement["sentence"].startswith("If ")
            changes = improvement["changes"]
            if improvement["feature"].startswith("seat_utilisation_"):
                # the ratio moved through its active users: the recomputed ratio is theirs
                days = improvement["feature"].rsplit("_", 1)[1]
                seats = frame.loc[frame["account_id"] == account, "seats"].iloc[0]
                assert changes[f"active_users_{days}"] == pytest.approx(
                    changes[improvement["feature"]] * seats)
                assert float(changes[f"active_users_{days}"]).is_integer()
                derived_seen += 1
    assert derived_seen > 0
    first = table[table["improvement_1"].notna()].iloc[0]
    assert first["improvement_1_sentence"] == json.loads(first["improvements_json"])[0][
        "sentence"]


def test_drivers_are_levers_and_context_is_apart(scored: Scored) -> None:
    table = scored[3]
    load_all()
    riskiest = scoring.sort_riskiest(table).iloc[0]
    drivers, context = json.loads(riskiest["drivers_json"]), json.loads(riskiest["context_json"])
    assert drivers and all(REGISTRY[d["feature"]].is_lever for d in drivers)
    assert context and all(not REGISTRY[d["feature"]].is_lever for d in context)
    assert "days_to_renewal" in {d["feature"] for d in context}
    # levers' points per pillar plus the context's add up to the probability gap
    pillars = table[[c for c in table if c.endswith("_points") and c.split("_")[0] in
                     ("onboarding", "adoption", "support", "satisfaction", "commercial")]]
    np.testing.assert_allclose(pillars.sum(axis=1), table["lever_points"], atol=1e-9)
    assert table["context_points"].abs().sum() > 0
    assert (table["driver_1"].dropna().map(lambda n: REGISTRY[n].is_lever)).all()
    assert not table["failing_pillar"].dropna().empty
