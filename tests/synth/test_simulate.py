"""Tests of the simulated company: determinism, contract, consistency, truth and its calibration.

One small company is generated once per module; every test queries its Parquet files with DuckDB.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnlens.raw.contract import CONTRACT
from churnlens.synth import CompanyConfig, generate_company
from churnlens.synth.dynamics import CHURN_WEIGHTS, EXPANSION_WEIGHTS

CONFIG = CompanyConfig(accounts=400, months=24, seed=7)
SINGLE_FILE_TABLES = ("accounts", "subscriptions", "tickets", "surveys")
ARROW_TYPE_FITS: dict[str, Callable[[pa.DataType], bool]] = {
    "string": lambda t: t == pa.string(),
    "int64": lambda t: t == pa.int64(),
    "float64": lambda t: t == pa.float64(),
    "timestamp": pa.types.is_timestamp,
    "date": lambda t: t == pa.date32(),
}

# The subscription an account held going into ``as_of``. A billing day on the 1st falls on
# ``as_of`` itself: a subscription that ends there was still held at the start of that day (the
# oracle counts the churn or move as inside [as_of, as_of + 90 days)), while the one that
# starts there is its successor. Exactly one row matches per truth row.
HELD_AT_AS_OF = ("s.start_date < t.as_of AND (s.end_date IS NULL OR s.end_date >= t.as_of)")


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("company") / "out"
    generate_company(CONFIG, out)
    return out


@pytest.fixture(scope="module")
def con(company: Path) -> duckdb.DuckDBPyConnection:
    db = duckdb.connect()
    for table in (*SINGLE_FILE_TABLES, "truth"):
        db.execute(f"CREATE VIEW {table} AS "
                   f"SELECT * FROM read_parquet('{company}/{table}.parquet')")
    db.execute("CREATE VIEW usage_events AS "
               f"SELECT * FROM read_parquet('{company}/usage_events/part-*.parquet')")
    return db


@pytest.fixture(scope="module")
def history_end(company: Path) -> str:
    return json.loads((company / "company.json").read_text())["history_end"]


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


def file_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- 1. determinism


def test_same_config_gives_byte_identical_files(company: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_company(CONFIG, again)
    first, second = file_bytes(company), file_bytes(again)
    assert sorted(first) == sorted(second)
    assert any(name.startswith("usage_events/part-") for name in first)
    assert len([n for n in first if n.startswith("usage_events/")]) == CONFIG.months
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, f"files differ between two runs of the same config: {differing}"


def test_different_seed_gives_different_usage_events(company: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate_company(CompanyConfig(accounts=CONFIG.accounts, months=CONFIG.months,
                                   seed=CONFIG.seed + 1), other)
    ours = file_bytes(company / "usage_events")
    theirs = file_bytes(other / "usage_events")
    assert ours != theirs
    rows = "SELECT account_id, user_id, event_ts, event, quantity FROM read_parquet('{}')"
    db = duckdb.connect()
    only_ours = scalar(db, f"SELECT count(*) FROM ({rows.format(company / 'usage_events/*')} "
                           f"EXCEPT ALL {rows.format(other / 'usage_events/*')})")
    assert isinstance(only_ours, int) and only_ours > 0


# --------------------------------------------------------------------------- 2. contract


def test_tables_match_contract_columns_and_types(company: Path) -> None:
    schemas = {table: [pq.read_schema(company / f"{table}.parquet")]
               for table in SINGLE_FILE_TABLES}
    parts = sorted((company / "usage_events").glob("part-*.parquet"))
    assert parts
    schemas["usage_events"] = [pq.read_schema(part) for part in parts]
    assert set(schemas) == set(CONTRACT)

    problems = []
    for table, table_schemas in schemas.items():
        contract = CONTRACT[table]
        for schema in table_schemas:
            if tuple(schema.names) != contract.column_names:
                problems.append(f"{table}: columns {schema.names} != {contract.column_names}")
                continue
            for spec in contract.columns:
                arrow_type = schema.field(spec.name).type
                if not ARROW_TYPE_FITS[spec.dtype](arrow_type):
                    problems.append(f"{table}.{spec.name}: {arrow_type} does not fit {spec.dtype}")
    assert not problems, "\n".join(problems)


def test_tables_meet_contract_column_rules(con: duckdb.DuckDBPyConnection,
                                           history_end: str) -> None:
    problems = []
    for table, contract in CONTRACT.items():
        assert scalar(con, f"SELECT count(*) FROM {table}") > 0, f"{table} is empty"
        for spec in contract.columns:
            checks = {}
            if not spec.nullable:
                checks["null"] = f"{spec.name} IS NULL"
            if spec.min_value is not None:
                checks["below min"] = f"{spec.name} < {spec.min_value}"
            if spec.max_value is not None:
                checks["above max"] = f"{spec.name} > {spec.max_value}"
            if spec.allowed is not None:
                allowed = ", ".join(f"'{v}'" for v in spec.allowed)
                checks["not allowed"] = f"{spec.name} NOT IN ({allowed})"
            if spec.not_in_future:
                checks["after history end"] = f"{spec.name} >= DATE '{history_end}'"
            for rule, condition in checks.items():
                bad = scalar(con, f"SELECT count(*) FROM {table} WHERE {condition}")
                if bad:
                    problems.append(f"{table}.{spec.name}: {bad} rows {rule}")
        if contract.unique_key:
            dupes = scalar(con, f"SELECT count(*) - count(DISTINCT {contract.unique_key}) "
                                f"FROM {table}")
            if dupes:
                problems.append(f"{table}.{contract.unique_key}: {dupes} duplicates")
        if contract.references_accounts:
            orphans = scalar(con, f"SELECT count(*) FROM {table} ANTI JOIN accounts "
                                  "USING (account_id)")
            if orphans:
                problems.append(f"{table}: {orphans} rows of unknown accounts")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- 3. consistency


@pytest.mark.parametrize(("table", "ts"), [("usage_events", "event_ts"),
                                           ("surveys", "responded_at")])
def test_no_activity_before_account_created(con: duckdb.DuckDBPyConnection, table: str,
                                            ts: str) -> None:
    early = con.execute(f"""
        SELECT x.account_id, x.{ts}, a.created_at FROM {table} x JOIN accounts a USING (account_id)
        WHERE x.{ts} < a.created_at LIMIT 5""").fetchall()
    assert not early, f"{table} rows before the account was created: {early}"


def test_no_ticket_before_account_signup_day(con: duckdb.DuckDBPyConnection) -> None:
    early = con.execute("""
        SELECT t.ticket_id, t.created_at, a.created_at FROM tickets t
        JOIN accounts a USING (account_id)
        WHERE CAST(t.created_at AS DATE) < CAST(a.created_at AS DATE) LIMIT 5""").fetchall()
    assert not early, f"tickets before the day the account was created: {early}"


def test_no_ticket_before_account_created(con: duckdb.DuckDBPyConnection) -> None:
    early = con.execute("""
        SELECT t.ticket_id, t.created_at, a.created_at FROM tickets t
        JOIN accounts a USING (account_id) WHERE t.created_at < a.created_at LIMIT 5""").fetchall()
    assert not early, f"tickets before the account was created: {early}"


@pytest.mark.parametrize(("table", "ts"), [("usage_events", "event_ts"), ("tickets", "created_at"),
                                           ("surveys", "responded_at")])
def test_no_activity_after_churn(con: duckdb.DuckDBPyConnection, table: str, ts: str) -> None:
    churned = scalar(con, "SELECT count(*) FROM (SELECT account_id FROM subscriptions "
                          "GROUP BY 1 HAVING count(end_date) = count(*))")
    assert isinstance(churned, int) and churned > 20, "too few churned accounts to test"
    late = con.execute(f"""
        WITH churned AS (
            SELECT account_id, max(end_date) AS churn_date FROM subscriptions
            GROUP BY 1 HAVING count(end_date) = count(*))
        SELECT x.account_id, x.{ts}, c.churn_date FROM {table} x JOIN churned c USING (account_id)
        WHERE x.{ts} >= CAST(c.churn_date AS TIMESTAMP) LIMIT 5""").fetchall()
    assert not late, f"{table} rows on or after the account's churn date: {late}"


def test_subscriptions_of_an_account_never_overlap(con: duckdb.DuckDBPyConnection) -> None:
    ordered = """
        SELECT account_id, subscription_id, start_date, end_date,
               lag(end_date) OVER w AS previous_end,
               lag(subscription_id) OVER w AS previous_id,
               row_number() OVER (PARTITION BY account_id ORDER BY start_date DESC) AS from_last
        FROM subscriptions WINDOW w AS (PARTITION BY account_id ORDER BY start_date)"""
    overlapping = con.execute(f"SELECT * FROM ({ordered}) WHERE previous_id IS NOT NULL "
                              "AND (previous_end IS NULL OR start_date < previous_end) "
                              "LIMIT 5").fetchall()
    assert not overlapping, f"overlapping subscriptions: {overlapping}"
    open_early = con.execute(f"SELECT * FROM ({ordered}) WHERE end_date IS NULL AND from_last > 1 "
                             "LIMIT 5").fetchall()
    assert not open_early, f"open subscriptions followed by another: {open_early}"
    backwards = scalar(con, "SELECT count(*) FROM subscriptions WHERE end_date <= start_date")
    assert backwards == 0
    moved = scalar(con, "SELECT count(DISTINCT account_id) FROM (SELECT account_id FROM "
                        "subscriptions GROUP BY 1 HAVING count(*) > 1)")
    assert isinstance(moved, int) and moved > 20, "too few accounts with several subscriptions"


def test_scores_and_ticket_times_are_valid(con: duckdb.DuckDBPyConnection) -> None:
    assert scalar(con, "SELECT count(*) FROM surveys WHERE score IS NULL "
                       "OR score NOT BETWEEN 0 AND 10") == 0
    assert scalar(con, "SELECT count(*) FROM tickets WHERE csat IS NOT NULL "
                       "AND (isnan(csat) OR csat NOT BETWEEN 1 AND 5)") == 0
    assert scalar(con, "SELECT count(*) FROM tickets WHERE csat IS NOT NULL") > 0
    assert scalar(con, "SELECT count(*) FROM tickets WHERE resolved_at < created_at") == 0
    assert scalar(con, "SELECT count(*) FROM tickets WHERE resolved_at IS NOT NULL") > 0


# --------------------------------------------------------------------------- 4. truth coverage


def test_truth_covers_exactly_the_active_accounts(con: duckdb.DuckDBPyConnection,
                                                  history_end: str) -> None:
    """One truth row per account and month start at which the account was a customer.

    "Active" is start_date <= as_of and end_date null or > as_of. Billing days run from the
    2nd to the 28th, so no subscription ends on a month start and the rule is exact.
    """
    assert scalar(con, "SELECT count(*) - count(DISTINCT (account_id, as_of)) FROM truth") == 0
    months = con.execute("SELECT min(as_of), max(as_of), count(DISTINCT as_of), "
                         "count(*) FILTER (WHERE day(as_of) <> 1) FROM truth").fetchone()
    assert months is not None
    assert str(months[0]) == CONFIG.start.isoformat()
    assert months[2] == CONFIG.months and months[3] == 0
    assert str(months[1]) < history_end

    con.execute("""
        CREATE OR REPLACE TEMP VIEW truth_expected AS
        WITH months AS (SELECT DISTINCT as_of FROM truth),
        active AS (
            SELECT DISTINCT s.account_id, m.as_of FROM subscriptions s
            JOIN accounts a USING (account_id) CROSS JOIN months m
            WHERE s.start_date <= m.as_of AND (s.end_date IS NULL OR s.end_date > m.as_of)
              AND a.created_at < m.as_of)
        SELECT * FROM active""")
    missing = con.execute("SELECT * FROM truth_expected EXCEPT "
                          "SELECT account_id, as_of FROM truth LIMIT 5").fetchall()
    extra = con.execute("SELECT account_id, as_of FROM truth EXCEPT "
                        "SELECT * FROM truth_expected LIMIT 5").fetchall()
    assert not missing, f"active (account, month) without a truth row: {missing}"
    assert not extra, f"truth rows for accounts that were not customers: {extra}"

    bad = scalar(con, """SELECT count(*) FROM truth WHERE NOT (
        p_churn_90d BETWEEN 0 AND 1 AND p_expand_90d BETWEEN 0 AND 1)
        OR p_churn_90d IS NULL OR p_expand_90d IS NULL OR isnan(hidden_health)""")
    assert bad == 0


# --------------------------------------------------------------------------- 5. signal


def test_low_utilisation_means_high_churn_probability(con: duckdb.DuckDBPyConnection) -> None:
    """Active users per seat in the 30 days before as_of separates churn risk."""
    deciles = con.execute(f"""
        WITH held AS (
            SELECT t.account_id, t.as_of, t.p_churn_90d, s.seats FROM truth t
            JOIN subscriptions s ON s.account_id = t.account_id AND {HELD_AT_AS_OF}),
        users AS (
            SELECT h.account_id, h.as_of, count(DISTINCT e.user_id) AS users FROM held h
            JOIN usage_events e ON e.account_id = h.account_id
             AND e.event_ts >= h.as_of - INTERVAL 30 DAY AND e.event_ts < h.as_of
            GROUP BY ALL),
        ratio AS (
            SELECT h.*, coalesce(u.users, 0) / h.seats AS per_seat FROM held h
            LEFT JOIN users u USING (account_id, as_of)),
        ranked AS (
            SELECT *, ntile(10) OVER (ORDER BY per_seat, account_id, as_of) AS decile
            FROM ratio)
        SELECT decile, count(*), min(per_seat), max(per_seat), avg(p_churn_90d)
        FROM ranked GROUP BY decile ORDER BY decile""").fetchall()
    assert len(deciles) == 10
    assert sum(row[1] for row in deciles) == scalar(con, "SELECT count(*) FROM truth")
    churn = {row[0]: row[4] for row in deciles}
    lowest, top = churn[1], churn[10]
    upper = sum(churn[d] for d in (7, 8, 9)) / 3
    table = "; ".join(f"d{d}: users/seat {lo:.2f}-{hi:.2f} mean p_churn {p:.3f}"
                      for d, _, lo, hi, p in deciles)
    message = (f"lowest decile {lowest:.3f}, deciles 7-9 {upper:.3f}, top decile {top:.3f} "
               f"[{table}]")
    assert lowest >= 3 * upper, message
    assert lowest >= 2 * top, message


# --------------------------------------------------------------------------- 6. calibration


def test_truth_is_calibrated_against_observed_outcomes(con: duckdb.DuckDBPyConnection,
                                                       history_end: str) -> None:
    """Summed 90-day probabilities match the outcomes the history later records.

    Rows of one account in consecutive months share the same outcome, which inflates the
    variance of the count well beyond the independent sum p(1-p); hence twice four SEs.
    """
    row = con.execute(f"""
        WITH rows AS (
            SELECT t.*, s.mrr AS mrr_at_as_of FROM truth t
            JOIN subscriptions s ON s.account_id = t.account_id AND {HELD_AT_AS_OF}
            WHERE t.as_of + INTERVAL 90 DAY <= DATE '{history_end}'),
        churn_dates AS (
            SELECT account_id, max(end_date) AS churn_date FROM subscriptions
            GROUP BY 1 HAVING count(end_date) = count(*)),
        outcomes AS (
            SELECT r.*,
                coalesce(c.churn_date >= r.as_of
                         AND c.churn_date < r.as_of + INTERVAL 90 DAY, false) AS churned,
                EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = r.account_id
                        AND s.start_date >= r.as_of AND s.start_date < r.as_of + INTERVAL 90 DAY
                        AND s.mrr >= 1.1 * r.mrr_at_as_of) AS expanded
            FROM rows r LEFT JOIN churn_dates c USING (account_id))
        SELECT count(*),
            (SELECT count(*) FROM truth WHERE as_of + INTERVAL 90 DAY <= DATE '{history_end}'),
            sum(p_churn_90d), count(*) FILTER (WHERE churned),
            sum(p_churn_90d * (1 - p_churn_90d)),
            sum(p_expand_90d), count(*) FILTER (WHERE expanded),
            sum(p_expand_90d * (1 - p_expand_90d))
        FROM outcomes""").fetchone()
    assert row is not None
    n, eligible, p_churn, churned, var_churn, p_expand, expanded, var_expand = row
    assert n == eligible, "every truth row must have exactly one subscription held at as_of"
    assert n > 1000 and churned > 50 and expanded > 50

    for what, expected, observed, variance in (("churn", p_churn, churned, var_churn),
                                               ("expansion", p_expand, expanded, var_expand)):
        bound = 4 * math.sqrt(variance) * 2
        message = (f"{what}: sum of truth probabilities {expected:.1f} vs observed {observed} "
                   f"over {n} rows (independent-rows SE {math.sqrt(variance):.1f}, "
                   f"bound +-{bound:.1f})")
        print(message)
        assert abs(observed - expected) <= bound, message


# --------------------------------------------------------------------------- 7. drivers


def test_truth_drivers_name_the_weights(company: Path) -> None:
    drivers = json.loads((company / "truth_drivers.json").read_text())
    for key, weights in (("churn", CHURN_WEIGHTS), ("expansion", EXPANSION_WEIGHTS)):
        assert isinstance(drivers[key], dict) and drivers[key], key
        assert all(isinstance(name, str) and isinstance(value, int | float)
                   for name, value in drivers[key].items()), key
        assert drivers[key] == weights, key
