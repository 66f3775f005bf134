"""The alert rules at the end of `churnlens score`, on the shared trained company."""

from __future__ import annotations

import shutil

import pytest
from homes import trained_home

from churnlens.alerts.store import TaskStore
from conftest import churnlens


@pytest.mark.slow
@pytest.mark.e2e
def test_score_runs_the_rules_and_a_rescore_adds_nothing(tmp_path_factory: pytest.TempPathFactory
                                                         ) -> None:
    home = tmp_path_factory.mktemp("alerts-score") / "home"
    shutil.copytree(trained_home(tmp_path_factory), home)
    first = churnlens(home, "score", "--top", "0")
    assert "Alerts on the" in first.stdout
    with TaskStore(f"sqlite:///{home / 'tasks.db'}") as store:
        made = store.tasks(limit=10_000)[0]
    assert made and all(t.reason and t.owner for t in made)
    again = churnlens(home, "score", "--top", "0")
    assert "0 new tasks, 0 webhooks queued" in again.stdout
    quiet = churnlens(home, "score", "--top", "0", "--no-alerts")
    assert "Alerts on the" not in quiet.stdout
