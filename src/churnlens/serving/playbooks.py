"""Playbooks: which play to run for an account, by rules a CS team can read and change."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

CONDITIONS = ("tier", "failing_pillar", "max_days_to_renewal", "max_tenure_days",
              "min_churn_probability", "max_churn_probability", "min_expansion_probability")


class PlaybookError(ValueError):
    """A playbook file that cannot be used, with the rule and key at fault."""


@dataclass(frozen=True)
class Rule:
    playbook: str
    reason: str
    when: dict[str, Any] = field(default_factory=dict)

    def matches(self, facts: dict[str, Any]) -> bool:
        when = self.when
        if "tier" in when and facts["tier"] not in when["tier"]:
            return False
        if "failing_pillar" in when and facts["failing_pillar"] not in when["failing_pillar"]:
            return False
        limits = (("max_days_to_renewal", "days_to_renewal", max),
                  ("max_tenure_days", "tenure_days", max),
                  ("min_churn_probability", "churn_probability", min),
                  ("max_churn_probability", "churn_probability", max),
                  ("min_expansion_probability", "expansion_probability", min))
        for key, fact, kind in limits:
            if key not in when:
                continue
            value = facts.get(fact)
            if value is None or value != value:  # unknown: the rule cannot be shown to hold
                return False
            if kind is max and value > when[key]:
                return False
            if kind is min and value < when[key]:
                return False
        return True


@dataclass(frozen=True)
class Playbooks:
    rules: tuple[Rule, ...]

    def choose(self, facts: dict[str, Any]) -> tuple[str, str]:
        """(playbook, reason) of the first rule that holds."""
        for rule in self.rules:
            if rule.matches(facts):
                return rule.playbook, rule.reason.format_map(_Facts(facts))
        return "monitor", "No rule matched."

    def for_pillar(self, pillar: str) -> str:
        """The play for work on one pillar: the first rule that names the pillar among its
        failing pillars (what an improvement of a lever of that pillar is carried out by)."""
        for rule in self.rules:
            if pillar in (rule.when.get("failing_pillar") or ()):
                return rule.playbook
        return "monitor"


class _Facts(dict):  # type: ignore[type-arg]
    """Facts as a reason reads them: whole numbers without decimals, unknowns as '?'."""

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return "?" if value is None else value

    def __missing__(self, key: str) -> str:
        return "?"


def load_playbooks(path: Path | None = None) -> Playbooks:
    """The shipped rules, or the user's file when given."""
    if path is None:
        text = resources.files("churnlens.serving").joinpath("playbooks.yaml").read_text()
        where = "the default playbooks"
    else:
        if not path.is_file():
            raise PlaybookError(f"playbook file {path} does not exist")
        text, where = path.read_text(), str(path)
    data = yaml.safe_load(text) or {}
    rules = []
    for index, raw in enumerate(data.get("rules", [])):
        if not isinstance(raw, dict) or "playbook" not in raw:
            raise PlaybookError(f"{where}: rule {index + 1} needs a 'playbook' name")
        when = raw.get("when") or {}
        unknown = sorted(set(when) - set(CONDITIONS))
        if unknown:
            raise PlaybookError(f"{where}: rule {index + 1} ({raw['playbook']}) has unknown "
                                f"conditions {unknown}; known: {list(CONDITIONS)}")
        rules.append(Rule(playbook=str(raw["playbook"]), reason=str(raw.get("reason", "")),
                          when=when))
    if not rules:
        raise PlaybookError(f"{where} holds no rules")
    return Playbooks(tuple(rules))
