"""Coverage: a pillar with no data says so and is never the failing one; every answer says how
much of the account the model saw."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from homes import served_home

from churnlens.serving import score as scoring
from churnlens.serving.coverage import coverage_columns, pillars_of
from churnlens.serving.playbooks import load_playbooks
from churnlens.settings import load_settings
from conftest import serve, stop


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return served_home(tmp_path_factory, "coverage")


def test_pillars_without_any_value_are_listed() -> None:
    features = ("tickets_30d", "tickets_90d", "last_nps", "mrr")
    values = np.array([[1, 2, None, 100.0], [None, None, 7, 100.0]], dtype=object)
    seen = coverage_columns(features, values, {"tenure_days": np.array([30, 400])})
    assert list(seen["coverage"]) == [0.75, 0.5]
    pillars = dict(zip(features, pillars_of(features), strict=True))
    assert pillars["tickets_30d"] == "support" and pillars["last_nps"] == "satisfaction"
    # onboarding and adoption have no feature at all here: no data for every account
    assert seen["pillars_without_data"][0] == "onboarding;adoption;satisfaction"
    assert seen["pillars_without_data"][1] == "onboarding;adoption;support"
    assert list(seen["new_account"]) == [True, False]


def test_a_pillar_with_no_data_is_never_the_failing_one(
        served: tuple[Path, dict[str, str]]) -> None:
    settings = load_settings(home=served[0])
    bundle = scoring.champion(settings)
    frame, _ = scoring.latest_snapshot(settings)
    rows = scoring.Rows.of(bundle, frame)
    before = scoring.score_rows(bundle, rows, settings, load_playbooks(None))
    satisfaction = [i for i, p in enumerate(pillars_of(bundle.space.features))
                    if p == "satisfaction"]
    failing_there = np.flatnonzero(before["failing_pillar"] == "satisfaction")
    assert len(failing_there) > 0, "no account fails on satisfaction in this company"
    blind = rows.take(list(failing_there))
    blind.x[:, satisfaction] = np.nan  # as if the surveys table had never been supplied
    blind.values[:, satisfaction] = None
    after = scoring.score_rows(bundle, blind, settings, load_playbooks(None))
    assert after["pillars_without_data"].str.contains("satisfaction").all()
    assert (after["failing_pillar"] != "satisfaction").all()
    assert (after["coverage"] < before["coverage"].iloc[failing_there].to_numpy()).all()


def test_the_api_answers_with_coverage(served: tuple[Path, dict[str, str]]) -> None:
    home, keys = served
    process, base = serve(home)
    try:
        page = httpx.get(f"{base}/v1/accounts", params={"limit": 50},
                         headers={"X-API-Key": keys["read"]}, timeout=30).json()
    finally:
        stop(process)
    for answer in page["accounts"]:
        coverage = answer["coverage"]
        assert 0 < coverage["share"] <= 1 and isinstance(coverage["new_account"], bool)
        assert answer["failing_pillar"] not in coverage["pillars_without_data"]
