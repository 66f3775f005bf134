"""Drift of features that grow with time: ageing alone is not drift."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from churnlens.features.registry import REGISTRY, load_all
from churnlens.training.drift import DRIFT_PSI, feature_psi, growing_features, reference
from churnlens.training.matrix import FeatureSpace

SPACE = FeatureSpace(features=("tenure_days", "days_since_first_event", "seats"),
                     categories={})
TRAINED = [date(2023, month, 1) for month in range(1, 7)]


def _snapshots(created: np.ndarray, seats: np.ndarray, dates: list[date]) -> pd.DataFrame:
    """The accounts' snapshots at each date: tenure and days since the first event (a week
    after sign-up) are what those dates make them."""
    rows = []
    for when in dates:
        age = (pd.Timestamp(when) - pd.to_datetime(created)).days.to_numpy()
        rows.append(pd.DataFrame({"as_of": when, "tenure_days": age,
                                  "days_since_first_event": age - 7, "seats": seats}))
    return pd.concat(rows, ignore_index=True)


def _population(rng: np.random.Generator, accounts: int, until: date) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Accounts signed up at any time in the three years before ``until``."""
    created = np.array([until - timedelta(days=int(d)) for d in
                        rng.integers(30, 3 * 365, accounts)], dtype="datetime64[D]")
    return created, rng.integers(1, 50, accounts)


def test_tenure_and_first_event_age_are_declared_as_growing_with_time() -> None:
    load_all()
    assert growing_features(tuple(REGISTRY)) == {"tenure_days", "days_since_first_event"}


def test_the_same_accounts_scored_a_year_later_have_not_drifted() -> None:
    """Every account is 365 days older: the plain PSI of tenure is far above the threshold,
    yet nothing about these customers changed. Seats, which do not grow by definition, still
    raise the flag when they move."""
    rng = np.random.default_rng(2)
    created, seats = _population(rng, 2000, TRAINED[0])
    ref = reference(_snapshots(created, seats, TRAINED), SPACE)
    later = _snapshots(created, seats, [date(2024, 6, 1)])
    plain = feature_psi(later.drop(columns="as_of"), ref)  # no date: no ageing taken out
    assert plain["tenure_days"] > DRIFT_PSI  # what the drift flag said on day one
    psi = feature_psi(later, ref)
    assert psi["tenure_days"] < 0.05 and psi["days_since_first_event"] < 0.05
    assert psi["seats"] < 0.05
    grown = feature_psi(later.assign(seats=later["seats"] * 4), ref)
    assert grown["seats"] > DRIFT_PSI and grown["tenure_days"] < 0.05


def test_a_steady_base_whose_new_accounts_replace_the_old_has_not_drifted() -> None:
    """A year later, a third of the accounts are new and as many have left: the tenure
    distribution is the one training saw (the plain comparison) though the aged one moved."""
    rng = np.random.default_rng(3)
    created, seats = _population(rng, 3000, TRAINED[0])
    ref = reference(_snapshots(created, seats, TRAINED[:1]), SPACE)
    now = date(2024, 6, 1)
    fresh, fresh_seats = _population(rng, 3000, now)
    later = _snapshots(fresh, fresh_seats, [now])
    assert feature_psi(later, ref)["tenure_days"] < 0.05


def test_a_base_that_grew_young_has_drifted() -> None:
    """Half the accounts scored are a month old, which neither ageing nor a steady base
    explains: the flag stays up."""
    rng = np.random.default_rng(4)
    created, seats = _population(rng, 2000, TRAINED[0])
    ref = reference(_snapshots(created, seats, TRAINED), SPACE)
    now = date(2024, 6, 1)
    young = np.array([now - timedelta(days=int(d)) for d in rng.integers(1, 30, 2000)],
                     dtype="datetime64[D]")
    later = _snapshots(np.concatenate([created, young]), np.concatenate([seats, seats]), [now])
    assert feature_psi(later, ref)["tenure_days"] > DRIFT_PSI


def test_tenure_never_raises_the_drift_flag_of_the_served_model() -> None:
    """The flag the pages, `/readyz` and the score table show: a model whose most used
    feature is tenure, scoring the same accounts a year later, reads stable; its seats
    moving still raise the flag."""
    import lightgbm as lgb

    from churnlens.serving.score import drift_state
    from churnlens.training.bundle import Bundle, TargetModel
    from churnlens.training.calibration import Calibrator

    rng = np.random.default_rng(5)
    created, seats = _population(rng, 2000, TRAINED[0])
    train = _snapshots(created, seats, TRAINED)
    churned = (train["tenure_days"] < 200).astype(int)  # tenure is what the model uses most
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 4},
                        lgb.Dataset(SPACE.matrix(train), label=churned), num_boost_round=5)
    bundle = Bundle(path=Path("unused"), manifest={"version": "v1"}, space=SPACE,
                    models={"churn": TargetModel(booster, Calibrator("identity"))},
                    metrics={}, reference=reference(train, SPACE))
    later = _snapshots(created, seats, [date(2024, 6, 1)])
    state = drift_state(bundle, later)
    assert state.flag is False and state.drifted == []
    assert set(state.growing) == {"tenure_days", "days_since_first_event"}
    assert drift_state(bundle, later.assign(seats=later["seats"] * 4)).drifted == ["seats"]
