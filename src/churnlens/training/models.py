"""The two learners: LightGBM (the model) and logistic regression (the baseline beside it).

No class weights or resampling for the rare class: they would distort the probabilities that
the calibrator then has to undo. LightGBM's log-loss on the true class balance, with enough
data per leaf, ranks the rare churners well and keeps scores honest; the calibrator fixes the
rest on a slice the model never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

BASE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.1,
    "feature_fraction": 0.5,
    "lambda_l2": 1.0,
    "max_bin": 255,
    "min_data_per_group": 50,
    "cat_smooth": 10.0,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
SEARCH: tuple[dict[str, Any], ...] = (
    {"num_leaves": 2, "min_child_samples": 300},
    {"num_leaves": 4, "min_child_samples": 300},
    {"num_leaves": 7, "min_child_samples": 300},
    {"num_leaves": 15, "min_child_samples": 200, "lambda_l2": 10.0},
)
"""Candidate tree shapes; each gets its number of trees from early stopping."""
PREFER_SMALLER = 0.005
"""Explanation cost grows with trees x leaves, and serving explains every account: the chosen
candidate is the one with the fewest leaves in total among those whose tuning log-loss is
within this share of the best (on a few hundred positives, smaller differences are noise)."""
MAX_ROUNDS = 1000
EARLY_STOPPING = 40


@dataclass
class Candidate:
    params: dict[str, Any]
    rounds: int
    tuning_logloss: float
    leaves_total: int = 0


@dataclass
class Search:
    chosen: Candidate
    candidates: list[Candidate] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        return [{"num_leaves": c.params["num_leaves"], "trees": c.rounds,
                 "leaves_total": c.leaves_total, "tuning_logloss": c.tuning_logloss,
                 "chosen": c is self.chosen} for c in self.candidates]


def _dataset(x: pd.DataFrame, y: np.ndarray, reference: lgb.Dataset | None = None
             ) -> lgb.Dataset:
    # the search reuses one binned dataset for candidates with different leaf sizes
    return lgb.Dataset(x, label=y, reference=reference, categorical_feature="auto",
                       free_raw_data=False, params={"feature_pre_filter": False})


def search_lightgbm(x_fit: pd.DataFrame, y_fit: np.ndarray, x_tune: pd.DataFrame,
                    y_tune: np.ndarray, seed: int, threads: int,
                    fixed: dict[str, Any] | None = None) -> Search:
    """Choose leaves and trees on the tuning slice by early stopping on its log-loss."""
    train = _dataset(x_fit, y_fit)
    tune = _dataset(x_tune, y_tune, reference=train)
    grid = (fixed,) if fixed else SEARCH
    candidates = []
    for extra in grid:
        params = {**BASE_PARAMS, **extra, "seed": seed, "num_threads": threads}
        params.setdefault("num_leaves", 15)
        booster = lgb.train(params, train, num_boost_round=MAX_ROUNDS, valid_sets=[tune],
                            callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)])
        rounds = max(booster.best_iteration, 1)
        loss = float(booster.best_score["valid_0"]["binary_logloss"])
        candidates.append(Candidate(params=params, rounds=rounds, tuning_logloss=loss,
                                    leaves_total=rounds * int(params["num_leaves"])))
    best = min(c.tuning_logloss for c in candidates)
    good_enough = [c for c in candidates if c.tuning_logloss <= best * (1 + PREFER_SMALLER)]
    chosen = min(good_enough, key=lambda c: (c.leaves_total, c.tuning_logloss))
    return Search(chosen=chosen, candidates=candidates)


SEARCH_ROWS = 150_000
"""The search sees at most this many snapshots of a slice (whole accounts, drawn at random):
choosing leaves and learning rate needs far fewer rows than the final fit, which sees all."""


def tuning_sample(frame: pd.DataFrame, x: pd.DataFrame, y: np.ndarray, seed: int,
                  rows: int = SEARCH_ROWS) -> tuple[pd.DataFrame, np.ndarray]:
    if len(x) <= rows:
        return x, y
    accounts = frame["account_id"].unique()
    rng = np.random.default_rng(seed)
    share = rows / len(x)
    chosen = set(rng.choice(accounts, size=max(1, int(len(accounts) * share)), replace=False))
    mask = frame["account_id"].isin(chosen).to_numpy()
    return x[mask], y[mask]


def fit_lightgbm(x: pd.DataFrame, y: np.ndarray, candidate: Candidate) -> lgb.Booster:
    return lgb.train(candidate.params, _dataset(x, y), num_boost_round=candidate.rounds)


def predict_lightgbm(booster: lgb.Booster, x: pd.DataFrame) -> np.ndarray:
    return np.asarray(booster.predict(x), dtype=float)


def out_of_fold(x: pd.DataFrame, y: np.ndarray, accounts: np.ndarray, candidate: Candidate,
                folds: int, seed: int) -> np.ndarray:
    """Each row's score from a model that never saw its account (``folds`` folds of accounts,
    so an account's other months cannot vouch for it): scores as honest as a new month's."""
    names = np.unique(accounts)
    fold_of = dict(zip(names, np.random.default_rng(seed).permutation(len(names)) % folds,
                       strict=True))
    fold = np.array([fold_of[a] for a in accounts])
    scores = np.empty(len(y), dtype=float)
    for k in range(folds):
        held = fold == k
        if not held.any():
            continue
        model = fit_lightgbm(x[~held], y[~held], candidate)
        scores[held] = predict_lightgbm(model, x[held])
    return scores


def _signed_log(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


BASELINE_ROWS = 200_000
"""A linear model's handful of coefficients is settled long before this many snapshots."""


def fit_baseline(x: pd.DataFrame, y: np.ndarray, seed: int) -> Pipeline:
    """Logistic regression on the same features: imputed, log-scaled, standardised, one-hot."""
    if len(x) > BASELINE_ROWS:
        rows = np.random.default_rng(seed).choice(len(x), BASELINE_ROWS, replace=False)
        rows.sort()
        x, y = x.iloc[rows], y[rows]
    categorical = [c for c in x.columns if isinstance(x[c].dtype, pd.CategoricalDtype)]
    numeric = [c for c in x.columns if c not in categorical]
    numbers = make_pipeline(SimpleImputer(strategy="median", add_indicator=True,
                                          keep_empty_features=True),
                            FunctionTransformer(_signed_log), StandardScaler())
    # keep_empty_features: a column empty in every row (no industry or region recorded) reads
    # as one "(missing)" level; without it the imputer drops the column, and with every
    # categorical column empty the encoder is handed no column at all and raises
    levels = make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)",
                                         keep_empty_features=True),
                           OneHotEncoder(handle_unknown="ignore"))
    prepare = ColumnTransformer([("numbers", numbers, numeric),
                                 ("levels", levels, categorical)])
    model = Pipeline([("prepare", prepare),
                      ("logistic", LogisticRegression(C=0.1, max_iter=3000,
                                                      random_state=seed))])
    return model.fit(_as_objects(x, categorical), y)


def predict_baseline(model: Pipeline, x: pd.DataFrame) -> np.ndarray:
    categorical = [c for c in x.columns if isinstance(x[c].dtype, pd.CategoricalDtype)]
    return np.asarray(model.predict_proba(_as_objects(x, categorical))[:, 1], dtype=float)


def _as_objects(x: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    out = x.copy()
    for column in categorical:
        out[column] = out[column].astype("object").where(out[column].notna(), np.nan)
    return out
