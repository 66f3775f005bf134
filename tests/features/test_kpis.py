"""Portfolio KPIs against a tiny company computed by hand (the comments show the sums)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from churnlens.features.kpis import DEFINITIONS, complete_months, monthly_kpis
from churnlens.raw.loader import open_source
from churnlens.raw.mapping import Mapping
from churnlens.raw.validation import validate_history
from conftest import churnlens, write_tables

NOW = datetime(2024, 12, 31)
KEY_EVENTS = ("workflow_run", "report_create", "integration_sync")


def _account(account_id: str, created: datetime) -> dict[str, object]:
    return {"account_id": account_id, "name": account_id.upper(), "created_at": created,
            "industry": "software", "region": "NA", "csm": None}


def _sub(account_id: str, sub_id: str, mrr: float, start: date, end: date | None
         ) -> dict[str, object]:
    return {"account_id": account_id, "subscription_id": sub_id, "plan": "growth", "seats": 5,
            "mrr": mrr, "billing_period": "monthly", "start_date": start, "end_date": end}


def _event(account_id: str, user: str, ts: datetime, event: str) -> dict[str, object]:
    return {"account_id": account_id, "user_id": f"{account_id}-{user}", "event_ts": ts,
            "event": event, "quantity": 1.0}


def _ticket(ticket_id: str, created: datetime, csat: float | None) -> dict[str, object]:
    return {"ticket_id": ticket_id, "account_id": "a1", "created_at": created,
            "resolved_at": None, "priority": "low", "category": "bug", "csat": csat}


def _answer(response_id: str, at: datetime, score: int) -> dict[str, object]:
    return {"response_id": response_id, "account_id": "a1", "user_id": "a1-u1",
            "responded_at": at, "score": score, "comment": None}


def company() -> dict[str, list[dict[str, object]]]:
    """Four accounts over January-March 2024 (April incomplete: the last event is April 3rd).

    MRR held at the start of each month:
      Feb 1: a1 100, a2 200, a3 300              (all three signed in January)
      Mar 1: a1 100, a3 300, a4 50               (a2 ended Feb 20; a4 signed Feb 3)
      Apr 1: a1 150, a3 250, a4 50               (a1 up 50 on Mar 10, a3 down 50 on Mar 15)
    """
    return {
        "accounts": [_account("a1", datetime(2024, 1, 5)), _account("a2", datetime(2024, 1, 10)),
                     _account("a3", datetime(2024, 1, 20)), _account("a4", datetime(2024, 2, 3))],
        "subscriptions": [
            _sub("a1", "s1", 100.0, date(2024, 1, 5), date(2024, 3, 10)),
            _sub("a1", "s2", 150.0, date(2024, 3, 10), None),
            _sub("a2", "s3", 200.0, date(2024, 1, 10), date(2024, 2, 20)),
            _sub("a3", "s4", 300.0, date(2024, 1, 20), date(2024, 3, 15)),
            _sub("a3", "s5", 250.0, date(2024, 3, 15), None),
            _sub("a4", "s6", 50.0, date(2024, 2, 3), None),
        ],
        "usage_events": [
            _event("a1", "u1", datetime(2024, 1, 6, 10), "dashboard_view"),
            _event("a1", "u1", datetime(2024, 1, 7, 12), "workflow_run"),
            _event("a1", "u2", datetime(2024, 1, 7, 13), "dashboard_view"),
            _event("a2", "u1", datetime(2024, 1, 11), "workflow_run"),
            _event("a3", "u1", datetime(2024, 1, 21, 9), "dashboard_view"),
            _event("a1", "u1", datetime(2024, 2, 5, 9), "workflow_run"),
            _event("a3", "u1", datetime(2024, 2, 5, 10), "dashboard_view"),
            _event("a4", "u1", datetime(2024, 2, 13), "report_create"),
            _event("a1", "u1", datetime(2024, 3, 2, 9), "dashboard_view"),
            _event("a4", "u1", datetime(2024, 3, 20, 9), "workflow_run"),
            _event("a3", "u1", datetime(2024, 3, 20, 10), "integration_sync"),
            _event("a1", "u1", datetime(2024, 4, 3, 9), "dashboard_view"),
        ],
        "tickets": [_ticket("t1", datetime(2024, 2, 2), 4.0),
                    _ticket("t2", datetime(2024, 2, 9), 2.0),
                    _ticket("t3", datetime(2024, 2, 10), None),
                    _ticket("t4", datetime(2024, 3, 3), 5.0)],
        "surveys": [_answer("r1", datetime(2024, 2, 1, 9), 10),
                    _answer("r2", datetime(2024, 2, 2), 9),
                    _answer("r3", datetime(2024, 2, 3), 7), _answer("r4", datetime(2024, 2, 4), 3),
                    _answer("r5", datetime(2024, 3, 4), 6)],
    }


@pytest.fixture(scope="module")
def kpis(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    folder = write_tables(tmp_path_factory.mktemp("kpis") / "raw", company())
    history = validate_history(open_source(folder, Mapping()), now=NOW, strict=True)
    return monthly_kpis(history.tables, history.backend, KEY_EVENTS).set_index("month")


def test_only_complete_months_are_reported(kpis: pd.DataFrame) -> None:
    assert list(kpis.index) == [date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)]
    assert set(kpis.columns) == set(DEFINITIONS)
    assert complete_months(date(2024, 1, 6), date(2024, 4, 4), since=date(2024, 2, 1),
                           until=date(2024, 2, 1)).starts == [date(2024, 2, 1)]


def test_logo_churn_and_revenue_retention(kpis: pd.DataFrame) -> None:
    jan, feb, mar = (kpis.loc[date(2024, m, 1)] for m in (1, 2, 3))
    assert (jan["active_accounts"], jan["new_accounts"]) == (0, 3)
    assert pd.isna(jan["logo_churn_rate"]) and pd.isna(jan["grr"])  # nobody to lose yet
    # February: 600 at the start, a2's 200 lost, a4 new
    assert (feb["active_accounts"], feb["churned_accounts"], feb["new_accounts"]) == (3, 1, 1)
    assert feb["logo_churn_rate"] == pytest.approx(1 / 3)
    assert (feb["mrr_start"], feb["churned_mrr"]) == (600.0, 200.0)
    assert (feb["expansion_mrr"], feb["contraction_mrr"]) == (0.0, 0.0)
    assert feb["grr"] == pytest.approx(400 / 600) and feb["nrr"] == pytest.approx(400 / 600)
    # March: 450 at the start, a1 +50, a3 -50, nobody lost
    assert (mar["mrr_start"], mar["expansion_mrr"], mar["contraction_mrr"]) == (450.0, 50.0,
                                                                                  50.0)
    assert mar["churned_accounts"] == 0 and mar["logo_churn_rate"] == 0.0
    assert mar["grr"] == pytest.approx(400 / 450) and mar["nrr"] == pytest.approx(1.0)


def test_nps_and_csat(kpis: pd.DataFrame) -> None:
    jan, feb, mar = (kpis.loc[date(2024, m, 1)] for m in (1, 2, 3))
    assert jan["nps_responses"] == 0 and pd.isna(jan["nps"])
    # February: 10, 9 promote; 7 passive; 3 detracts -> (2 - 1) / 4
    assert (feb["nps_responses"], feb["nps"]) == (4, pytest.approx(25.0))
    assert (mar["nps_responses"], mar["nps"]) == (1, pytest.approx(-100.0))
    # February: 4 and 2 (the ticket without a CSAT does not count)
    assert (feb["csat_responses"], feb["csat"]) == (2, pytest.approx(3.0))
    assert (mar["csat_responses"], mar["csat"]) == (1, pytest.approx(5.0))
    assert jan["csat_responses"] == 0 and pd.isna(jan["csat"])


def test_time_to_first_value_stickiness_and_adoption(kpis: pd.DataFrame) -> None:
    jan, feb, mar = (kpis.loc[date(2024, m, 1)] for m in (1, 2, 3))
    # January signups: a1 after 2.5 days, a2 after 1, a3 after 60 days 10 hours -> median 2.5
    assert (jan["ttfv_accounts"], jan["median_ttfv_days"]) == (3, pytest.approx(2.5))
    assert (feb["ttfv_accounts"], feb["median_ttfv_days"]) == (1, pytest.approx(10.0))
    # user-days / days in month / monthly users: Jan 5/31/4, Feb 3/29/3, Mar 3/31/3
    assert jan["dau_mau"] == pytest.approx(5 / 31 / 4)
    assert feb["dau_mau"] == pytest.approx(3 / 29 / 3)
    assert mar["dau_mau"] == pytest.approx(3 / 31 / 3)
    # active at the start with a key event in the month: Feb a1 of a1-a3; Mar a3, a4 of a1,a3,a4
    assert pd.isna(jan["feature_adoption_rate"])
    assert feb["feature_adoption_rate"] == pytest.approx(1 / 3)
    assert mar["feature_adoption_rate"] == pytest.approx(2 / 3)


@pytest.mark.e2e
def test_the_kpis_command(tmp_path: Path) -> None:
    write_tables(tmp_path / "raw", company())
    env = {"CHURNLENS_NOW": NOW.isoformat()}
    printed = churnlens(tmp_path, "kpis", "--from", "2024-02", "--to", "2024-03", env=env)
    assert "2024-02" in printed.stdout and "2024-01" not in printed.stdout
    rows = json.loads(churnlens(tmp_path, "kpis", "--json", env=env).stdout)["months"]
    assert [r["month"] for r in rows] == ["2024-01-01", "2024-02-01", "2024-03-01"]
    assert rows[1]["grr"] == pytest.approx(400 / 600) and rows[0]["grr"] is None
    refused = churnlens(tmp_path, "kpis", "--from", "February", env=env, check=False)
    assert refused.returncode == 2 and "YYYY-MM" in refused.stderr


@pytest.mark.e2e
def test_the_kpis_of_a_history_without_subscriptions(tmp_path: Path) -> None:
    """Only accounts and usage events: the revenue, adoption, NPS and CSAT KPIs are absent
    (null, with the table each needs), never zero; the usage ones are as with subscriptions."""
    tables = company()
    write_tables(tmp_path / "raw", {name: tables[name] for name in ("accounts", "usage_events")})
    env = {"CHURNLENS_NOW": NOW.isoformat()}
    report = json.loads(churnlens(tmp_path, "kpis", "--json", env=env).stdout)
    assert report["absent"]["grr"] == "needs the subscriptions table"
    assert report["absent"]["nps"] == "needs the surveys table"
    assert "dau_mau" not in report["absent"] and "median_ttfv_days" not in report["absent"]
    february = report["months"][1]
    for kpi in ("active_accounts", "logo_churn_rate", "grr", "nrr", "expansion_mrr",
                "feature_adoption_rate", "nps", "csat"):
        assert february[kpi] is None, kpi
    assert february["dau_mau"] == pytest.approx(3 / 29 / 3)
    printed = " ".join(churnlens(tmp_path, "kpis", env=env).stdout.split())
    assert "Absent: active, logo churn, GRR, NRR" in printed
