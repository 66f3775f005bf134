"""Expected revenue over the next 12 months and lifetime value, per account.

Both are revenue weighted by the chance the account is still a customer, S(m) after m months:

    expected_revenue_12m = sum_{m=0..11} S(m) r(m)
    lifetime_value       = margin * sum_{m=0..M-1} S(m) r(m) / (1 + discount)^(m / 12)

with r(m) the monthly revenue in month m (paid at its start, so month 0 is certain) and M the
horizon in months (``Settings.ltv_horizon_months``). S is built from what the bundle knows:

* months 1..K (the horizon, K = 3 by default): the served churn curve, the hazard model's
  timing at the churn model's level (or the horizon probability spread at a constant hazard
  when the bundle has no hazard model);
* month 12: 1 - P(lost within a year), from the renewal-outcome model (``training.renewal``);
  a renewal that falls between K and 12 months drops S at its month to 1 - renewal risk (it is
  when a subscription is lost), geometric in between;
* beyond a year: the account's own yearly survival again each year, S(m) = S(12)^(m / 12).

Without a renewal model the year is the horizon's survival compounded, S(12) = S(K)^(12 / K),
and the basis says so. Revenue is the MRR, or 30 days' share of the last 90 days' spend for a
history without subscriptions that names its ``money_event``; with neither the value is
absent (NaN) and the basis says why, never 0. Expected expansion (P(expand) x the mean uplift
an expansion brought in history) raises r(m) from the end of the horizon on, once: the
expansion model sees one horizon ahead, not a compounding growth rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnlens.training import hazard, renewal

if TYPE_CHECKING:
    from churnlens.training.bundle import Bundle

YEAR_MONTHS = 12
SPEND_COLUMN = "spend_90d"
"""The spend feature read as revenue when the history has no MRR (``money_event`` set)."""
SPEND_DAYS = 90
FLOOR = 1e-12


@dataclass(frozen=True)
class ValueAssumptions:
    """What lifetime value assumes beyond the models: stated in every answer's documentation."""

    discount_rate: float = 0.10
    """Annual, applied monthly: (1 + rate)^(m / 12)."""
    horizon_months: int = 60
    gross_margin: float = 1.0
    """Share of revenue kept; 1 gives revenue lifetime value, e.g. 0.8 gross-profit LTV."""


def survival(curve: np.ndarray, year_loss: np.ndarray, renewal_loss: np.ndarray,
             days_to_renewal: np.ndarray, months: int,
             period_days: int = hazard.PERIOD_DAYS) -> np.ndarray:
    """S(0..months), shape (n, months + 1): P(still a customer after m months).

    ``curve``: (n, K) cumulative churn by the end of each horizon month; ``year_loss``:
    P(lost within 12 months) (NaN: extrapolate the horizon); ``renewal_loss``: P(lost at or
    before the next renewal) for renewals between K and 12 months (else ignored). Never
    increasing in m.
    """
    n, k = curve.shape
    months = max(months, YEAR_MONTHS)
    out = np.empty((n, months + 1))
    out[:, 0] = 1.0
    out[:, 1:k + 1] = 1.0 - np.clip(curve, 0.0, 1.0)
    at_k = np.maximum(out[:, k], FLOOR)
    extrapolated = at_k ** (YEAR_MONTHS / k)
    at_year = np.where(np.isnan(year_loss), extrapolated, 1.0 - np.nan_to_num(year_loss))
    at_year = np.clip(at_year, FLOOR, at_k)
    days = np.asarray(days_to_renewal, dtype=float)
    month = np.floor(np.nan_to_num(days, nan=-1.0) / period_days) + 1
    renews = (~np.isnan(days) & ~np.isnan(renewal_loss) & (month > k)
              & (month <= YEAR_MONTHS))
    at_renewal = np.clip(1.0 - np.nan_to_num(renewal_loss), at_year, at_k)
    for m in range(k + 1, YEAR_MONTHS + 1):
        before = m < month
        span = np.maximum(YEAR_MONTHS - month, 1.0)
        after_renewal = at_renewal * (at_year / at_renewal) ** np.clip(
            (m - month) / span, 0.0, 1.0)
        plain = at_k * (at_year / at_k) ** ((m - k) / (YEAR_MONTHS - k))
        out[:, m] = np.where(renews, np.where(before, at_k, after_renewal), plain)
    for m in range(YEAR_MONTHS + 1, months + 1):
        out[:, m] = at_year ** (m / YEAR_MONTHS)
    return np.minimum.accumulate(out, axis=1)


def monthly_revenue(meta: dict[str, Any], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Revenue per month now and its basis, per account: MRR; else 30 days' share of the
    last 90 days' spend; else NaN with the reason as its basis."""
    mrr = (pd.to_numeric(pd.Series(meta["mrr"]), errors="coerce").to_numpy(dtype=float)
           if "mrr" in meta else np.full(rows, np.nan))
    spend = (pd.to_numeric(pd.Series(meta[SPEND_COLUMN]), errors="coerce").to_numpy(
        dtype=float) * hazard.PERIOD_DAYS / SPEND_DAYS
        if SPEND_COLUMN in meta else np.full(rows, np.nan))
    has_mrr = ~np.isnan(mrr) & (mrr > 0)
    has_spend = ~has_mrr & ~np.isnan(spend)
    base = np.where(has_mrr, mrr, np.where(has_spend, spend, np.nan))
    why = ("no revenue: no subscription MRR" + ("" if SPEND_COLUMN in meta else
                                                " and no money_event spend"))
    basis = np.where(has_mrr, "mrr", np.where(has_spend, "spend_90d", why)).astype(object)
    return base, basis


def values(months: np.ndarray, base: np.ndarray, growth: np.ndarray, horizon_periods: int,
           assumptions: ValueAssumptions) -> tuple[np.ndarray, np.ndarray]:
    """(expected revenue over 12 months, lifetime value) from S(0..M) and revenue per month."""
    m = np.arange(months.shape[1] - 1)
    revenue = base[:, None] * np.where(m[None, :] >= horizon_periods, growth[:, None], 1.0)
    alive = months[:, :-1]
    twelve = (alive[:, :YEAR_MONTHS] * revenue[:, :YEAR_MONTHS]).sum(axis=1)
    count = assumptions.horizon_months
    discount = (1.0 + assumptions.discount_rate) ** (-m[:count] / YEAR_MONTHS)
    lifetime = assumptions.gross_margin * (alive[:, :count] * revenue[:, :count]
                                           * discount[None, :]).sum(axis=1)
    return twelve, lifetime


@dataclass(frozen=True)
class Outlook:
    """The score table's early-warning and value columns for a set of rows."""

    renewal_risk: np.ndarray
    risk: np.ndarray
    risk_basis: np.ndarray
    loss_12m: np.ndarray
    expected_revenue_12m: np.ndarray
    lifetime_value: np.ndarray
    value_basis: np.ndarray

    def columns(self) -> dict[str, np.ndarray]:
        return {"renewal_risk": self.renewal_risk, "risk": self.risk,
                "risk_basis": self.risk_basis, "expected_revenue_12m":
                self.expected_revenue_12m, "lifetime_value": self.lifetime_value,
                "value_basis": self.value_basis}


def outlook(x: pd.DataFrame | np.ndarray, churn: np.ndarray, curve: np.ndarray,
            days_to_renewal: np.ndarray, base: np.ndarray, revenue_basis: np.ndarray,
            growth: np.ndarray, model: renewal.RenewalModel | None, horizon_days: int,
            assumptions: ValueAssumptions, period_days: int = hazard.PERIOD_DAYS) -> Outlook:
    """Renewal risk, the driving risk and the value of each row.

    ``curve``: the served (n, K) churn curve; ``growth``: revenue after the horizon over
    revenue now (1 without an expansion model).
    """
    days = np.asarray(days_to_renewal, dtype=float)
    before, _ = hazard.churn_before_renewal(curve, days, period_days)
    risk_renewal = renewal.renewal_risk(churn, days, before, model, x, horizon_days)
    risk, basis = renewal.driving_risk(churn, risk_renewal, days)
    year = renewal.within_year(churn, model, x)
    months = survival(curve, year, risk_renewal, days, assumptions.horizon_months,
                      period_days)
    twelve, lifetime = values(months, base, growth, curve.shape[1], assumptions)
    value_basis = revenue_basis.copy()
    if model is None:
        value_basis = np.where(np.isnan(base), value_basis, np.char.add(
            value_basis.astype(str), "; a year's survival compounded from the horizon's (no "
            "renewal model)")).astype(object)
    return Outlook(renewal_risk=risk_renewal, risk=risk, risk_basis=basis, loss_12m=year,
                   expected_revenue_12m=twelve, lifetime_value=lifetime,
                   value_basis=value_basis)


def served_curve(bundle: Bundle, x: np.ndarray, churn: np.ndarray) -> np.ndarray:
    """The churn curve the score table serves: the hazard's shape at the churn model's
    level, or the horizon probability spread at a constant hazard without a hazard model."""
    if bundle.hazard is not None and len(x):
        return hazard.scaled_curve(bundle.hazard.curve_of_array(x, bundle.space.features),
                                   churn)
    periods = hazard.periods_of(int(bundle.manifest.get("horizon_days", 90)))
    return hazard.spread_curve(churn, periods)


def expansion_growth(bundle: Bundle, expansion: np.ndarray) -> np.ndarray:
    """Revenue after the horizon over revenue now: 1 + P(expand) x mean uplift (1 without an
    expansion model or its history)."""
    if bundle.revenue is None:
        return np.ones(len(expansion))
    uplift = max(bundle.revenue.uplift(), 0.0)
    return 1.0 + np.nan_to_num(np.clip(expansion, 0.0, 1.0)) * uplift


def bundle_outlook(bundle: Bundle, x: np.ndarray, churn: np.ndarray, expansion: np.ndarray,
                   meta: dict[str, Any], assumptions: ValueAssumptions) -> Outlook:
    """:func:`outlook` for serving: the bundle's models on ``FeatureSpace.array`` rows."""
    rows = len(churn)
    days = (pd.to_numeric(pd.Series(meta[hazard.RENEWAL]), errors="coerce").to_numpy(
        dtype=float) if hazard.RENEWAL in meta else np.full(rows, np.nan))
    base, basis = monthly_revenue(meta, rows)
    horizon = int(bundle.manifest.get("horizon_days", 90))
    return outlook(x, churn, served_curve(bundle, x, churn), days, base, basis,
                   expansion_growth(bundle, expansion), bundle.renewal, horizon, assumptions)


# ------------------------------------------------------------------------------ backtest


def realised_revenue(frame: pd.DataFrame, starts: list[Any], months: int = YEAR_MONTHS,
                     tolerance_days: int = 7) -> pd.DataFrame:
    """What each account active at a start then paid over ``months`` months: the MRR it held
    at the snapshot nearest each month's start (0 where it was no longer a customer).

    Columns: account_id, as_of, realised, months_seen. A start whose later month has no
    snapshot within ``tolerance_days`` is left out (its revenue is not known yet).
    """
    as_of = pd.to_datetime(frame["as_of"])
    dates = np.sort(as_of.unique())
    mrr = pd.Series(pd.to_numeric(frame["mrr"], errors="coerce").fillna(0.0).to_numpy(),
                    index=pd.MultiIndex.from_arrays([as_of.to_numpy(),
                                                     frame["account_id"].astype(str)]))
    mrr = mrr[~mrr.index.duplicated()]
    out = []
    for start in starts:
        start = pd.Timestamp(start)
        wanted = [start + pd.DateOffset(months=m) for m in range(months)]
        found = [dates[np.abs(dates - np.datetime64(w)).argmin()] for w in wanted]
        if any(abs(pd.Timestamp(f) - w) > pd.Timedelta(days=tolerance_days)
               for f, w in zip(found, wanted, strict=True)):
            continue
        accounts = frame.loc[as_of == start, "account_id"].astype(str).to_numpy()
        paid = np.zeros(len(accounts))
        for when in found:
            keys = pd.MultiIndex.from_arrays([np.full(len(accounts), when), accounts])
            paid += mrr.reindex(keys).fillna(0.0).to_numpy()
        out.append(pd.DataFrame({"account_id": accounts, "as_of": start.date(),
                                 "realised": paid}))
    return (pd.concat(out, ignore_index=True) if out
            else pd.DataFrame(columns=["account_id", "as_of", "realised"]))


def backtest_figures(predicted: np.ndarray, realised: np.ndarray, naive: np.ndarray,
                     starts: np.ndarray) -> dict[str, Any]:
    """Total and per-account error of the predicted 12-month revenue, beside the naive
    "MRR x 12" (nobody leaves, nobody grows), per start and over all starts."""

    def errors(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
        total, real = float(p.sum()), float(y.sum())
        return {"predicted_total": total,
                "total_error_share": (total - real) / real if real else float("nan"),
                "per_account_mae": float(np.abs(p - y).mean()) if len(y) else float("nan"),
                "per_account_rmse": float(np.sqrt(((p - y) ** 2).mean())) if len(y)
                else float("nan"),
                "per_account_wape": float(np.abs(p - y).sum() / real) if real
                else float("nan")}

    by_start = []
    for start in sorted(set(starts)):
        mask = starts == start
        by_start.append({"as_of": str(start), "accounts": int(mask.sum()),
                         "realised_total": float(realised[mask].sum()),
                         **errors(predicted[mask], realised[mask]),
                         "naive": errors(naive[mask], realised[mask])})
    return {"accounts": len(realised), "realised_total": float(realised.sum()),
            **errors(predicted, realised), "naive": errors(naive, realised),
            "by_start": by_start}


BACKTEST_NOTE = (
    "Out of time: at the first evaluation date the churn, expansion, hazard and renewal "
    "models were refitted (the run's tree shapes) on what was known then; each account active "
    "with MRR at an evaluation date got its expected revenue over the next 12 months, compared "
    "with the MRR it then held at the start of each of those months (0 once gone). naive: "
    "MRR x 12. total_error_share: (predicted - realised) / realised over all accounts; "
    "per_account_wape: sum |predicted - realised| / sum realised (an absolute error favours "
    "the likeliest outcome, staying, so MRR x 12 can win it while losing the total; "
    "per_account_rmse is the error an expected value minimises).")
