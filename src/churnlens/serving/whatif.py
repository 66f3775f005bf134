"""What-if: one account's answer for changed feature values, explained live.

One function answers the API's ``POST /v1/what-if`` and the account page's form, so the two
cannot answer the same question differently: both edit a copy of the account's scoring rows
(the model input, the values shown, and the facts scoring reads beside them: MRR, tenure, days
to renewal) and score it with ``score_rows``, the code path of every other answer. The callers
only translate what they were sent (JSON values, form text) and how a refusal is shown.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from churnlens.features.registry import REGISTRY
from churnlens.serving.guards import MAX_WHAT_IF
from churnlens.serving.score import Rows, score_rows
from churnlens.serving.state import ScoreTable, Served
from churnlens.settings import Settings
from churnlens.training.matrix import FeatureSpace

Value = float | str | None
"""A what-if value as the model takes it: a number, a category's level, or unknown (None)."""


@dataclass(frozen=True)
class InvalidChange:
    """A value the model cannot take for ``feature``; ``problem`` says why, in words that
    follow the feature's name or its label (``must be between 0 and 10, not 12``)."""

    feature: str
    problem: str

    def __str__(self) -> str:
        return f"{self.feature} {self.problem}"


class UnknownFeatures(ValueError):
    """Changed values for names that are not the served model's features."""

    def __init__(self, names: list[str], valid: list[str], version: str) -> None:
        self.names, self.valid = names, valid
        super().__init__(f"not features of model {version}: {names[:5]}; its features are "
                         + ", ".join(valid))


def valid_range(name: str) -> tuple[float, float]:
    """The values feature ``name`` can take (its registry range), closed at ±``MAX_WHAT_IF``
    where the registry leaves a side open: no number beyond is a customer's."""
    spec = REGISTRY.get(name)
    low, high = spec.valid if spec is not None and spec.valid is not None else (None, None)
    return (max(low, -MAX_WHAT_IF) if low is not None else -MAX_WHAT_IF,
            min(high, MAX_WHAT_IF) if high is not None else MAX_WHAT_IF)


def checked(space: FeatureSpace, name: str, value: object) -> Value | InvalidChange:
    """``value`` as the model takes it for feature ``name`` (one of ``space``), or what is
    wrong with it: a category takes one of its levels, a number a finite number within the
    feature's range (``valid_range``), a flag 0 or 1. Types are strict: ``true`` is no
    number and ``"5"`` no number either, since a client sending them has mistaken the
    field; ``None`` is an unknown value, as a snapshot has them."""
    if name in space.categories:
        levels = space.categories[name]
        if value is None:
            return None
        if not isinstance(value, str) or value not in levels:
            return InvalidChange(name, f"must be one of {levels}, not {_as_sent(value)}")
        return value
    if value is None:
        return None
    low, high = valid_range(name)
    flag = name in REGISTRY and REGISTRY[name].kind == "flag"
    expected = "is a flag, 0 or 1," if flag else f"is a number between {low:g} and {high:g},"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return InvalidChange(name, f"{expected} not {_as_sent(value)}")
    number = float(value)
    if not math.isfinite(number):
        return InvalidChange(name, f"must be a finite number, not {number}; send null for an "
                             "unknown value")
    if flag and number not in (0, 1):
        return InvalidChange(name, f"{expected} not {number:g}")
    if not low <= number <= high:
        return InvalidChange(name, f"must be between {low:g} and {high:g}, not {number:g}")
    return number


def _as_sent(value: object) -> str:
    """A caller's value as they wrote it: JSON spelling where it has one (``true``, not
    Python's ``True``), cut if long."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def check_changes(served: Served, changes: Mapping[str, object]
                  ) -> tuple[dict[str, Value], list[InvalidChange]]:
    """The changes the model can take, and what is wrong with the others.

    Raises ``UnknownFeatures`` for names the served model does not have: no value of such a
    name could mean anything, so nothing is answered."""
    space = served.bundle.space
    strangers = sorted(set(changes) - set(space.features))
    if strangers:
        raise UnknownFeatures(strangers, list(space.features), served.version)
    accepted: dict[str, Value] = {}
    problems: list[InvalidChange] = []
    for name, value in changes.items():
        result = checked(space, name, value)
        if isinstance(result, InvalidChange):
            problems.append(result)
        else:
            accepted[name] = result
    return accepted, problems


def changed_rows(served: Served, account_id: str, changes: Mapping[str, Value]) -> Rows:
    """A copy of the account's scoring rows with ``changes`` (already checked) applied to the
    model input, the values shown and the facts scoring reads beside them (MRR for the
    segment and revenue, tenure for a new account, days to renewal for the playbook)."""
    space = served.bundle.space
    rows = served.rows.take([served.position[account_id]])
    for name, value in changes.items():
        column = space.features.index(name)
        if name in space.categories:
            rows.x[0, column] = (float("nan") if value is None
                                 else space.categories[name].index(str(value)))
        else:
            rows.x[0, column] = float("nan") if value is None else float(value)
        rows.values[0, column] = value
        if name in rows.meta:
            rows.meta[name] = np.array([float("nan") if value is None else value],
                                       dtype=object)
    return rows


def what_if(served: Served, settings: Settings, account_id: str,
            changes: Mapping[str, Value]) -> dict[str, Any]:
    """The account's answer with ``changes`` (checked by ``check_changes``), explained live."""
    rows = changed_rows(served, account_id, changes)
    scored = score_rows(served.bundle, rows, settings, served.playbooks)
    return ScoreTable(scored).answer_at(0)
