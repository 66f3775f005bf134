"""Alert rules as data: the shipped defaults, a user's file merged over them, and every mistake
refused with the rule and key at fault (and never a secret repeated back)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from churnlens.alerts import AlertsError
from churnlens.alerts.rules import CONDITION_INPUTS, Pillar, load_rules, new_secret
from churnlens.features.registry import PILLARS_ORDER

ALL_INPUTS = frozenset(need for needs in CONDITION_INPUTS.values() for need in needs)


def test_the_shipped_rules_cover_the_moments_cs_names() -> None:
    book = load_rules()
    rules = {rule.name: rule for rule in book.rules}
    assert set(rules) == {"enters_high_tier", "health_falls", "renewal_at_risk",
                          "onboarding_stalled", "nps_detractor", "support_spike",
                          "expansion_opportunity"}
    assert rules["health_falls"].when.min_health_fall == 15
    assert rules["renewal_at_risk"].when.max_days_to_renewal == 60
    assert rules["renewal_at_risk"].when.tier == ["medium", "high"]
    assert all(rule.enabled and rule.cooldown_days == 30 and rule.due_days > 0
               for rule in book.rules)
    assert book.endpoints == [] and book.default_owner == "CS queue"
    assert set(Pillar.__args__) == set(PILLARS_ORDER)  # type: ignore[attr-defined]


def test_a_users_file_changes_a_threshold_turns_a_rule_off_and_adds_one(tmp_path: Path
                                                                        ) -> None:
    path = tmp_path / "alerts.yaml"
    secret = new_secret()
    path.write_text(f"""
default_owner: Retention desk
rules:
  - name: health_falls
    when: {{min_health_fall: 20}}
  - name: renewal_at_risk
    when: {{tier: null}}
  - name: support_spike
    enabled: false
  - name: big_drop
    priority: urgent
    due_days: 1
    holdout: 0.2
    reason: "{{account_name}} lost {{health_fall}} points"
    when: {{min_health_fall: 30, tier: [high]}}
endpoints:
  - name: crm
    url: https://crm.example.com/hooks/churnlens
    secret: {secret}
    priorities: [urgent, high]
""")
    book = load_rules(path)
    rules = {rule.name: rule for rule in book.rules}
    assert rules["health_falls"].when.min_health_fall == 20
    assert rules["health_falls"].priority == "high"  # the rest of the shipped rule is kept
    assert rules["renewal_at_risk"].when.conditions() == {"max_days_to_renewal": 60}
    assert not rules["support_spike"].enabled
    assert rules["big_drop"].holdout == 0.2 and rules["big_drop"].priority_rank == 0
    plan = book.plan(ALL_INPUTS)
    assert "support_spike" not in [r.name for r in plan.active]
    assert "support_spike" not in plan.skipped  # off, not skipped
    endpoint = book.endpoints[0]
    assert endpoint.wants("big_drop", "urgent") and not endpoint.wants("big_drop", "normal")
    assert endpoint.where == "https://crm.example.com/…"
    assert secret not in repr(book) and secret not in str(book.model_dump())


@pytest.mark.parametrize(("text", "expected"), [
    ("rules:\n  - name: health_falls\n    when: {min_health_fall: -3}\n",
     "rule 'health_falls', key 'when.min_health_fall': Input should be greater than 0 (got -3)"),
    ("rules:\n  - name: health_falls\n    when: {max_churn: 0.5}\n",
     "rule 'health_falls', key 'when.max_churn': Extra inputs are not permitted"),
    ("rules:\n  - name: mine\n    reason: '{acount_name} is at risk'\n    when: {tier: [high]}\n",
     "rule 'mine', key 'reason': uses unknown placeholders ['acount_name']"),
    ("rules:\n  - name: mine\n    reason: x\n    when: {}\n",
     "rule 'mine', key 'when': names no condition"),
    ("rules:\n  - name: mine\n    reason: x\n    priority: asap\n    when: {tier: [high]}\n",
     "rule 'mine', key 'priority': Input should be 'urgent', 'high', 'normal' or 'low'"),
    ("rules:\n  - name: mine\n    when: {tier: [high]}\n", "rule 'mine', key 'reason': Field "
     "required"),
    ("rules:\n  - playbook: renewal save\n", "rule 1 needs a 'name'"),
    ("alerts: []\n", "key 'alerts': Extra inputs are not permitted"),
    ("rules: [\n", "is not valid YAML"),
])
def test_a_mistake_names_the_rule_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    with pytest.raises(AlertsError) as caught:
        load_rules(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(("endpoint", "expected"), [
    ("url: ftp://crm.example.com/x\n    secret: {secret}", "endpoint 'crm', key 'url': must "
     "be an http:// or https:// URL"),
    ("url: https://crm.example.com/x?token=hunter2hunter2\n    secret: whsec_c2hvcnQ=",
     "endpoint 'crm', key 'secret': decodes to 5 bytes"),
    ("url: https://crm.example.com/x?token=hunter2hunter2\n    secret: 'whsec_not base64!'",
     "endpoint 'crm', key 'secret': is not base64"),
    ("url: https://crm.example.com/x?token=hunter2hunter2", "endpoint 'crm': give exactly one "
     "of 'secret' and 'secret_env'"),
    ("url: https://crm.example.com/x\n    secret_env: CHURNLENS_TEST_UNSET_SECRET",
     "'secret_env': the environment variable CHURNLENS_TEST_UNSET_SECRET is not set"),
    ("url: https://crm.example.com/x\n    secret: {secret}\n    rules: [health_fall]",
     "endpoint 'crm' names unknown rules ['health_fall']"),
])
def test_an_endpoint_mistake_is_named_without_its_secrets(tmp_path: Path, endpoint: str,
                                                          expected: str) -> None:
    path = tmp_path / "alerts.yaml"
    secret = new_secret()
    path.write_text("endpoints:\n  - name: crm\n    " + endpoint.format(secret=secret) + "\n")
    with pytest.raises(AlertsError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert expected in message
    for never in (secret, "hunter2", "c2hvcnQ", "not base64!"):
        assert never not in message


def test_a_secret_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    secret = new_secret()
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", secret)
    path = tmp_path / "alerts.yaml"
    path.write_text("endpoints:\n  - name: crm\n    url: https://crm.example.com/x\n"
                    "    secret_env: CRM_WEBHOOK_SECRET\n")
    assert load_rules(path).endpoints[0].signing_secret == secret


def test_a_rule_whose_inputs_the_data_lacks_is_skipped_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    book = load_rules()
    lacking = ALL_INPUTS - {"NPS surveys", "an expansion model"}
    with caplog.at_level(logging.WARNING, logger="churnlens.alerts.rules"):
        plan = book.plan(lacking)
    assert plan.skipped == {"nps_detractor": "the data lacks NPS surveys",
                            "expansion_opportunity": "the data lacks an expansion model"}
    assert {r.name for r in plan.active} == {r.name for r in book.rules} - set(plan.skipped)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("is skipped" in w for w in warned)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AlertsError, match="does not exist"):
        load_rules(tmp_path / "nope.yaml")
