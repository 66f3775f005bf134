"""When an account is likely to churn: by each of the next months and before its renewal.

The churn model says how likely an account is to leave within the horizon; the bundle's hazard
model (``training.hazard``) says when inside it. Served curves are the hazard model's shape at
the churn model's level (``hazard.scaled_curve``), so the last month equals the churn
probability shown beside it. "Before renewal" is the curve read at the month that holds the
renewal date; a renewal beyond the horizon gets the horizon's probability, flagged as a lower
bound, because the model cannot see that far.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churnlens.training.bundle import Bundle
from churnlens.training.hazard import RENEWAL, churn_before_renewal, scaled_curve

TIMING_MONTHS = 3
"""Months of the curve in the table and the answers: "by each of the next three months"."""
BY_MONTH = tuple(f"churn_by_month_{k}" for k in range(1, TIMING_MONTHS + 1))
COLUMNS = (*BY_MONTH, RENEWAL, "churn_before_renewal", "renewal_beyond_horizon",
           "timing_summary")


def _days(meta: dict[str, Any], rows: int) -> np.ndarray:
    if RENEWAL not in meta:
        return np.full(rows, np.nan)
    return pd.to_numeric(pd.Series(meta[RENEWAL]), errors="coerce").to_numpy(dtype=float)


def timing_columns(bundle: Bundle, x: np.ndarray, churn: np.ndarray, meta: dict[str, Any]
                   ) -> dict[str, Any]:
    """The score table's timing columns for model input ``x`` (``FeatureSpace.array``).

    All null when the bundle has no hazard model (trained before it, or on snapshots without a
    churn day); ``churn_before_renewal`` is null where the renewal date is unknown (no
    subscription, or a business that churns by inactivity).
    """
    rows = len(churn)
    days = _days(meta, rows)
    out: dict[str, Any] = {name: np.full(rows, np.nan) for name in BY_MONTH}
    out.update({RENEWAL: days, "churn_before_renewal": np.full(rows, np.nan),
                "renewal_beyond_horizon": pd.array([None] * rows, dtype="boolean"),
                "timing_summary": pd.Series([None] * rows, dtype=object)})
    if bundle.hazard is None or rows == 0:
        return out
    model = bundle.hazard
    curve = scaled_curve(model.curve_of_array(x, bundle.space.features), churn)
    for k, name in enumerate(BY_MONTH[:curve.shape[1]]):
        out[name] = curve[:, k]
    before, beyond = churn_before_renewal(curve, days, model.period_days)
    known = ~np.isnan(days)
    out["churn_before_renewal"] = np.where(known, before, np.nan)
    out["renewal_beyond_horizon"] = pd.array(
        [bool(b) if k else None for b, k in zip(beyond, known, strict=True)], dtype="boolean")
    out["timing_summary"] = pd.Series(
        [timing_sentence(curve[i, :TIMING_MONTHS].tolist(), float(before[i]), float(days[i]),
                         bool(beyond[i]), model.period_days, model.horizon_days)
         for i in range(rows)], dtype=object)
    return out


def _pct(p: float) -> str:
    return f"{100 * p:.0f}%"


def timing_sentence(by_month: list[float], before_renewal: float, days_to_renewal: float,
                    beyond_horizon: bool, period_days: int, horizon_days: int) -> str:
    """One line a CSM can plan a renewal call with.

    "31% chance it churns before its renewal in 40 days. Within 30 days 8%, 60 days 18%,
    90 days 31%."
    """
    steps = ", ".join(f"{period_days * (k + 1)} days {_pct(p)}" for k, p in enumerate(by_month))
    curve = f"Within {steps}."
    if not np.isfinite(days_to_renewal):
        return f"No renewal date known. {curve}"
    days = max(0, int(days_to_renewal))
    when = "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
    if beyond_horizon:
        return (f"Renewal {when}, beyond the {horizon_days}-day horizon: at least "
                f"{_pct(before_renewal)} chance it churns before then. {curve}")
    return f"{_pct(before_renewal)} chance it churns before its renewal {when}. {curve}"


def timing_answer(columns: dict[str, np.ndarray], row: int) -> dict[str, Any] | None:
    """The ``timing`` object of one account's answer; None when the table has no curve."""
    if BY_MONTH[0] not in columns or pd.isna(columns[BY_MONTH[0]][row]):
        return None
    by_month = [float(columns[name][row]) for name in BY_MONTH
                if name in columns and not pd.isna(columns[name][row])]
    days = columns[RENEWAL][row] if RENEWAL in columns else None
    before = columns["churn_before_renewal"][row]
    beyond = columns["renewal_beyond_horizon"][row]
    return {"by_month": by_month,
            "days_to_renewal": None if days is None or pd.isna(days) else float(days),
            "before_renewal": None if pd.isna(before) else float(before),
            "renewal_beyond_horizon": None if pd.isna(beyond) else bool(beyond),
            "summary": str(columns["timing_summary"][row])}
