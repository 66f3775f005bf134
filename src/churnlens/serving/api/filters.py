"""The portfolio's filters, shared by ``GET /v1/accounts`` and the portfolio page: the values
each can take in the served portfolio, and the refusal that lists them. A value that is none of
them (``tier=HIGH``, a CSM who does not exist) would otherwise match nothing and read as an
empty portfolio."""

from __future__ import annotations

from collections.abc import Mapping

from churnlens.serving.api.deps import listed, shown
from churnlens.serving.state import UNASSIGNED, Served

TIERS = ("high", "medium", "low")
TOUCH_SEGMENTS = ("high-touch", "mid-touch", "tech-touch")
"""The segments scoring assigns by ARR (``training.evaluation.touch_segment``)."""


def choices(served: Served, name: str) -> list[str]:
    """The values filter ``name`` (tier, segment, playbook or csm) can take in ``served``."""
    ranking = served.ranking
    if name == "tier":
        return list(TIERS)
    if name == "segment":
        return sorted(set(TOUCH_SEGMENTS) | set(ranking["segment"].astype(str)))
    if name == "playbook":
        rules = {rule.playbook for rule in served.playbooks.rules}
        return sorted(rules | (set(ranking["playbook"].astype(str))
                               if "playbook" in ranking else set()))
    if name == "csm":
        return [UNASSIGNED, *sorted({c for c in served.directory["csm"]
                                     if isinstance(c, str) and c})]
    raise KeyError(name)


def unknown_values(served: Served, chosen: Mapping[str, str | None]) -> list[str]:
    """What is wrong with the chosen filters (none given or empty: no filter), each problem
    listing the values its filter can take."""
    problems = []
    for name, value in chosen.items():
        if value:
            valid = choices(served, name)
            if value not in valid:
                problems.append(f"{name} {shown(value)} is none of this portfolio's: "
                                f"{listed(valid)}")
    return problems
