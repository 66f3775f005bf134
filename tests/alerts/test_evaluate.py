"""The rules on a score table: what fires, under the same model only, once per table, with the
CSM as owner and the account's levers in the reason; held-out draws that do not move."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from alert_fixtures import AS_OF, EXPECTED, SCORES, scored_home

from churnlens.alerts.evaluate import held_out, run_alerts, store_for
from churnlens.alerts.rules import load_rules
from churnlens.settings import Settings

NOW = datetime(2024, 5, 1, 7, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    home = scored_home(tmp_path / "home")
    return Settings(home=home, tier_rule="absolute", tier_high=0.25, tier_medium=0.10)


def test_the_rules_fire_on_what_changed_under_the_same_model(settings: Settings) -> None:
    evaluation = run_alerts(settings, now=NOW)
    assert set(evaluation.plan.skipped) == {"onboarding_stalled", "nps_detractor",
                                            "support_spike"}
    with store_for(settings) as store:
        tasks, _ = store.tasks()
        assert {(t.account_id, t.rule) for t in tasks} == EXPECTED
        entered = next(t for t in tasks if t.rule == "enters_high_tier")
        assert entered.owner == "Jordan Lee" and entered.priority == "urgent"
        assert entered.playbook == "adoption push"  # the account's own, as the rule names none
        assert entered.reason == ("Acme entered the high risk tier (40% churn risk, health 30). "
                                  "Top drivers: 3 of 20 seats active; No key action in 30 days.")
        assert entered.due_date == NOW.date().replace(day=4)
        assert entered.score is not None and entered.score["churn_change"] == 20.0
        assert [d["sentence"] for d in entered.drivers or []][:1] == ["3 of 20 seats active"]
        expansion = next(t for t in tasks if t.rule == "expansion_opportunity")
        assert expansion.owner == "CS queue"  # Globex has no CSM
        assert "a 40% chance of expanding" in expansion.reason


def test_a_rerun_on_the_same_table_creates_nothing(settings: Settings) -> None:
    first = run_alerts(settings, now=NOW)
    again = run_alerts(settings, now=NOW)
    assert len(first.recorded.tasks) == len(EXPECTED)
    assert again.recorded.tasks == [] and again.recorded.already_fired == len(EXPECTED)


def test_a_table_without_changes_fires_no_change_rule(settings: Settings) -> None:
    """The first score (or one without explanations) has no change columns: the change rules
    are skipped, not fired on every high-tier account."""
    table = SCORES.assign(churn_change=float("nan"), health_change=float("nan"))
    evaluation = run_alerts(settings, table, AS_OF, now=NOW)
    assert "the data lacks score changes" in evaluation.plan.skipped["health_falls"]
    assert "enters_high_tier" in evaluation.plan.skipped
    with store_for(settings) as store:
        assert {t.rule for t in store.tasks()[0]} == {"expansion_opportunity",
                                                      "renewal_at_risk"}


def test_held_out_firings_are_drawn_the_same_way_every_time(settings: Settings,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("rules:\n  - name: renewal_at_risk\n    holdout: 0.5\n")
    rule = load_rules(path).rule("renewal_at_risk")
    draws = [held_out(rule, f"acc_{i}", AS_OF) for i in range(2000)]
    assert draws == [held_out(rule, f"acc_{i}", AS_OF) for i in range(2000)]
    assert 0.45 < sum(draws) / len(draws) < 0.55
    many = pd.concat([SCORES[SCORES["account_id"] == "a6"].assign(account_id=f"r{i}")
                      for i in range(40)], ignore_index=True)
    evaluation = run_alerts(settings, many, AS_OF, rules_path=path, now=NOW)
    controls = sum(held_out(rule, f"r{i}", AS_OF) for i in range(40))
    assert evaluation.recorded.held_out == controls > 0
    with store_for(settings) as store:
        renewal = [f for f in store.firings("renewal_at_risk")]
        assert len(renewal) == 40
        assert sum(f["held_out"] for f in renewal) == controls
        assert all(f["task_id"] is None for f in renewal if f["held_out"])
