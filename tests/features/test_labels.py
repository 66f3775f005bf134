"""Labels worked out by hand: subscription churn and expansion, inactivity churn and expansion.

Snapshot day T = 2024-03-01; the label window is [T, T + 90) (T + 89 = 2024-05-29 is its last
day), the grace period 30 days and an expansion is +10% MRR (SnapshotSpec defaults). Each
account is one case, named after it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from churnlens.features.registry import declared
from churnlens.features.snapshots import SnapshotSpec, plan, snapshot_table
from churnlens.raw.loader import open_source
from churnlens.raw.mapping import Mapping
from churnlens.raw.validation import validate_history
from conftest import write_tables

T = date(2024, 3, 1)
NOW = datetime(2024, 12, 31)
SIGNUP = datetime(2023, 1, 1, 9)


def at(days: int, hour: int = 12) -> datetime:
    return datetime.combine(T + timedelta(days=days), time(hour))


def on(days: int) -> date:
    return T + timedelta(days=days)


def _account(account_id: str) -> dict[str, Any]:
    return {"account_id": account_id, "name": account_id, "created_at": SIGNUP,
            "industry": "software", "region": "NA", "csm": None}


def _event(account_id: str, when: datetime, quantity: float = 1.0,
           event: str = "dashboard_view") -> dict[str, Any]:
    return {"account_id": account_id, "user_id": f"{account_id}-u1", "event_ts": when,
            "event": event, "quantity": quantity}


def _frame(folder: Path, spec: SnapshotSpec, dates: list[date],
           required: tuple[str, ...] | None = None) -> pd.DataFrame:
    history = validate_history(open_source(folder, Mapping(), required=required), now=NOW,
                               strict=True, required=required)
    out = snapshot_table(history.tables, history.backend, spec,
                         plan(history.tables, spec, dates=dates)).execute()
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    return out


def _labels(frame: pd.DataFrame, as_of: date) -> dict[str, tuple[Any, Any]]:
    rows = frame[frame["as_of"] == as_of]
    return {r.account_id: (r.churned, r.expanded) for r in rows.itertuples()}


def _churn_days(frame: pd.DataFrame, as_of: date) -> dict[str, Any]:
    """Churners' churn_day at ``as_of``; every other labelled row must have none."""
    rows = frame[frame["as_of"] == as_of]
    assert rows.loc[~rows["churned"].astype(bool), "churn_day"].isna().all()
    return {r.account_id: int(r.churn_day) for r in rows.itertuples() if r.churned}


# --------------------------------------------------------------------------- subscription mode

# account: list of (start, end, mrr) periods; the first one starts long before T
PERIODS: dict[str, list[tuple[date, date | None, float]]] = {
    "churn_last_day": [(date(2023, 1, 1), on(89), 100.0)],  # ends on T + 89: inside
    "churn_day_after": [(date(2023, 1, 1), on(90), 100.0)],  # ends on T + 90: outside
    "ends_on_as_of": [(date(2023, 1, 1), on(0), 100.0)],  # held at T, ends on T: inside
    "grace_restart": [(date(2023, 1, 1), on(20), 100.0),  # 10-day lapse, back within grace
                      (on(30), None, 100.0)],
    "late_restart": [(date(2023, 1, 1), on(20), 100.0),  # 45-day lapse: past grace
                     (on(65), None, 100.0)],
    "restart_after_window": [(date(2023, 1, 1), on(80), 100.0),  # back after 15 days, but
                             (on(95), None, 100.0)],  # only after the window has closed
    "plan_change": [(date(2023, 1, 1), on(40), 100.0),  # a seamless change of plan
                    (on(40), None, 100.0)],
    "expand_10": [(date(2023, 1, 1), on(30), 100.0),  # exactly +10%
                  (on(30), None, 110.0)],
    "expand_9": [(date(2023, 1, 1), on(30), 100.0),  # +9%
                 (on(30), None, 109.0)],
    "expand_after_window": [(date(2023, 1, 1), on(90), 100.0),  # doubles on T + 90
                            (on(90), None, 200.0)],
    "lapsed_before": [(date(2023, 1, 1), on(-1), 100.0)],  # gone the day before T
}

EXPECTED_SUBSCRIPTION = {
    # account: (churned, expanded) at T
    "churn_last_day": (True, False),
    "churn_day_after": (False, False),
    "ends_on_as_of": (True, False),
    "grace_restart": (False, False),
    "late_restart": (True, False),
    "restart_after_window": (True, False),
    "plan_change": (False, False),
    "expand_10": (False, True),
    "expand_9": (False, False),
    "expand_after_window": (False, False),
    # lapsed_before: not a customer at T, so no snapshot
}
EXPECTED_SUBSCRIPTION_CHURN_DAY = {
    # churners: days from T to the end of the subscription that was not renewed within grace
    "churn_last_day": 89, "ends_on_as_of": 0, "late_restart": 20, "restart_after_window": 80,
}


def subscription_company() -> dict[str, list[dict[str, Any]]]:
    subscriptions = []
    for account, periods in PERIODS.items():
        for i, (start, end, mrr) in enumerate(periods):
            subscriptions.append({
                "account_id": account, "subscription_id": f"{account}-{i}", "plan": "growth",
                "seats": 10, "mrr": mrr, "billing_period": "monthly", "start_date": start,
                "end_date": end})
    return {"accounts": [_account(a) for a in PERIODS],
            "subscriptions": subscriptions,
            "usage_events": [_event(a, at(-5)) for a in PERIODS]}


@pytest.fixture(scope="module")
def subscription_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tables(tmp_path_factory.mktemp("labels") / "raw", subscription_company())


def test_subscription_labels(subscription_folder: Path) -> None:
    # history ends exactly where T's window does: T is labelled, T + 31 is not
    later = on(31)
    frame = _frame(subscription_folder, SnapshotSpec(history_end=on(90)), [T, later])
    labels = _labels(frame, T)
    assert labels == EXPECTED_SUBSCRIPTION
    assert _churn_days(frame, T) == EXPECTED_SUBSCRIPTION_CHURN_DAY
    assert frame.loc[frame["as_of"] == T, "labelled"].tolist() == [True] * len(labels)
    open_rows = frame[frame["as_of"] == later]
    assert len(open_rows) > 0
    assert not open_rows["labelled"].any()
    assert open_rows["churned"].isna().all() and open_rows["expanded"].isna().all()
    assert open_rows["churn_day"].isna().all()


def test_labels_are_null_when_the_window_runs_past_the_history(
        subscription_folder: Path) -> None:
    frame = _frame(subscription_folder, SnapshotSpec(history_end=on(89)), [T])
    assert len(frame) == len(EXPECTED_SUBSCRIPTION)
    assert not frame["labelled"].any()
    assert frame["churned"].isna().all() and frame["expanded"].isna().all()


# --------------------------------------------------------------------------- inactivity mode

QUIET = 30
"""inactivity_days: the population at T is whoever acted in [T - 30, T)."""

# account: (days relative to T, quantity) of its events
ACTIVITY: dict[str, list[tuple[int, float]]] = {
    # last event 30 days before T: a customer at T, silent for 30 days by the end of T
    "silent_at_t": [(-91, 100.0), (-90, 1.0), (-30, 1.0)],
    # last event 31 days before T: not a customer at T
    "gone": [(-31, 1.0)],
    # never 30 days quiet inside the window (the event on T + 99 is after it);
    # quantity 110 inside the window against 100 in the 90 days before: exactly +10%
    "steady_plus_10": [(-1, 100.0), (19, 20.0), (39, 30.0), (59, 30.0), (79, 30.0),
                       (99, 1000.0)],
    # gaps of exactly 30 days are not 30 quiet days; 109 against 100: +9%
    "steady_plus_9": [(-5, 100.0), (25, 30.0), (50, 30.0), (75, 49.0), (100, 1000.0)],
    # quiet from T - 4 to T + 25 (30 days) before coming back on T + 26: churned
    "gap_31": [(-5, 10.0), (26, 1.0), (50, 1.0), (75, 1.0)],
    # last event T + 59: 30 quiet days end on T + 89, the window's last day
    "silence_ends_last_day": [(-1, 10.0), (29, 1.0), (59, 1.0)],
    # last event T + 60: 30 quiet days end on T + 90, after the window
    "silence_ends_after": [(-1, 10.0), (29, 1.0), (59, 1.0), (60, 1.0)],
    # the event on T belongs to the window, not to the past; quiet from T + 1 to T + 30
    "event_on_as_of": [(-10, 5.0), (0, 6.0)],
    # last event 190 days before T: a customer only for an inactivity period above 190 days
    "quiet_190": [(-190, 1.0)],
}

EXPECTED_INACTIVITY = {
    # account: (churned, expanded) at T; expanded = window quantity >= 1.1 x the 90 days before
    "silent_at_t": (True, False),  # before: 1 + 1 (T - 91 is outside), window: 0
    "steady_plus_10": (False, True),  # 110 >= 110
    "steady_plus_9": (False, False),  # 109 < 110
    "gap_31": (True, False),  # 3 < 11
    "silence_ends_last_day": (True, False),  # 2 < 11
    "silence_ends_after": (False, False),  # 3 < 11
    "event_on_as_of": (True, True),  # 6 >= 5.5
}
EXPECTED_INACTIVITY_CHURN_DAY = {
    # the first day the account had gone 30 days without an event, from T
    "silent_at_t": 0, "gap_31": 25, "silence_ends_last_day": 89, "event_on_as_of": 30,
}

ABSENT_WITHOUT_SUBSCRIPTIONS_TICKETS_SURVEYS = {
    # commercial, from subscriptions
    "mrr", "arr", "seats", "plan", "billing_period", "days_to_renewal", "mrr_change_90d",
    "downgrades_365d", "expansions_365d", "discount_share", "mrr_change_share_90d",
    # per seat
    "seat_utilisation_30d", "seat_utilisation_7d", "events_per_seat_30d",
    "key_actions_per_seat_30d", "seats_activated_share_30d", "onboarding_stalled",
    # support
    "tickets_30d", "tickets_90d", "tickets_prev_90d", "high_urgent_tickets_90d", "open_tickets",
    "median_resolution_hours_90d", "mean_csat_90d", "low_csat_tickets_90d",
    "repeat_category_tickets_90d", "days_since_last_ticket", "tickets_per_10_seats_90d",
    "tickets_change_90d",
    # satisfaction
    "last_nps", "mean_nps_180d", "mean_nps_prev_180d", "nps_responses_180d",
    "detractor_share_180d", "promoter_share_180d", "days_since_last_nps", "nps_180d",
    "nps_change_180d", "nps_response_rate_180d",
    # money, without a money_event setting
    "spend_90d", "spend_365d", "spend_prev_90d", "purchase_days_365d", "order_value_365d",
    "spend_rate_365d", "spend_trend_90d",
}

ONLY_USAGE = ("accounts", "usage_events")


def inactivity_company() -> dict[str, list[dict[str, Any]]]:
    events = [_event(a, at(d, 0 if d == 0 else 12), q) for a, days in ACTIVITY.items()
              for d, q in days]
    # event_on_as_of's first key action, 10 days before T (2024-02-20, day 415 after signup)
    events.append(_event("event_on_as_of", at(-10), 0.0, event="workflow_run"))
    return {"accounts": [_account(a) for a in ACTIVITY], "usage_events": events}


@pytest.fixture(scope="module")
def inactivity_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tables(tmp_path_factory.mktemp("inactivity") / "raw", inactivity_company())


def test_inactivity_plan_reports_the_features_it_cannot_compute(
        inactivity_folder: Path) -> None:
    history = validate_history(open_source(inactivity_folder, Mapping(), required=ONLY_USAGE),
                               now=NOW, strict=True, required=ONLY_USAGE)
    spec = SnapshotSpec(churn_definition="inactivity", inactivity_days=QUIET)
    snapshot_plan = plan(history.tables, spec, dates=[T])
    assert set(snapshot_plan.absent_features) == ABSENT_WITHOUT_SUBSCRIPTIONS_TICKETS_SURVEYS
    assert not set(snapshot_plan.features) & ABSENT_WITHOUT_SUBSCRIPTIONS_TICKETS_SURVEYS
    assert snapshot_plan.generated, "the event vocabulary needs only usage events"
    assert len(snapshot_plan.features) == (len(declared()) + len(snapshot_plan.generated)
                                           - len(ABSENT_WITHOUT_SUBSCRIPTIONS_TICKETS_SURVEYS))
    assert snapshot_plan.absent_reason["spend_rate_365d"] == "needs the money_event setting"
    assert snapshot_plan.absent_reason["mrr"] == "needs subscriptions"
    assert snapshot_plan.absent_reason["open_tickets"] == "needs tickets"
    assert snapshot_plan.absent_reason["tickets_per_10_seats_90d"] == (
        "needs subscriptions, tickets")


def test_inactivity_labels_and_features(inactivity_folder: Path) -> None:
    spec = SnapshotSpec(churn_definition="inactivity", inactivity_days=QUIET,
                        history_end=on(101))
    frame = _frame(inactivity_folder, spec, [T], required=ONLY_USAGE)
    # population: an event in [T - 30, T); "gone" acted 31 days before T
    assert _labels(frame, T) == EXPECTED_INACTIVITY
    assert _churn_days(frame, T) == EXPECTED_INACTIVITY_CHURN_DAY
    assert frame["labelled"].all()
    assert not set(frame.columns) & ABSENT_WITHOUT_SUBSCRIPTIONS_TICKETS_SURVEYS
    row = frame.set_index("account_id")
    assert row["days_since_last_activity"].to_dict() == {
        "silent_at_t": 30, "steady_plus_10": 1, "steady_plus_9": 5, "gap_31": 5,
        "silence_ends_last_day": 1, "silence_ends_after": 1, "event_on_as_of": 10}
    assert row.loc["silent_at_t", "events_30d"] == 1  # T - 30 only
    assert row.loc["silent_at_t", "usage_quantity_30d"] == 1.0
    assert row.loc["event_on_as_of", "usage_quantity_30d"] == 5.0  # T itself is not seen
    assert row.loc["event_on_as_of", "key_actions_30d"] == 1
    assert row.loc["event_on_as_of", "first_value_reached"] == 1
    assert row.loc["event_on_as_of", "time_to_first_value_days"] == 415
    assert row.loc["gap_31", "first_value_reached"] == 0
    assert pd.isna(row.loc["gap_31", "time_to_first_value_days"])
    assert (row["tenure_days"] == 425).all()  # 2023-01-01 to 2024-03-01


def test_inactivity_period_longer_than_the_usage_look_back(inactivity_folder: Path) -> None:
    """With 200 quiet days, an account last seen 190 days before T is still a customer."""
    spec = SnapshotSpec(churn_definition="inactivity", inactivity_days=200,
                        history_end=on(101))
    frame = _frame(inactivity_folder, spec, [T], required=ONLY_USAGE).set_index("account_id")
    assert sorted(frame.index) == sorted(ACTIVITY)  # everyone acted in [T - 200, T)
    quiet = frame.loc["quiet_190"]
    # its 200 quiet days end on T - 190 + 200 = T + 10, inside the window; nothing in the 90
    # days before T, so no expansion; usage features look back a year
    assert (quiet["churned"], quiet["expanded"]) == (True, False)
    assert quiet["days_since_last_activity"] == 190
    assert quiet["active_users_90d"] == 0
    # 200 quiet days never fit inside the 90-day window for an account active just before T
    assert not frame.drop(index="quiet_190")["churned"].any()
