"""Every registered feature against values worked out by hand on a small made-up company.

The company is built around one snapshot day ``T`` (2024-03-01, so ``T - 1`` is 29 February)
and is small enough to check with pencil and paper. Rows are placed on the edges the definitions
talk about: exactly on ``as_of`` (never seen), exactly 7, 30, 31, 60, 61, 90, 91, 180, 181, 365
and 366 days before it ("the N days before as_of" means day >= as_of - N), tickets resolved on
or after ``as_of`` (still open, their rating and resolution time unknown), a subscription ending
after ``as_of`` (not known yet) and a price seen only later. Accounts:

* ``acme``  busy, growth plan, seats 10 -> 12 (expansion), many tickets and NPS answers.
* ``bolt``  annual enterprise plan, downgraded 40 -> 30 seats at a lower price per seat
            (discount), stalled onboarding, NPS answers only in the older half-year.
* ``cara``  signed up 20 days before T, onboarding window still open, no tickets, no surveys.
* ``dove``  annual starter plan ending 10 days after T, no usage in 180 days, no tickets or
            surveys in the look-back.
* ``echo``  lapsed (not a customer at T), restarts exactly on T: absent at T, present at T2.

The expected values are literals with the arithmetic in comments. A feature added to the
registry without an expected value here fails ``test_every_feature_has_a_hand_computed_value``.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
import pytest

from churnlens.features.registry import declared, load_all
from churnlens.features.snapshots import SnapshotSpec, plan, snapshot_table
from churnlens.raw.loader import open_source
from churnlens.raw.mapping import Mapping
from churnlens.raw.validation import validate_history
from conftest import write_tables

T = date(2024, 3, 1)
T2 = date(2024, 4, 1)
NOW = datetime(2024, 12, 31)
TOLERANCE = 1e-9
MONEY_EVENT = "api_call"
"""The event read as money here: acme's 10 (age 30), bolt's 100 + 100 (age 3) and 50 (age 40)."""


def at(days: int, hour: int = 12, minute: int = 0) -> datetime:
    """The moment ``days`` days after the start of day T (negative: before T), at hour:minute."""
    return datetime.combine(T + timedelta(days=days), time(hour, minute))


def on(days: int) -> date:
    return T + timedelta(days=days)


def _rows(columns: tuple[str, ...], values: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in values]


def company() -> dict[str, list[dict[str, Any]]]:
    accounts = _rows(
        ("account_id", "name", "created_at", "industry", "region", "csm"), [
            ("acme", "Acme", datetime(2023, 1, 10, 9), "software", "NA", "Jordan Lee"),
            ("bolt", "Bolt", datetime(2022, 6, 15, 10), "retail", "EMEA", None),
            ("cara", "Cara", datetime(2024, 2, 10, 8), "fintech", "APAC", "Sam Ortiz"),
            ("dove", "Dove", datetime(2023, 5, 1, 12), "health", "NA", None),
            ("echo", "Echo", datetime(2022, 12, 1, 9), "media", "EMEA", "Jordan Lee"),
        ])
    subscriptions = _rows(
        ("account_id", "subscription_id", "plan", "seats", "mrr", "billing_period",
         "start_date", "end_date"), [
            # acme: 10 seats at 50/seat, then 12 seats at 50/seat, then (after T) 15 at 60/seat
            ("acme", "sA1", "growth", 10, 500.0, "monthly", date(2023, 1, 10), date(2023, 12, 15)),
            ("acme", "sA2", "growth", 12, 600.0, "monthly", date(2023, 12, 15), on(20)),
            ("acme", "sA3", "growth", 15, 900.0, "monthly", on(20), None),
            # bolt: annual, 40 seats at 100/seat, then 30 seats at 90/seat
            ("bolt", "sB1", "enterprise", 40, 4000.0, "annual", date(2022, 6, 15),
             date(2023, 6, 15)),
            ("bolt", "sB2", "enterprise", 30, 2700.0, "annual", date(2023, 6, 15), None),
            # cara: 20 seats at 40/seat, started two days after signup
            ("cara", "sC1", "growth", 20, 800.0, "monthly", date(2024, 2, 12), None),
            # dove: annual starter at 20/seat, ends 10 days after T (not known at T)
            ("dove", "sD1", "starter", 3, 60.0, "annual", date(2023, 5, 1), on(10)),
            # echo: starter at 30/seat until 2023-10-01, restarts on T itself at 40/seat
            ("echo", "sE1", "starter", 2, 60.0, "monthly", date(2023, 1, 1), date(2023, 10, 1)),
            ("echo", "sE2", "starter", 2, 80.0, "monthly", on(0), None),
        ])
    usage_events = _rows(
        ("account_id", "user_id", "event_ts", "event", "quantity"), [
            # acme, around T (ages: days before T)
            ("acme", "a-u1", at(0, 0), "workflow_run", 5.0),        # on as_of: never seen
            ("acme", "a-u1", at(-1, 23), "workflow_run", 1.0),      # age 1
            ("acme", "a-u1", at(-1, 10), "dashboard_view", 1.0),    # age 1, same user-day
            ("acme", "a-u2", at(-7, 9), "report_create", 2.0),      # age 7
            ("acme", "a-u3", at(-8, 9), "dashboard_view", 1.0),     # age 8
            ("acme", "a-u1", at(-15), "workflow_run", 2.0),         # age 15
            ("acme", "a-u1", at(-30, 0), "api_call", 10.0),         # age 30 (first moment)
            ("acme", "a-u4", at(-31, 23, 59), "export", 3.0),       # age 31 (last moment)
            ("acme", "a-u2", at(-45), "workflow_run", 1.0),         # age 45
            ("acme", "a-u2", at(-60), "dashboard_view", 1.0),       # age 60
            ("acme", "a-u3", at(-61), "dashboard_view", 1.0),       # age 61
            ("acme", "a-u4", at(-90), "integration_sync", 1.0),     # age 90
            ("acme", "a-u5", at(-91), "dashboard_view", 1.0),       # age 91
            ("acme", "a-u5", at(-100), "api_call", 4.0),            # age 100
            ("acme", "a-u5", at(-180), "dashboard_view", 1.0),      # age 180
            ("acme", "a-u6", at(-181), "dashboard_view", 1.0),      # age 181: out of look-back
            # acme onboarding (signed up 2023-01-10): first 30 days end before 2023-02-09
            ("acme", "a-u1", datetime(2023, 1, 11, 10), "dashboard_view", 1.0),
            ("acme", "a-u2", datetime(2023, 1, 20, 10), "workflow_run", 1.0),  # first key action
            ("acme", "a-u7", datetime(2023, 2, 8, 23), "dashboard_view", 1.0),  # signup + 29
            ("acme", "a-u8", datetime(2023, 2, 9, 0), "dashboard_view", 1.0),   # signup + 30
            # bolt
            ("bolt", "b-u1", at(-3, 9), "api_call", 100.0),         # age 3
            ("bolt", "b-u1", at(-3, 17), "api_call", 100.0),        # age 3, same user-day
            ("bolt", "b-u1", at(-40), "api_call", 50.0),            # age 40
            ("bolt", "b-u2", at(-29), "integration_sync", 1.0),     # age 29
            ("bolt", "b-u2", at(-150), "dashboard_view", 1.0),      # age 150
            # bolt onboarding (signed up 2022-06-15): window ends before 2022-07-15
            ("bolt", "b-u1", datetime(2022, 6, 20, 10), "dashboard_view", 1.0),
            ("bolt", "b-u3", datetime(2022, 7, 14, 10), "dashboard_view", 1.0),  # signup + 29
            ("bolt", "b-u2", datetime(2022, 8, 1, 10), "integration_sync", 1.0),  # key, day 47
            # cara (signed up 2024-02-10 = T - 20)
            ("cara", "c-u1", at(-20, 9), "dashboard_view", 1.0),    # age 20
            ("cara", "c-u2", at(-18, 9), "dashboard_view", 1.0),    # age 18
            ("cara", "c-u3", at(0, 0), "workflow_run", 1.0),        # on as_of: not yet seen
            # dove: only long ago
            ("dove", "d-u1", datetime(2023, 5, 2, 10), "dashboard_view", 1.0),
            ("dove", "d-u1", datetime(2023, 8, 1, 10), "workflow_run", 1.0),  # key, day 92
            # echo
            ("echo", "e-u1", at(-5), "dashboard_view", 1.0),
        ])
    tickets = _rows(
        ("ticket_id", "account_id", "created_at", "resolved_at", "priority", "category",
         "csat"), [
            ("tA1", "acme", at(-2, 9), at(-2, 21), "high", "bug", 2.0),         # 12 h
            ("tA2", "acme", at(-30, 10), at(-29, 10), "normal", "bug", 5.0),    # 24 h, age 30
            ("tA3", "acme", at(-31, 8), at(-31, 14), "urgent", "billing", 4.0),  # 6 h, age 31
            ("tA4", "acme", at(-10, 9), at(2, 9), "low", "how_to", 1.0),        # resolved later
            ("tA5", "acme", at(-5, 10), at(0, 0), "normal", "bug", 3.0),        # resolved ON T
            ("tA6", "acme", at(-90, 12), at(-89, 6), "normal", "how_to", None),  # 18 h, age 90
            ("tA7", "acme", at(-91, 12), at(-89, 12), "low", "bug", 1.0),       # 48 h, age 91
            ("tA8", "acme", at(-100, 12), None, "high", "bug", None),           # open, age 100
            ("tA9", "acme", at(0, 8), at(1, 8), "normal", "billing", 4.0),      # opened on T
            ("tA10", "acme", at(-181, 12), None, "normal", "bug", None),        # out of look-back
            ("tA11", "acme", at(-20, 9), at(-19, 15), "normal", None, 3.0),     # 30 h, no topic
            ("tB1", "bolt", at(-60, 9), at(-60, 19), "low", "billing", 1.0),    # 10 h, age 60
            ("tB2", "bolt", at(-120, 9), None, "normal", "billing", None),      # open, age 120
            ("tB3", "bolt", at(-45, 9), at(-44, 9), "urgent", "billing", 5.0),  # 24 h, age 45
            ("tD1", "dove", at(-181, 9), None, "normal", "how_to", None),       # out of look-back
            ("tE1", "echo", at(-3, 9), None, "high", "bug", None),
        ])
    surveys = _rows(
        ("response_id", "account_id", "user_id", "responded_at", "score", "comment"), [
            ("rA1", "acme", "a-u1", at(-1, 15), 10, None),   # age 1, the latest
            ("rA2", "acme", "a-u2", at(-1, 9), 4, None),     # age 1, earlier that day
            ("rA3", "acme", "a-u1", at(0, 0), 0, None),      # on as_of: never seen
            ("rA4", "acme", "a-u3", at(-180), 9, None),      # age 180
            ("rA5", "acme", "a-u1", at(-181), 2, None),      # age 181
            ("rA6", "acme", "a-u2", at(-365), 8, None),      # age 365
            ("rA7", "acme", "a-u1", at(-366), 0, None),      # age 366: out of look-back
            ("rA8", "acme", "a-u4", at(-100), 7, None),      # age 100
            ("rB1", "bolt", "b-u1", at(-200), 6, "meh"),     # age 200
            ("rE1", "echo", "e-u1", at(-10), 0, "bye"),
        ])
    return {"accounts": accounts, "subscriptions": subscriptions, "usage_events": usage_events,
            "tickets": tickets, "surveys": surveys}


ACCOUNTS = ("acme", "bolt", "cara", "dove")
"""The population at T: echo holds no subscription at the start of T (its restart is on T)."""

def _regularity(*rates: float) -> float:
    """1 minus the rates' coefficient of variation (population deviation) over sqrt(2)."""
    mean = sum(rates) / len(rates)
    deviation = math.sqrt(sum((r - mean) ** 2 for r in rates) / len(rates))
    return 1 - deviation / mean / math.sqrt(2)


EXPECTED: dict[str, tuple[Any, ...]] = {
    # feature: (acme, bolt, cara, dove) at T = 2024-03-01
    # ------------------------------------------------------------------ commercial
    "mrr": (600.0, 2700.0, 800.0, 60.0),  # sA2, sB2, sC1, sD1 (its end after T is unknown)
    "arr": (7200.0, 32400.0, 9600.0, 720.0),  # 12 x MRR
    "seats": (12, 30, 20, 3),
    "plan": ("growth", "enterprise", "growth", "starter"),
    "billing_period": ("monthly", "annual", "monthly", "annual"),
    # next anniversary of the first start: acme 2024-03-10, bolt (annual) 2024-06-15,
    # cara 2024-03-12, dove (annual) 2024-05-01
    "days_to_renewal": (9, 106, 11, 61),
    # held at T - 90 = 2023-12-02: acme sA1 (500), bolt sB2, cara nothing, dove sD1
    "mrr_change_90d": (100.0, 0.0, None, 0.0),
    # changes starting in [2023-03-02, T): acme sA2 (500 -> 600), bolt sB2 (4000 -> 2700)
    "downgrades_365d": (0, 1, 0, 0),
    "expansions_365d": (1, 0, 0, 0),
    # highest price per seat before T: growth 50 (sA3's 60 starts after T), enterprise 100,
    # starter 30 (sE1; sE2's 40 starts on T): 1 - 50/50, 1 - 90/100, 1 - 40/50, 1 - 20/30
    "discount_share": (0.0, 0.1, 0.2, 1 / 3),
    "mrr_change_share_90d": (0.2, 0.0, None, 0.0),  # 100/500, 0/2700, -, 0/60
    # T minus signup day: 2023-01-10, 2022-06-15, 2024-02-10, 2023-05-01
    "tenure_days": (416, 625, 20, 305),
    "industry": ("software", "retail", "fintech", "health"),
    "region": ("NA", "EMEA", "APAC", "NA"),
    "has_csm": (1, 0, 1, 0),
    # ------------------------------------------------------------------ onboarding
    # users first seen within 30 days of signup / seats of the first subscription:
    # acme u1, u2, u7 (u8 is day 30) / 10; bolt u1, u3 (u2 is day 47) / 40;
    # cara u1, u2 (u3 is on T) / 20; dove u1 / 3
    "seats_activated_share_30d": (0.3, 0.05, 0.1, 1 / 3),
    # first key action: acme 2023-01-20 (day 10), bolt 2022-08-01 (day 47), cara on T (not
    # seen yet), dove 2023-08-01 (day 92)
    "time_to_first_value_days": (10, 47, None, 92),
    "first_value_reached": (1, 1, 0, 1),
    # stalled: window over and share < 0.3: acme exactly 0.3 (no), bolt yes, cara in window
    "onboarding_stalled": (0, 1, 0, 0),
    # ------------------------------------------------------------------ adoption
    # acme users by age: u1 {1, 15, 30}, u2 {7, 45, 60}, u3 {8, 61}, u4 {31, 90}, u5 {91, 180}
    # bolt: u1 {3, 40}, u2 {29, 150}; cara: u1 {20}, u2 {18}; dove: none
    "active_users_7d": (2, 1, 0, 0),  # acme u1, u2; bolt u1
    "active_users_30d": (3, 2, 2, 0),  # acme u1, u2, u3
    "active_users_90d": (4, 2, 2, 0),  # acme u1-u4
    "active_users_prev_30d": (2, 1, 0, 0),  # ages 31-60: acme u4 (31), u2 (45, 60)
    "active_users_prev_90d": (1, 1, 0, 0),  # ages 91-180: acme u5; bolt u2
    # user-days in 30 days / 30 / active users: acme 5/30/3, bolt 2/30/2, cara 2/30/2
    "dau_mau_30d": (5 / 90, 1 / 30, 1 / 30, None),
    "events_30d": (6, 3, 2, 0),  # acme 2+1+1+1+1 (ages 1, 7, 8, 15, 30); bolt 2+1
    "events_prev_30d": (3, 1, 0, 0),
    "key_actions_30d": (3, 1, 0, 0),  # acme workflow_run x2 + report_create; bolt sync
    "usage_quantity_30d": (17.0, 201.0, 2.0, 0.0),  # acme 1+1+2+1+2+10; bolt 100+100+1
    "days_since_last_activity": (1, 3, 18, 213),  # dove: 2023-08-01, within the year
    "top_user_share_30d": (4 / 6, 2 / 3, 1 / 2, None),  # acme u1 4 of 6; bolt u1 2 of 3
    # acme names, ages <= 30: workflow_run, dashboard_view, report_create, api_call;
    # 31-60: export, workflow_run, dashboard_view; <= 90 adds integration_sync (age 90)
    "features_used_30d": (4, 2, 1, 0),
    "features_used_prev_30d": (3, 1, 0, 0),
    "features_used_90d": (6, 2, 1, 0),
    "active_users_trend_30d": (3 / 2, 2 / 1, None, None),
    "active_users_change_30d": (1, 1, 2, 0),
    "active_users_trend_90d": (4 / 1, 2 / 1, None, None),
    "seat_utilisation_30d": (3 / 12, 2 / 30, 2 / 20, 0.0),
    "seat_utilisation_7d": (2 / 12, 1 / 30, 0.0, 0.0),
    "events_per_seat_30d": (6 / 12, 3 / 30, 2 / 20, 0.0),
    "events_per_active_user_30d": (6 / 3, 3 / 2, 2 / 2, None),
    "usage_trend_30d": (6 / 3, 3 / 1, None, None),
    "breadth_change_30d": (1, 1, 1, 0),
    "key_actions_per_seat_30d": (3 / 12, 1 / 30, 0.0, 0.0),
    # ------------------------------------------------------------------ the long view
    # event ages within the year: acme 1, 1, 7, 8, 15, 30, 31, 45, 60, 61, 90, 91, 100, 180, 181
    # (its onboarding events are 386+ days old); bolt 3, 3, 29, 40, 150; cara 20, 18;
    # dove 213 (2023-08-01), 304 (2023-05-02)
    "events_180d": (14, 5, 2, 0),
    "events_365d": (15, 5, 2, 2),
    # account days (a day on which anyone acted)
    "active_days_30d": (5, 2, 2, 0),  # acme {1, 7, 8, 15, 30}; bolt {3, 29}
    "active_days_90d": (10, 3, 2, 0),  # acme adds {31, 45, 60, 61, 90}; bolt {40}
    "active_days_365d": (14, 4, 2, 2),  # acme adds {91, 100, 180, 181}; bolt {150}; dove {213, 304}
    "active_days_prev_90d": (3, 1, 0, 0),  # ages 91-180: acme {91, 100, 180}; bolt {150}
    # (oldest active age in the year - newest) / (active days - 1)
    "typical_gap_days_365d": (180 / 13, 147 / 3, 2 / 1, 91 / 1),
    # first events: acme 2023-01-11, bolt 2022-06-20, cara T - 20, dove 2023-05-02
    "days_since_first_event": (415, 620, 20, 304),
    "recency_vs_usual_gap": (1 / (180 / 13), 3 / 49, 18 / 2, 213 / 91),
    # per 30 days of min(365, days since the first event)
    "event_rate_365d": (15 * 30 / 365, 5 * 30 / 365, 2 * 30 / 20, 2 * 30 / 304),
    "active_day_rate_365d": (14 * 30 / 365, 4 * 30 / 365, 2 * 30 / 20, 2 * 30 / 304),
    "activity_trend_90d": (10 / 3, 3 / 1, None, None),
    # daily rates of the last 90 days, the 90 before and the 185 before those: acme 10, 3 and
    # 14 - 13 = 1 active days, bolt 3, 1 and 0; cara and dove are younger than a year
    "activity_regularity_365d": (_regularity(10 / 90, 3 / 90, 1 / 185),
                                 _regularity(3 / 90, 1 / 90, 0.0), None, None),
    # money: the api_call amounts: acme 10 (age 30), 4 (age 100); bolt 100 + 100 (age 3), 50
    "spend_90d": (10.0, 250.0, 0.0, 0.0),
    "spend_365d": (14.0, 250.0, 0.0, 0.0),
    "spend_prev_90d": (4.0, 0.0, 0.0, 0.0),
    "purchase_days_365d": (2, 2, 0, 0),  # bolt's two 100s are one day
    "order_value_365d": (7.0, 125.0, None, None),
    "spend_rate_365d": (14 * 30 / 365, 250 * 30 / 365, 0.0, 0.0),
    "spend_trend_90d": (10 / 4, None, None, None),
    # ------------------------------------------------------------------ event vocabulary
    # events in the history (any date): dashboard_view 17, workflow_run 7, api_call 5,
    # integration_sync 3, export 1 and report_create 1: the top five take export (the tie
    # is broken by name). Quantities vary for workflow_run and api_call (the money event,
    # spend already); dashboard_view and integration_sync are all 1, export has one row.
    "events_90d__dashboard_view": (4, 0, 2, 0),  # acme ages 1, 8, 60, 61; cara 18, 20
    "events_365d__dashboard_view": (7, 1, 2, 1),  # acme adds 91, 180, 181; bolt 150; dove 304
    "events_90d__workflow_run": (3, 0, 0, 0),  # acme 1, 15, 45 (the one on T is not seen)
    "events_365d__workflow_run": (3, 0, 0, 1),  # dove 213
    "events_90d__api_call": (1, 3, 0, 0),  # acme 30 (100 is out); bolt 3, 3, 40
    "events_365d__api_call": (2, 3, 0, 0),
    "events_90d__integration_sync": (1, 1, 0, 0),  # acme 90 (on the edge); bolt 29
    "events_365d__integration_sync": (1, 1, 0, 0),
    "events_90d__export": (1, 0, 0, 0),  # acme 31
    "events_365d__export": (1, 0, 0, 0),
    "quantity_90d__workflow_run": (4.0, 0.0, 0.0, 0.0),  # acme 1 + 2 + 1
    # ------------------------------------------------------------------ support
    # acme tickets seen at T (age): tA1 (2), tA2 (30), tA3 (31), tA4 (10, resolved after T),
    # tA5 (5, resolved exactly at T), tA6 (90), tA7 (91), tA8 (100, open), tA11 (20);
    # tA9 is opened on T and tA10 181 days before: neither is seen.
    # bolt: tB1 (60), tB2 (120, open), tB3 (45). dove's only ticket is 181 days old.
    "tickets_30d": (5, 0, 0, 0),  # tA1, tA2, tA4, tA5, tA11
    "tickets_90d": (7, 2, 0, 0),  # those + tA3, tA6; tB1, tB3
    "tickets_prev_90d": (2, 1, 0, 0),  # tA7, tA8; tB2
    "high_urgent_tickets_90d": (2, 1, 0, 0),  # tA1 high, tA3 urgent (tA8 is 100 days old); tB3
    "open_tickets": (3, 1, 0, 0),  # tA4, tA5, tA8; tB2
    # resolved by T, last 90 days: acme 6, 12, 18, 24, 30 h; bolt 10, 24 h -> (10 + 24) / 2
    "median_resolution_hours_90d": (18.0, 17.0, None, None),
    "mean_csat_90d": ((2 + 5 + 4 + 3) / 4, (1 + 5) / 2, None, None),  # tA1, tA2, tA3, tA11
    "low_csat_tickets_90d": (1, 1, 0, 0),  # tA1 (tA4's 1 is not known yet); tB1
    # acme: bug x3 (tA1, tA2, tA5) -> 2, how_to x2 (tA4, tA6) -> 1, billing x1 -> 0, tA11 has
    # no category (not a repeat of anything); bolt billing x2 -> 1
    "repeat_category_tickets_90d": (3, 1, 0, 0),
    "days_since_last_ticket": (2, 45, None, None),
    "tickets_per_10_seats_90d": (7 * 10 / 12, 2 * 10 / 30, 0.0, 0.0),
    "tickets_change_90d": (7 - 2, 2 - 1, 0, 0),
    # ------------------------------------------------------------------ satisfaction
    # acme answers seen (age: score): 1: 10 (15:00), 1: 4 (09:00), 100: 7, 180: 9, 181: 2,
    # 365: 8; the one on T and the one 366 days back are not. bolt: 200: 6.
    "last_nps": (10, 6, None, None),
    "mean_nps_180d": ((10 + 4 + 7 + 9) / 4, None, None, None),
    "mean_nps_prev_180d": ((2 + 8) / 2, 6.0, None, None),
    "nps_responses_180d": (4, 0, 0, 0),
    "detractor_share_180d": (1 / 4, None, None, None),  # the 4
    "promoter_share_180d": (2 / 4, None, None, None),  # the 10 and the 9
    "days_since_last_nps": (1, 200, None, None),
    "nps_180d": ((2 / 4 - 1 / 4) * 100, None, None, None),
    "nps_change_180d": (7.5 - 5.0, None, None, None),
    "nps_response_rate_180d": (4 / 12, 0.0, 0.0, 0.0),
}

EXPECTED_T2: dict[tuple[str, str], Any] = {
    # (account, feature): value at T2 = 2024-04-01, where the later rows become visible
    ("acme", "mrr"): 900.0,  # sA3 started 2024-03-21
    ("acme", "seats"): 15,
    ("acme", "discount_share"): 0.0,  # growth list price is now sA3's 60
    ("acme", "mrr_change_90d"): 300.0,  # held at 2024-01-02: sA2 (600)
    ("acme", "expansions_365d"): 2,  # sA2 and sA3
    ("acme", "open_tickets"): 1,  # only tA8; tA4, tA5, tA9 are resolved before T2
    # opened in [2024-01-02, T2), rated by T2: tA1 2, tA2 5, tA3 4, tA4 1, tA5 3, tA9 4, tA11 3
    ("acme", "mean_csat_90d"): 22 / 7,
    ("cara", "discount_share"): 1 - 40 / 60,
    ("cara", "seats_activated_share_30d"): 3 / 20,  # c-u3's first event (on T) is day 20
    ("cara", "onboarding_stalled"): 1,  # window over (tenure 51), 0.15 < 0.3
    ("cara", "time_to_first_value_days"): 20,
    ("cara", "first_value_reached"): 1,
    ("cara", "tenure_days"): 51,
    ("echo", "mrr"): 80.0,
    ("echo", "days_to_renewal"): 0,  # monthly, anchored on 2023-01-01: renews on T2 itself
    ("echo", "discount_share"): 0.0,  # sE2's 40/seat is now the starter list price
    ("echo", "mrr_change_90d"): None,  # not a customer on 2024-01-02
    ("echo", "expansions_365d"): 1,  # sE2 (80) after sE1 (60)
    ("echo", "tickets_30d"): 0,  # tE1 is 34 days old
    ("echo", "tickets_90d"): 1,
    ("echo", "open_tickets"): 1,
    ("echo", "high_urgent_tickets_90d"): 1,
    ("echo", "last_nps"): 0,
    ("echo", "nps_180d"): -100.0,
    ("echo", "days_since_last_activity"): 36,
    ("echo", "active_users_30d"): 0,
    ("echo", "active_users_prev_30d"): 1,
}


def _is_null(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _same(actual: object, expected: object) -> bool:
    if expected is None:
        return _is_null(actual)
    if _is_null(actual):
        return False
    if isinstance(expected, str):
        return actual == expected
    return abs(float(actual) - float(expected)) <= TOLERANCE  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    folder = write_tables(tmp_path_factory.mktemp("values") / "raw", company())
    history = validate_history(open_source(folder, Mapping()), now=NOW, strict=True)
    spec = SnapshotSpec(history_end=date(2024, 7, 1), money_event=MONEY_EVENT)
    snapshot_plan = plan(history.tables, spec, dates=[T, T2])
    assert snapshot_plan.absent_features == ()
    out = snapshot_table(history.tables, history.backend, spec, snapshot_plan).execute()
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    return out


def _row(frame: pd.DataFrame, account: str, as_of: date) -> pd.Series:
    rows = frame[(frame["account_id"] == account) & (frame["as_of"] == as_of)]
    assert len(rows) == 1, f"{account} at {as_of}: {len(rows)} rows"
    return rows.iloc[0]


def test_every_feature_has_a_hand_computed_value(frame: pd.DataFrame) -> None:
    """Every declared feature, and every feature the families make for this company's
    vocabulary (``frame``'s build registered them)."""
    registry = set(declared()) | {n for n in frame.columns if n in load_all()
                                  and load_all()[n].generated is not None}
    assert set(EXPECTED) == set(registry), (
        f"missing: {sorted(set(registry) - set(EXPECTED))}, "
        f"unknown: {sorted(set(EXPECTED) - set(registry))}")
    for name, values in EXPECTED.items():
        assert len(values) == len(ACCOUNTS), name
        # every feature is exercised: at least one account has a value that is not null/zero
        assert any(v not in (None, 0, 0.0) for v in values), name


def test_population_is_customers_at_the_start_of_each_day(frame: pd.DataFrame) -> None:
    at_t = sorted(frame.loc[frame["as_of"] == T, "account_id"])
    at_t2 = sorted(frame.loc[frame["as_of"] == T2, "account_id"])
    assert at_t == ["acme", "bolt", "cara", "dove"]  # echo restarts on T: not yet a customer
    assert at_t2 == ["acme", "bolt", "cara", "echo"]  # dove's subscription ended 2024-03-11


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_feature_value_at_as_of(frame: pd.DataFrame, name: str) -> None:
    wrong = []
    for account, expected in zip(ACCOUNTS, EXPECTED[name], strict=True):
        actual = _row(frame, account, T)[name]
        if not _same(actual, expected):
            wrong.append(f"{account}: expected {expected!r}, got {actual!r}")
    assert not wrong, f"{name} at {T}: " + "; ".join(wrong)


def test_later_rows_show_up_at_the_later_date(frame: pd.DataFrame) -> None:
    wrong = []
    for (account, name), expected in EXPECTED_T2.items():
        actual = _row(frame, account, T2)[name]
        if not _same(actual, expected):
            wrong.append(f"{account}.{name}: expected {expected!r}, got {actual!r}")
    assert not wrong, "; ".join(wrong)


def test_every_value_lies_in_its_declared_range(frame: pd.DataFrame) -> None:
    """The ranges a what-if is held to (``Feature.valid``) hold on real values: none of the
    hand-computed company's, at either date, falls outside its feature's."""
    registry = load_all()
    outside = []
    for name in frame.columns:
        spec = registry.get(name)
        if spec is None or spec.kind == "category":
            continue
        assert spec.valid is not None, name
        low, high = spec.valid
        values = pd.to_numeric(frame[name], errors="coerce").dropna()
        wrong = values[(values < (low if low is not None else -math.inf))
                       | (values > (high if high is not None else math.inf))]
        if len(wrong):
            outside.append(f"{name} {spec.valid}: {sorted(wrong.tolist())[:3]}")
    assert not outside, "; ".join(outside)


@pytest.mark.parametrize("materialize", [True, False], ids=["rollup apart", "one query"])
def test_the_same_values_whether_the_rollup_is_built_apart_or_not(
        tmp_path: Any, materialize: bool) -> None:
    """A large history builds its per-user rollup as a table of its own first
    (``MATERIALIZE_ROLLUP_EVENTS``), a small one inside the one query; every hand-computed
    value must come out the same both ways."""
    folder = write_tables(tmp_path / "raw", company())
    history = validate_history(open_source(folder, Mapping()), now=NOW, strict=True)
    spec = SnapshotSpec(history_end=date(2024, 7, 1), money_event=MONEY_EVENT)
    snapshot_plan = plan(history.tables, spec, dates=[T, T2])
    assert snapshot_plan.events == len(company()["usage_events"])
    expr = snapshot_table(history.tables, history.backend, spec, snapshot_plan,
                          materialize=materialize)
    out = expr.execute()
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    wrong = [f"{account}.{name}" for name, values in EXPECTED.items()
             for account, expected in zip(ACCOUNTS, values, strict=True)
             if not _same(_row(out, account, T)[name], expected)]
    assert not wrong, wrong


@pytest.mark.parametrize("others", [[], [-400], [-731, -200, 3]], ids=["alone", "a year before",
                                                                      "far apart"])
def test_values_do_not_depend_on_the_other_snapshot_dates(
        frame: pd.DataFrame, tmp_path: Any, others: list[int]) -> None:
    """Windows are cut into buckets at every snapshot's edges (and at most 63 days long, for
    the active-days mask); a snapshot's values must not depend on which other dates share
    the build."""
    folder = write_tables(tmp_path / "raw", company())
    history = validate_history(open_source(folder, Mapping()), now=NOW, strict=True)
    spec = SnapshotSpec(history_end=date(2024, 7, 1), money_event=MONEY_EVENT)
    dates = sorted({T, *(T + timedelta(days=d) for d in others)})
    alone = snapshot_table(history.tables, history.backend, spec,
                           plan(history.tables, spec, dates=dates)).execute()
    alone["as_of"] = pd.to_datetime(alone["as_of"]).dt.date
    for account in ACCOUNTS:
        if account not in set(frame.loc[frame["as_of"] == T, "account_id"]):
            continue
        ours, reference = _row(alone, account, T), _row(frame, account, T)
        wrong = [n for n in EXPECTED
                 if not _same(ours[n], None if _is_null(reference[n]) else reference[n])]
        assert not wrong, f"{account}: {wrong} differ"


def test_distinct_features_count_past_one_mask_word(tmp_path: Any) -> None:
    """Feature breadth is counted with 63-bit masks per word; 130 product features span three
    words, and each must count once however often and by whom it was used."""
    tables = company()
    names = [f"feature_{i:03d}" for i in range(130)]
    for i, name in enumerate(names):
        for user in ("u-extra-1", "u-extra-2"):
            tables["usage_events"].append({"account_id": "cara", "user_id": user,
                                           "event_ts": at(-1 - i % 25), "event": name,
                                           "quantity": 1.0})
    history = validate_history(open_source(write_tables(tmp_path / "raw", tables), Mapping()),
                               now=NOW, strict=True)
    spec = SnapshotSpec(history_end=date(2024, 7, 1), money_event=MONEY_EVENT)
    out = snapshot_table(history.tables, history.backend, spec,
                         plan(history.tables, spec, dates=[T])).execute()
    cara = out[out["account_id"] == "cara"].iloc[0]
    before = EXPECTED["features_used_30d"][ACCOUNTS.index("cara")]
    assert cara["features_used_30d"] == before + 130
    assert cara["features_used_90d"] == EXPECTED["features_used_90d"][ACCOUNTS.index("cara")] \
        + 130


@pytest.mark.parametrize("reverse", [False, True], ids=["as written", "rows reversed"])
def test_last_nps_breaks_a_tie_on_responded_at_by_response_id(tmp_path: Any,
                                                              reverse: bool) -> None:
    """Two answers given at the same moment: the latest is the one with the greater
    response_id, whatever order the rows arrive in; a greater id given earlier does not win."""
    tables = company()
    tied = _rows(("response_id", "account_id", "user_id", "responded_at", "score", "comment"), [
        ("rC1", "cara", "c-u1", at(-2, 10), 3, None),
        ("rC3", "cara", "c-u2", at(-2, 10), 8, None),
        ("rC2", "cara", "c-u3", at(-2, 10), 5, None),
        ("rC9", "cara", "c-u1", at(-5, 10), 0, None),  # greatest id, but earlier
    ])
    tables["surveys"] += tied[::-1] if reverse else tied
    history = validate_history(open_source(write_tables(tmp_path / "raw", tables), Mapping()),
                               now=NOW, strict=True)
    spec = SnapshotSpec(history_end=date(2024, 7, 1), money_event=MONEY_EVENT)
    out = snapshot_table(history.tables, history.backend, spec,
                         plan(history.tables, spec, dates=[T])).execute()
    assert out.loc[out["account_id"] == "cara", "last_nps"].item() == 8
    assert out.loc[out["account_id"] == "acme", "last_nps"].item() == EXPECTED["last_nps"][0]
