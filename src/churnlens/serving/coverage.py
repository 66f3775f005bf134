"""How much of an account the model could see: the share of its features with a value, the
pillars with no data at all, and whether the account is too new to have much history.

A pillar with no data (its source table was never supplied, or the account has no row in it:
a customer who never answered a survey) is not a failing pillar: the model still scores what
it knows, and its points still add up to the probability, but the pillar is shown as "no
data" and is never named as the one failing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnlens.features.registry import PILLARS_ORDER
from churnlens.serving.explain import pillars_of
from churnlens.training.bundle import NEW_ACCOUNT_DAYS
from churnlens.training.coldstart import tenure_of

COLUMNS = ("coverage", "pillars_without_data", "new_account")


def coverage_columns(features: tuple[str, ...], values: np.ndarray, meta: dict[str, Any]
                     ) -> dict[str, Any]:
    """Per row: share of the model's features known, the pillars without any value (joined
    with ``;``, in pillar order; empty when every pillar has data), and ``new_account``."""
    rows = len(values)
    known = ~pd.isna(values) if values.size else np.zeros((rows, len(features)), dtype=bool)
    pillars = pillars_of(features)
    empty = np.column_stack([~known[:, pillars == pillar].any(axis=1) for pillar in
                             PILLARS_ORDER]) if rows else np.zeros((0, len(PILLARS_ORDER)), bool)
    tenure = tenure_of(meta["tenure_days"]) if "tenure_days" in meta else np.full(rows, np.nan)
    return {
        "coverage": known.mean(axis=1) if len(features) else np.zeros(rows),
        "pillars_without_data": pd.Series(
            [";".join(p for p, e in zip(PILLARS_ORDER, row, strict=True) if e)
             for row in empty], dtype=object),
        "new_account": pd.array([None if np.isnan(t) else bool(t < NEW_ACCOUNT_DAYS)
                                 for t in tenure], dtype="boolean"),
    }


def coverage_answer(columns: dict[str, np.ndarray], row: int) -> dict[str, Any] | None:
    """The ``coverage`` object of one account's answer; None for tables written before it."""
    if "coverage" not in columns:
        return None
    missing = columns["pillars_without_data"][row]
    new = columns["new_account"][row]
    return {"share": float(columns["coverage"][row]),
            "pillars_without_data": [p for p in str(missing).split(";") if p]
            if isinstance(missing, str) else [],
            "new_account": None if pd.isna(new) else bool(new)}
