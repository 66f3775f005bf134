"""Portfolio KPIs by calendar month, from the raw history: what a CS leader reports on.

Every figure is one Ibis expression over the validated tables, so it runs on whichever engine
holds the history. A month is ``[first day, first day of the next month)``; only months that the
history covers completely are reported. Each KPI's definition lives in ``DEFINITIONS`` (the
README table and the API's schema read it).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow.parquet as pq

from churnlens.features.snapshots import history_span
from churnlens.features.sources import Grid, held_at
from churnlens.raw.validation import History
from churnlens.settings import Settings

DEFINITIONS: dict[str, str] = {
    "active_accounts": "Accounts holding a subscription at the start of the month.",
    "churned_accounts": "Of those, accounts holding none at the start of the next month.",
    "new_accounts": "Accounts holding a subscription at the start of the next month but not "
                    "at the start of this one.",
    "logo_churn_rate": "churned_accounts / active_accounts.",
    "mrr_start": "MRR of the active accounts at the start of the month.",
    "expansion_mrr": "MRR gained by active accounts whose MRR was higher at the start of the "
                     "next month.",
    "contraction_mrr": "MRR lost by active accounts still customers next month but paying less.",
    "churned_mrr": "MRR at the start of the month of the accounts that churned in it.",
    "grr": "Gross revenue retention: (mrr_start - contraction_mrr - churned_mrr) / mrr_start.",
    "nrr": "Net revenue retention: (mrr_start + expansion_mrr - contraction_mrr - churned_mrr) "
           "/ mrr_start.",
    "nps": "Net promoter score of the answers given in the month: % promoters (9-10) minus % "
           "detractors (0-6).",
    "nps_responses": "Survey answers given in the month.",
    "csat": "Mean CSAT of the tickets opened in the month that have one.",
    "csat_responses": "Tickets opened in the month with a CSAT.",
    "median_ttfv_days": "Median days from signup to the first key event, over the accounts "
                        "created in the month that have reached one.",
    "ttfv_accounts": "Accounts created in the month that have reached a key event.",
    "dau_mau": "Mean daily active users over the month's days divided by the month's active "
               "users (users counted per account).",
    "feature_adoption_rate": "Share of active accounts that used at least one key feature "
                             "(the key events) in the month.",
}


KPI_TABLES: dict[str, str] = {
    **{kpi: "subscriptions" for kpi in (
        "active_accounts", "churned_accounts", "new_accounts", "logo_churn_rate", "mrr_start",
        "expansion_mrr", "contraction_mrr", "churned_mrr", "grr", "nrr",
        "feature_adoption_rate")},
    "nps": "surveys", "nps_responses": "surveys", "csat": "tickets", "csat_responses": "tickets",
}
"""The optional table each KPI reads (the others read accounts and usage events only): a
history without it has no such KPI, which is shown as absent, never as zero."""


def absent_kpis(tables: dict[str, ir.Table]) -> dict[str, str]:
    """The KPIs this history cannot give, each with the table it would need."""
    return {kpi: f"needs the {table} table" for kpi, table in KPI_TABLES.items()
            if table not in tables}


@dataclass(frozen=True)
class Months:
    """The months reported: their first days, and the first day after the last of them."""

    starts: list[date]
    end: date


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def complete_months(first_day: date, end: date, since: date | None = None,
                    until: date | None = None) -> Months:
    """Calendar months from the one holding ``first_day`` whose last day is before ``end``,
    limited to [since, until] (month starts)."""
    starts = []
    current = date(first_day.year, first_day.month, 1)
    while _next_month(current) <= end:
        if (since is None or current >= since) and (until is None or current <= until):
            starts.append(current)
        current = _next_month(current)
    return Months(starts=starts, end=_next_month(starts[-1]) if starts else end)


def _month_of(value: ir.TimestampValue) -> ir.DateValue:
    return value.truncate("M").date()


def _in_months(table: ir.Table, column: str, months: Months) -> ir.Table:
    stamp = table[column]
    first = months.starts[0]
    return table.filter(stamp >= ibis.timestamp(first.isoformat()),
                        stamp < ibis.timestamp(months.end.isoformat()))


def revenue_kpis(subscriptions: ir.Table, months: Months, backend: ibis.BaseBackend
                 ) -> ir.Table:
    """Logo churn, GRR, NRR and MRR movements per month, from the subscriptions held at the
    start of each month and of the next."""
    edges = [*months.starts, months.end]
    grid = Grid.of(edges, backend)
    held = held_at(subscriptions, grid).group_by(["account_id", "as_of"]).aggregate(
        mrr=lambda t: t.mrr.sum())
    pairs = ibis.memtable({"month": months.starts, "next": edges[1:]},
                          schema={"month": "date", "next": "date"})
    start = held.join(pairs, held.as_of == pairs.month).select(
        "account_id", "month", mrr_start=held.mrr, mrr_end=ibis.literal(0.0))
    end = held.join(pairs, held.as_of == pairs.next).select(
        "account_id", "month", mrr_start=ibis.literal(0.0), mrr_end=held.mrr)
    both = start.union(end).group_by(["account_id", "month"]).aggregate(
        mrr_start=lambda t: t.mrr_start.sum(), mrr_end=lambda t: t.mrr_end.sum())
    was = both.mrr_start > 0
    stays = both.mrr_end > 0
    return both.group_by("month").aggregate(
        active_accounts=was.sum(),
        churned_accounts=(was & ~stays).sum(),
        new_accounts=(~was & stays).sum(),
        mrr_start=both.mrr_start.sum(),
        expansion_mrr=ibis.ifelse(was & (both.mrr_end > both.mrr_start),
                                  both.mrr_end - both.mrr_start, 0.0).sum(),
        contraction_mrr=ibis.ifelse(was & stays & (both.mrr_end < both.mrr_start),
                                    both.mrr_start - both.mrr_end, 0.0).sum(),
        churned_mrr=ibis.ifelse(was & ~stays, both.mrr_start, 0.0).sum(),
    )


def survey_kpis(surveys: ir.Table, months: Months) -> ir.Table:
    s = _in_months(surveys, "responded_at", months)
    s = s.mutate(month=_month_of(s.responded_at))
    return s.group_by("month").aggregate(
        nps_responses=s.count(), promoters=(s.score >= 9).sum(), detractors=(s.score <= 6).sum())


def ticket_kpis(tickets: ir.Table, months: Months) -> ir.Table:
    t = _in_months(tickets, "created_at", months)
    t = t.filter(t.csat.notnull()).mutate(month=_month_of(t.created_at))
    return t.group_by("month").aggregate(csat=t.csat.mean(), csat_responses=t.count())


def onboarding_kpis(accounts: ir.Table, events: ir.Table, months: Months,
                    key_events: tuple[str, ...]) -> ir.Table:
    keyed = events.filter(events.event.isin(list(key_events)))
    first = keyed.group_by("account_id").aggregate(first_value=keyed.event_ts.min())
    new = _in_months(accounts, "created_at", months)
    reached = new.join(first, "account_id").mutate(month=_month_of(new.created_at))
    seconds = reached.first_value.epoch_seconds() - reached.created_at.epoch_seconds()
    days = seconds.cast("float64") / 86400.0
    return reached.group_by("month").aggregate(median_ttfv_days=days.median(),
                                               ttfv_accounts=reached.count())


def usage_kpis(events: ir.Table, months: Months) -> ir.Table:
    e = _in_months(events, "event_ts", months)
    e = e.mutate(month=_month_of(e.event_ts), day=e.event_ts.date(),
                 user=e.account_id.concat(":", e.user_id))
    daily = e.group_by(["month", "day"]).aggregate(users=e.user.nunique())
    dau = daily.group_by("month").aggregate(user_days=daily.users.sum())
    mau = e.group_by("month").aggregate(mau=e.user.nunique())
    return dau.join(mau, "month").select("month", "user_days", "mau")


def adoption_kpis(events: ir.Table, subscriptions: ir.Table, months: Months,
                  key_events: tuple[str, ...], backend: ibis.BaseBackend) -> ir.Table:
    e = _in_months(events.filter(events.event.isin(list(key_events))), "event_ts", months)
    used = e.select("account_id", month=_month_of(e.event_ts)).distinct()
    held = held_at(subscriptions, Grid.of(months.starts, backend)).select(
        "account_id", month="as_of").distinct()
    joined = held.left_join(used, ["account_id", "month"])
    return joined.group_by(held.month).aggregate(
        adopting=joined.account_id_right.notnull().sum(), adoption_base=joined.count())


def monthly_kpis(tables: dict[str, ir.Table], backend: ibis.BaseBackend,
                 key_events: tuple[str, ...], since: date | None = None,
                 until: date | None = None) -> pd.DataFrame:
    """One row per complete month of the history, one column per KPI (``DEFINITIONS``);
    a KPI whose table is missing is empty in every month (:func:`absent_kpis` says why)."""
    first_day, end = history_span(tables)
    months = complete_months(first_day, end, since, until)
    frame = pd.DataFrame({"month": months.starts})
    if not months.starts:
        return frame.reindex(columns=["month", *DEFINITIONS])

    def add(expr: ir.Table) -> None:
        nonlocal frame
        part = expr.execute()
        part["month"] = pd.to_datetime(part["month"]).dt.date
        frame = frame.merge(part, on="month", how="left")

    subscriptions = tables.get("subscriptions")
    events = tables["usage_events"]
    if subscriptions is not None:
        add(revenue_kpis(subscriptions, months, backend))
        add(adoption_kpis(events, subscriptions, months, key_events, backend))
    if "surveys" in tables:
        add(survey_kpis(tables["surveys"], months))
    if "tickets" in tables:
        add(ticket_kpis(tables["tickets"], months))
    add(onboarding_kpis(tables["accounts"], events, months, key_events))
    add(usage_kpis(events, months))
    return _derive(frame)


def _ratio(top: pd.Series, bottom: pd.Series) -> pd.Series:
    bottom = bottom.astype("float64")
    return (top.astype("float64") / bottom.where(bottom > 0)).astype("float64")


def _derive(frame: pd.DataFrame) -> pd.DataFrame:
    """Rates from the counts and sums; zero-count months give empty (not zero) rates."""
    out = frame.copy()
    counts = [c for c in ("active_accounts", "churned_accounts", "new_accounts", "nps_responses",
                          "csat_responses", "ttfv_accounts") if c in out]
    out[counts] = out[counts].fillna(0).astype("int64")
    if "active_accounts" in out:
        out["logo_churn_rate"] = _ratio(out["churned_accounts"], out["active_accounts"])
        kept = out["mrr_start"] - out["contraction_mrr"] - out["churned_mrr"]
        out["grr"] = _ratio(kept, out["mrr_start"])
        out["nrr"] = _ratio(kept + out["expansion_mrr"], out["mrr_start"])
        out["feature_adoption_rate"] = _ratio(out.pop("adopting").fillna(0),
                                              out.pop("adoption_base"))
    if "nps_responses" in out:
        out["nps"] = 100.0 * _ratio(out.pop("promoters") - out.pop("detractors"),
                                    out["nps_responses"])
    if "user_days" in out:
        days = pd.Series([(_next_month(m) - m).days for m in out["month"]], index=out.index)
        out["dau_mau"] = _ratio(out.pop("user_days") / days, out.pop("mau"))
    return out.reindex(columns=["month", *DEFINITIONS])


def month_arg(text: str | None) -> date | None:
    """``YYYY-MM`` (or a full date) as the first day of that month."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text if len(text) > 7 else f"{text}-01")
    except ValueError as error:
        raise ValueError(f"{text!r} is not a month: use YYYY-MM") from error
    return day.replace(day=1)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: dates as ISO strings, missing values as null."""
    rows = []
    for row in frame.to_dict(orient="records"):
        rows.append({str(k): (v.isoformat() if isinstance(v, date) else
                         None if pd.isna(v) else v.item() if hasattr(v, "item") else v)
                     for k, v in row.items()})
    return rows



# --------------------------------------------------------------------------- the KPI report

REPORT_NAME = "kpis.json"


def raw_fingerprint(settings: Settings) -> str:
    """Changes whenever the raw files change (name, size, modification time); a database URL
    has no such fingerprint and is recomputed each time."""
    data = settings.data or str(settings.layout.raw)
    folder = Path(data)
    if not folder.is_dir():
        return f"url:{data}:{datetime.now(UTC).isoformat()}"
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}\n"
                          .encode())
    return digest.hexdigest()


def health_tiers(scores: Path) -> dict[str, dict[str, int]]:
    """Accounts by risk tier in each score table under ``scores``, by as_of."""
    out: dict[str, dict[str, int]] = {}
    for path in sorted(scores.glob("*.parquet")):
        tiers = pq.read_table(path, columns=["tier"]).column("tier").to_pandas()
        out[path.stem] = {t: int((tiers == t).sum()) for t in ("high", "medium", "low")}
    return out


def compute_report(settings: Settings, history: History, since: date | None = None,
                   until: date | None = None) -> dict[str, Any]:
    """The KPIs of every complete month (or of [since, until]) from the validated history;
    the full report is also written to HOME/reports/kpis.json for the server to read."""
    fingerprint = raw_fingerprint(settings)
    frame = monthly_kpis(history.tables, history.backend, tuple(settings.key_events),
                         since, until)
    report = {"fingerprint": fingerprint,
              "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "definitions": DEFINITIONS, "absent": absent_kpis(history.tables),
              "months": records(frame)}
    if since is None and until is None:
        path = settings.layout.reports / REPORT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1) + "\n")
        os.replace(tmp, path)
    return report


def read_report(settings: Settings) -> dict[str, Any] | None:
    """The written report if the raw history has not changed since."""
    path = settings.layout.reports / REPORT_NAME
    if not path.is_file():
        return None
    report: dict[str, Any] = json.loads(path.read_text())
    return report if report.get("fingerprint") == raw_fingerprint(settings) else None
