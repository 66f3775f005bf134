"""ARR at risk: per account in the table and the API, summed per filter in the portfolio."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest
from homes import served_home

from churnlens.serving import score as scoring
from churnlens.settings import load_settings
from conftest import serve, stop


def test_arr_at_risk_per_account_and_per_segment(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    home, keys = served_home(tmp_path_factory, "revenue")
    # a table without explanations carries it too, computed the same way
    churnlens_settings = load_settings(home=home)
    frame, _ = scoring.latest_snapshot(churnlens_settings)
    bare = scoring.score_probabilities(scoring.champion(churnlens_settings), frame,
                                       churnlens_settings).set_index("account_id")
    np.testing.assert_allclose(bare["arr"], 12 * frame.set_index("account_id")["mrr"])
    np.testing.assert_allclose(bare["arr_at_risk"], bare["churn_probability"] * bare["arr"])

    table = pd.read_parquet(next((home / "scores").glob("*.parquet")))
    segment = table["segment"].value_counts().index[0]
    mine = table[table["segment"] == segment]
    process, base = serve(home)
    try:
        answer = httpx.get(f"{base}/v1/accounts", params={"segment": segment, "limit": 5},
                           headers={"X-API-Key": keys["read"]}, timeout=30).json()
    finally:
        stop(process)
    revenue = answer["revenue"]
    assert revenue["accounts"] == len(mine) > 5  # the whole segment, not the page
    assert revenue["arr"] == pytest.approx(mine["arr"].sum())
    assert revenue["arr_at_risk"] == pytest.approx((mine["churn_probability"] * mine["arr"]).sum())
    first = answer["accounts"][0]
    assert first["arr_at_risk"] == pytest.approx(first["churn_probability"] * first["arr"])

    # expected expansion ARR adds up like ARR at risk, and the segment gets its forecast
    bundle = scoring.champion(churnlens_settings)
    assert bundle.revenue is not None and bundle.revenue.uplift() > 0.1
    assert first["expected_expansion_arr"] == pytest.approx(
        first["expansion_probability"] * first["arr"] * bundle.revenue.uplift())
    assert revenue["expected_expansion_arr"] == pytest.approx(
        mine["expected_expansion_arr"].sum())
    guess = revenue["forecast"]
    assert guess["level"] == 0.9 and guess["horizon_days"] == 90
    for measure in ("grr", "nrr"):
        assert 0.5 < guess[measure]["low"] < guess[measure]["expected"] < \
            guess[measure]["high"] < 1.5
    assert guess["grr"]["expected"] <= 1.0  # gross retention never gains
    assert guess["grr"]["expected"] < guess["nrr"]["expected"]
