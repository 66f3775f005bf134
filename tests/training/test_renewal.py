"""Risk until the next renewal: outcome labels from the snapshots, and a renewal-outcome model
that warns months ahead where the horizon probability cannot."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from churnlens.training import models, renewal
from churnlens.training.hazard import RENEWAL


def _snapshot(account: str, as_of: str, days: float | None, churned: bool | None,
              churn_day: int | None = None) -> dict[str, object]:
    return {"account_id": account, "as_of": date.fromisoformat(as_of), RENEWAL: days,
            "churned": churned, "churn_day": churn_day}


def _frame() -> pd.DataFrame:
    """Account a renews 2024-09-01 and is lost then (seen by the June snapshot's window);
    account b renews the same day and stays; c has no renewal date."""
    return pd.DataFrame([
        _snapshot("a", "2024-01-01", 244, False),
        _snapshot("a", "2024-06-01", 92, False),
        _snapshot("a", "2024-07-01", 62, True, 62),
        _snapshot("b", "2024-01-01", 244, False),
        _snapshot("b", "2024-07-01", 62, False),
        _snapshot("c", "2024-01-01", None, False),
        _snapshot("c", "2024-07-01", None, False),
    ])


def test_the_outcome_of_a_renewal_is_read_from_later_snapshots() -> None:
    frame = _frame()
    lost, known = renewal.lost_at_renewal(frame, renewal.churn_dates(frame),
                                          pd.Timestamp("2024-10-01"))
    assert lost.tolist() == [1, 1, 1, 0, 0, 0, 0]
    # c has no renewal date: never known; everything else renews before October
    assert known.tolist() == [True] * 5 + [False, False]
    # one day after the renewal (+ tolerance) is not enough: unknown, whatever happened
    _, early = renewal.lost_at_renewal(frame, renewal.churn_dates(frame),
                                       pd.Timestamp("2024-09-05"))
    assert early[:5].tolist() == [False] * 5


def test_training_rows_are_known_by_their_date_not_their_outcome() -> None:
    frame = _frame()
    rows = renewal.outcome_rows(frame, 90, pd.Timestamp("2024-10-01"))
    # beyond-horizon renewals of the snapshots that survived the horizon; the year rows
    # (2025) are not known by October 2024, and a's July snapshot churned in its horizon
    assert sorted(zip(rows["account_id"], rows["as_of"].astype(str),
                      rows[renewal.OUTCOME_DAYS], rows[renewal.LOST], strict=True)) == [
        ("a", "2024-01-01", 244.0, 1), ("a", "2024-06-01", 92.0, 1),
        ("b", "2024-01-01", 244.0, 0)]
    later = renewal.outcome_rows(frame, 90, pd.Timestamp("2026-01-01"))
    year = later[later[renewal.OUTCOME_DAYS] == renewal.YEAR_DAYS]
    assert sorted(zip(year["account_id"], year[renewal.LOST], strict=True)) == [
        ("a", 1), ("a", 1), ("b", 0), ("b", 0), ("c", 0), ("c", 0)]


def _company(accounts: int = 240, months: int = 30, seed: int = 4) -> pd.DataFrame:
    """Monthly snapshots of annual subscriptions: an account's usage (its only feature) sets
    its chance of leaving at each renewal, and some accounts' usage collapses at random."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2022-01-01")
    rows = []
    for i in range(accounts):
        anchor = int(rng.integers(1, 13))
        usage = float(rng.uniform(0.6, 1.0))
        fate: dict[pd.Timestamp, bool] = {}
        for month in range(months):
            if rng.random() < 0.04:
                usage = float(rng.uniform(0.0, 0.2))
            as_of = start + pd.DateOffset(months=month)
            renews = start + pd.DateOffset(months=anchor + 12 * max(0, (month - anchor) // 12
                                                                     + (month >= anchor)))
            days = (renews - as_of).days
            if days < 90 and renews not in fate:  # decided by the usage it renews with
                fate[renews] = bool(rng.random() < (0.8 if usage < 0.3 else 0.05))
            churned = days < 90 and fate[renews]
            rows.append({"account_id": f"a{i}", "as_of": as_of.date(), RENEWAL: float(days),
                         "usage": usage, "churned": churned,
                         "churn_day": days if churned else None, "leaves_at": renews})
            if churned and days < 31:
                break
    frame = pd.DataFrame(rows).drop(columns="leaves_at")
    return frame.assign(churned=frame["churned"].astype(bool))


def _matrix(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[["usage", RENEWAL]].astype("float64")


def test_a_collapse_eight_months_out_is_flagged_now_and_the_bounds_hold() -> None:
    frame = _company()
    candidate = models.Candidate(params={**models.BASE_PARAMS, "num_leaves": 4,
                                         "min_child_samples": 20, "num_threads": 1},
                                 rounds=60, tuning_logloss=0.0)
    fitted = renewal.fit_renewal(frame, _matrix, 90, renewal.known_until(frame, 90),
                                 candidate, seed=1)
    assert fitted.model is not None, fitted.why_not
    # two accounts renewing in eight months, with the same small horizon probability
    x = pd.DataFrame({"usage": [0.05, 0.9], RENEWAL: [240.0, 240.0]})
    p90 = np.array([0.01, 0.01])
    risk = renewal.renewal_risk(p90, x[RENEWAL].to_numpy(), None, fitted.model, x, 90)
    assert risk[0] > risk[1] + 0.2  # collapsed usage: warned now, months before the renewal
    assert np.all((risk >= p90) & (risk <= 1.0))
    # a renewal inside the horizon reads the hazard's "before renewal", never above p
    near = pd.DataFrame({"usage": [0.05, 0.9, 0.5], RENEWAL: [40.0, 40.0, np.nan]})
    p = np.array([0.5, 0.02, 0.1])
    near_risk = renewal.renewal_risk(p, near[RENEWAL].to_numpy(), np.array([0.45, 0.9, 0.1]),
                                     fitted.model, near, 90)
    assert near_risk[:2] == pytest.approx([0.45, 0.02])  # capped at p
    assert p[2] <= near_risk[2] <= 1.0  # no renewal date: within a year
    # the risk a CSM sees: renewal risk where there is a renewal date, else the horizon's
    shown, basis = renewal.driving_risk(p, near_risk, near[RENEWAL].to_numpy())
    assert basis.tolist() == ["renewal", "renewal", "horizon"]
    assert shown.tolist() == pytest.approx([0.45, 0.02, 0.1])


def test_without_enough_outcomes_there_is_no_model_and_it_says_why() -> None:
    frame = _frame()
    candidate = models.Candidate(params=dict(models.BASE_PARAMS), rounds=5, tuning_logloss=0)
    fitted = renewal.fit_renewal(frame, _matrix, 90, pd.Timestamp("2024-10-01"), candidate, 1)
    assert fitted.model is None and "at least 10 lost" in str(fitted.why_not)
    # and the renewal risk beyond the horizon is then unknown, never "safe"
    risk = renewal.renewal_risk(np.array([0.1]), np.array([200.0]), None, None,
                                np.zeros((1, 1)), 90)
    assert np.isnan(risk[0])
