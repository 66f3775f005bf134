"""`churnlens alerts` and the rules at the end of `churnlens score`, run as a user runs them."""

from __future__ import annotations

from pathlib import Path

from alert_fixtures import EXPECTED, THRESHOLDS, receiver, rules_file, scored_home

from churnlens.alerts.rules import new_secret
from churnlens.alerts.store import TaskStore
from conftest import churnlens


def test_alerts_list_run_rerun_and_deliver(tmp_path: Path) -> None:
    home = scored_home(tmp_path / "home")
    secret = new_secret()
    with receiver(secret) as got:
        path = rules_file(tmp_path / "alerts.yaml", got.url, secret)
        listed = churnlens(home, "alerts", "--alerts", str(path), "--list", env=THRESHOLDS)
        assert "skipped: the data lacks NPS surveys" in listed.stdout
        assert "http://127.0.0.1" in listed.stdout and "t0ps3cret" not in listed.stdout
        first = churnlens(home, "alerts", "--alerts", str(path), env=THRESHOLDS)
        assert f"{len(EXPECTED)} new tasks" in first.stdout
        assert "Alert rule nps_detractor skipped" in first.stderr
        again = churnlens(home, "alerts", "--alerts", str(path), env=THRESHOLDS)
        assert "0 new tasks, 0 webhooks queued" in again.stdout
        sent = churnlens(home, "alerts", "--alerts", str(path), "deliver", env=THRESHOLDS)
        assert f"{len(EXPECTED)} sent" in sent.stdout
    assert got.rejected == 0 and len(got.ids) == len(set(got.ids)) == len(EXPECTED)
    with TaskStore(f"sqlite:///{home / 'tasks.db'}") as store:
        assert {(t.account_id, t.rule) for t in store.tasks()[0]} == EXPECTED


def test_a_bad_rules_file_or_store_is_refused_in_one_line(tmp_path: Path) -> None:
    home = scored_home(tmp_path / "home")
    path = tmp_path / "alerts.yaml"
    path.write_text("rules:\n  - name: health_falls\n    when: {min_health_fall: 0}\n")
    bad = churnlens(home, "alerts", "--alerts", str(path), check=False)
    assert bad.returncode == 2
    assert "Cannot run the alert rules:" in bad.stderr
    assert "rule 'health_falls', key 'when.min_health_fall'" in bad.stderr
    down = churnlens(home, "alerts", "--tasks-db", "postgresql://ana:hunter2@127.0.0.1:9/t",
                     check=False)
    assert down.returncode == 2 and "cannot open the task store" in down.stderr
    assert "hunter2" not in down.stderr + down.stdout
