"""The real ``churnlens`` command line, end to end, on small generated companies."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import FAST_TRAIN, NOW, churnlens, tiny_tables, write_tables

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dirty_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("dirty")
    churnlens(home, "synth", "--accounts", "150", "--months", "6", "--seed", "11", "--dirty",
              "--rollouts", "4")
    return home


def test_synth_then_validate_on_a_clean_company(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = churnlens(home, "synth", "--accounts", "120", "--months", "6", "--rollouts", "4")
    assert f"Wrote the company to {home / 'raw'}" in out.stdout.replace("\n", "")
    for name in ("accounts.parquet", "subscriptions.parquet", "tickets.parquet",
                 "surveys.parquet", "truth.parquet", "truth_drivers.json", "company.json"):
        assert (home / "raw" / name).is_file(), name
    assert list((home / "raw" / "usage_events").glob("part-*.parquet"))

    checked = churnlens(home, "validate", "--strict")
    assert "Report written to" in checked.stdout
    report = json.loads((home / "reports" / "validation.json").read_text())
    assert report["ok"] and report["mode"] == "strict"
    assert not list((home / "quarantine").glob("*.parquet"))


def test_lenient_validation_of_a_dirty_company_finds_every_planted_row(dirty_home: Path) -> None:
    planted = json.loads((dirty_home / "raw" / "company.json").read_text())["injected_bad_rows"]
    result = churnlens(dirty_home, "validate", "--lenient", "--json")
    report = json.loads(result.stdout)
    assert not report["ok"]
    for table, rules in planted.items():
        found: dict[str, int] = {}
        for issue in report["tables"][table]["issues"]:
            found[issue["rule"]] = found.get(issue["rule"], 0) + issue["rows"]
            assert issue["examples"], issue
        assert found == rules, table
        t = report["tables"][table]
        assert t["rows_quarantined"] == sum(rules.values())
        assert t["rows_in"] == t["rows_loaded"] + t["rows_quarantined"]
        quarantine = pq.read_table(dirty_home / "quarantine" / f"{table}.parquet")
        assert quarantine.num_rows == sum(rules.values())
        assert set(quarantine.column("_reason").to_pylist()) == set(rules)
    every_rule = {rule for rules in planted.values() for rule in rules}
    assert every_rule == {"wrong_type", "null_value", "out_of_range", "invalid_value",
                          "future_timestamp", "end_before_start", "resolved_before_created",
                          "duplicate_id", "unknown_account", "overlapping_subscription"}


def test_strict_validation_of_a_dirty_company_refuses(dirty_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "strict"
    result = churnlens(home, "validate", "--strict", "--data", str(dirty_home / "raw"),
                       check=False)
    assert result.returncode == 1
    assert "Strict mode refused the load" in result.stderr
    assert "overlapping_subscription" in result.stdout
    assert not list((home / "quarantine").glob("*.parquet"))
    assert json.loads((home / "reports" / "validation.json").read_text())["ok"] is False


def test_a_missing_column_is_a_clear_error(tmp_path: Path, dirty_home: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("subscriptions", "tickets", "surveys"):
        (raw / f"{name}.parquet").write_bytes(
            (dirty_home / "raw" / f"{name}.parquet").read_bytes())
    accounts = pq.read_table(dirty_home / "raw" / "accounts.parquet").drop(["created_at"])
    pq.write_table(accounts, raw / "accounts.parquet")
    (raw / "usage_events").mkdir()
    part = sorted((dirty_home / "raw" / "usage_events").glob("*.parquet"))[0]
    (raw / "usage_events" / part.name).write_bytes(part.read_bytes())
    result = churnlens(tmp_path / "home", "validate", "--data", str(raw), check=False)
    assert result.returncode == 2
    assert "accounts: missing required column(s) created_at" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_demo_runs_as_far_as_the_pipeline_goes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = churnlens(home, "demo", "--accounts", "300", "--months", "18", "--no-serve",
                       env=FAST_TRAIN)
    assert "Validation (lenient)" in result.stdout
    assert "no champion yet" in result.stdout
    assert "not starting the API" in result.stdout
    assert (home / "models" / "CHAMPION").read_text().strip() == "v1"
    assert "Riskiest accounts at" in result.stdout
    assert list((home / "scores").glob("*.parquet"))
    assert (home / "mlflow.db").is_file()


def test_every_command_has_useful_help(tmp_path: Path) -> None:
    for command in ("synth", "validate", "features", "train", "promote", "score",
                    "demo"):
        result = churnlens(tmp_path, command, "--help")
        assert "Usage" in result.stdout and len(result.stdout) > 400, command


def test_features_build_then_rerun_incrementally(tmp_path: Path) -> None:
    home = tmp_path / "home"
    churnlens(home, "synth", "--accounts", "100", "--months", "8", "--rollouts", "2")
    first = churnlens(home, "features")
    assert "Snapshots written to" in first.stdout
    assert "(8 dates computed, 0 reused)" in " ".join(first.stdout.split())
    report = json.loads((home / "reports" / "features.json").read_text())
    assert report["features"] >= 40 and report["snapshots"] > 100
    raw_events = pq.ParquetDataset(home / "raw" / "usage_events").read().num_rows
    assert report["usage_events"] == raw_events
    assert f"from {raw_events:,} usage events" in " ".join(first.stdout.split())
    assert set(report["pillars"]) == {"onboarding", "adoption", "support", "satisfaction",
                                      "commercial"}
    again = churnlens(home, "features")
    assert "(3 dates computed, 5 reused)" in " ".join(again.stdout.split())
    assert "0 finished dates rebuilt because raw rows they read changed" in " ".join(
        again.stdout.split())


def test_features_for_a_business_without_subscriptions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    churnlens(home, "synth", "--accounts", "100", "--months", "8", "--rollouts", "2")
    for name in ("subscriptions", "tickets", "surveys"):
        (home / "raw" / f"{name}.parquet").unlink()
    result = churnlens(home, "features", "--churn-definition", "inactivity",
                       "--inactivity-days", "30")
    text = " ".join(result.stdout.split())
    assert "Absent features:" in text and "needs subscriptions" in text
    report = json.loads((home / "reports" / "features.json").read_text())
    assert report["snapshots"] > 100
    assert "tickets_90d" in report["absent_features"]
    assert report["label_rates"]["churned"] is not None


def test_validate_a_history_of_only_accounts_and_usage_events(tmp_path: Path) -> None:
    tables = tiny_tables()
    write_tables(tmp_path / "raw", {name: tables[name] for name in ("accounts", "usage_events")})
    env = {"CHURNLENS_NOW": NOW.isoformat()}
    refused = churnlens(tmp_path, "validate", check=False, env=env)
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 2, said
    assert "subscription churn" in said and "--churn-definition inactivity" in said

    checked = churnlens(tmp_path, "validate", "--churn-definition", "inactivity", "--strict",
                        env=env)
    printed = " ".join(checked.stdout.split())
    assert "Without subscriptions: no subscription churn" in printed
    assert "Without tickets:" in printed and "Without surveys:" in printed
    report = json.loads((tmp_path / "reports" / "validation.json").read_text())
    assert report["ok"] and set(report["absent"]) == {"subscriptions", "tickets", "surveys"}
    assert report["tables"]["usage_events"]["rows_loaded"] == 4


def test_a_crash_reads_as_one_line_and_keeps_its_traceback(tmp_path: Path) -> None:
    """A damaged snapshot file makes the Parquet reader raise inside the library: the user
    reads one line naming it, the traceback lands under HOME/logs, and --debug shows it."""
    store = tmp_path / "features"
    (store / "snapshots" / "as_of=2024-01-01").mkdir(parents=True)
    (store / "manifest.json").write_text(json.dumps({"features": ["tenure_days"],
                                                     "settings": {"horizon_days": 90}}))
    (store / "snapshots" / "as_of=2024-01-01" / "part-0.parquet").write_bytes(b"damaged")

    failed = churnlens(tmp_path, "train", check=False)
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr + failed.stdout
    lines = failed.stderr.strip().splitlines()
    said = " ".join(failed.stderr.split())
    assert "churnlens train failed inside pyarrow" in said and "part-0.parquet" in said
    logs = list((tmp_path / "logs").glob("train-*.log"))
    assert len(logs) == 1 and f"Full traceback in {logs[0]}" in "".join(lines)
    kept = logs[0].read_text()
    assert "Traceback (most recent call last)" in kept and "ArrowInvalid" in kept

    shown = churnlens(tmp_path, "--debug", "train", check=False)
    assert shown.returncode == failed.returncode
    assert "Traceback (most recent call last)" in shown.stderr
    assert len(list((tmp_path / "logs").glob("train-*.log"))) == 2
