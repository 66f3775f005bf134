"""From a score table to tasks: every active rule is tested on every account, and each firing
becomes a task (or a held-out control firing) with its webhooks queued.

What the rules read comes from what churnlens already wrote: the score table (tier, health,
probabilities, the failing pillar, the drivers, and the change columns that re-score the
previous snapshot with the *same* model, so a new model never fires a change rule by itself),
the snapshot the table scored (tenure, the last NPS answer, urgent tickets) and the accounts'
directory (name and CSM, the task's owner).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from churnlens.alerts import AlertsError
from churnlens.alerts.delivery import CREATED, task_payload
from churnlens.alerts.rules import AlertRule, Plan, RuleBook, load_rules
from churnlens.alerts.store import NewDelivery, NewFiring, Recorded, TaskStore, new_id, now_utc
from churnlens.alerts.store import store_url as resolve_store_url
from churnlens.features.pipeline import read_directory
from churnlens.features.store import PART, partition_dir
from churnlens.serving import explain
from churnlens.settings import Settings

log = logging.getLogger(__name__)

SNAPSHOT_FACTS = ("tenure_days", "last_nps", "days_since_last_nps", "high_urgent_tickets_90d")
"""Snapshot columns the rules read besides the score table."""
NEW_ANSWER_DAYS = 31
"""Without a previous score, an NPS answer this recent counts as new (one monthly grid step)."""
TASK_DRIVERS = 3
"""Drivers kept with a task (what triggered it); the reason names the first two."""
TIERS = ("low", "medium", "high")


@dataclass(frozen=True)
class Evaluation:
    """What one run of the rules on one score table did."""

    as_of: date
    plan: Plan
    firings: dict[str, int]
    """Accounts each active rule held for, before open tasks and cooldowns."""
    recorded: Recorded


def store_for(settings: Settings) -> TaskStore:
    """The task store the settings name (``tasks_db``), else SQLite in HOME."""
    url = settings.tasks_db.get_secret_value() if settings.tasks_db is not None else None
    return TaskStore(resolve_store_url(url, settings.layout.root))


def rules_for(settings: Settings, path: Path | None = None) -> RuleBook:
    """The rules in force: ``path`` (``--alerts``), else the ``alerts`` setting, over the
    shipped ones. A relative path in HOME/churnlens.yaml is read from HOME when it is not
    found from here."""
    chosen = path or settings.alerts
    if chosen is not None and not chosen.is_absolute() and not chosen.exists():
        in_home = settings.layout.root / chosen
        chosen = in_home if in_home.exists() else chosen
    return load_rules(chosen)


def latest_table(settings: Settings) -> tuple[pd.DataFrame, date]:
    """The newest score table in HOME/scores."""
    tables = sorted(settings.layout.scores.glob("????-??-??.parquet"))
    if not tables:
        raise AlertsError(f"no score table in {settings.layout.scores}: run `churnlens score` "
                          "first")
    return pd.read_parquet(tables[-1]), date.fromisoformat(tables[-1].stem)


def account_facts(settings: Settings, table: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The score table with what else the rules read: the snapshot's facts and the accounts'
    name and CSM, row for row."""
    facts = table.copy()
    facts["account_id"] = facts["account_id"].astype(str)
    snapshot = partition_dir(settings.layout.features, as_of) / PART
    if snapshot.is_file():
        present = [c for c in SNAPSHOT_FACTS if c in pq.read_schema(snapshot).names
                   and c not in facts]
        if present:
            extra = pd.read_parquet(snapshot, columns=["account_id", *present])
            extra["account_id"] = extra["account_id"].astype(str)
            facts = facts.merge(extra.drop_duplicates("account_id"), on="account_id",
                                how="left")
    directory = read_directory(settings.layout.features)
    names = directory.to_pandas() if directory is not None else pd.DataFrame()
    for column in ("name", "csm"):
        lookup = (dict(zip(names["account_id"].astype(str), names[column], strict=True))
                  if column in names else {})
        facts[f"account_{column}"] = facts["account_id"].map(lookup)
    return facts


def tier_thresholds(settings: Settings, model_version: str) -> tuple[float, float] | None:
    """(high, medium) churn probabilities of the tiers of the model that wrote the table,
    from its bundle's validated churn rate (as ``serving.score.tiers_of``); None when the
    bundle is gone."""
    metrics = settings.layout.models / model_version / "metrics.json"
    if not metrics.is_file():
        return None
    rate = float(json.loads(metrics.read_text()).get("churn", {}).get("rate") or 0.05)
    return explain.tier_thresholds(settings.tier_rule, rate, settings.tier_high_odds,
                                   settings.tier_medium_odds, settings.tier_high,
                                   settings.tier_medium)


def inputs_of(facts: pd.DataFrame, thresholds: tuple[float, float] | None) -> frozenset[str]:
    """The rule inputs (``rules.CONDITION_INPUTS``) this data has."""

    def known(column: str) -> bool:
        return column in facts and bool(facts[column].notna().any())

    have = {"account tenure": known("tenure_days"), "explanations": "failing_pillar" in facts,
            "renewal dates": known("days_to_renewal"),
            "NPS surveys": known("last_nps") and "days_since_last_nps" in facts,
            "support tickets": "high_urgent_tickets_90d" in facts,
            "an expansion model": known("expansion_probability"),
            "score changes": known("health_change") and known("churn_change"),
            "the scoring model's tiers": thresholds is not None}
    return frozenset(name for name, present in have.items() if present)


def holds(rule: AlertRule, facts: pd.DataFrame, as_of: date,
          thresholds: tuple[float, float] | None) -> np.ndarray:
    """Whether each account meets every condition of ``rule`` (unknown values never do)."""
    mask = np.ones(len(facts), dtype=bool)

    def number(column: str) -> pd.Series:
        return pd.to_numeric(facts[column], errors="coerce")

    for key, value in rule.when.conditions().items():
        if key == "enters_tier":
            assert thresholds is not None  # the plan skips the rule without them
            before = number("churn_probability") - number("churn_change") / 100.0
            was = pd.Series(explain.tier(before.to_numpy(float), *thresholds))
            rank = TIERS.index(value)
            now_rank = facts["tier"].map(TIERS.index)
            was_rank = was.map(TIERS.index).where(before.notna())
            test = (now_rank >= rank) & (was_rank < rank)
        elif key == "min_health_fall":
            test = number("health_change") <= -value
        elif key == "tier":
            test = facts["tier"].isin(value)
        elif key == "failing_pillar":
            test = facts["failing_pillar"].isin(value)
        elif key == "max_days_to_renewal":
            test = number("days_to_renewal").between(0, value)
        elif key == "max_tenure_days":
            test = number("tenure_days") <= value
        elif key == "new_nps_at_most":
            test = (number("last_nps") <= value) & (number("days_since_last_nps")
                                                    <= _answer_window(facts, as_of))
        elif key == "min_urgent_tickets_90d":
            test = number("high_urgent_tickets_90d") >= value
        elif key == "min_expansion_probability":
            test = number("expansion_probability") >= value
        else:  # pragma: no cover - rules.When forbids other keys
            raise AlertsError(f"rule {rule.name}: no evaluation for condition {key}")
        mask &= test.fillna(False).to_numpy(bool)
    return mask


def _answer_window(facts: pd.DataFrame, as_of: date) -> pd.Series:
    """Days back an NPS answer counts as new: since the previous score (an answer on its day
    is not in its snapshot, which reads rows before as_of), else ``NEW_ANSWER_DAYS``."""
    if "previous_as_of" not in facts:
        return pd.Series(NEW_ANSWER_DAYS, index=facts.index)
    previous = pd.to_datetime(facts["previous_as_of"], errors="coerce")
    return ((pd.Timestamp(as_of) - previous).dt.days).fillna(NEW_ANSWER_DAYS)


def held_out(rule: AlertRule, account_id: str, as_of: date) -> bool:
    """Whether this firing goes to the rule's control group: a draw fixed by (rule, account,
    as_of), so a rerun, another machine or a later audit draws the same."""
    if rule.holdout <= 0:
        return False
    digest = hashlib.sha256(f"{rule.name}|{account_id}|{as_of.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rule.holdout


def levers(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The account's drivers that raise its risk, strongest first (the score table's
    drivers are levers: behaviour someone can change)."""
    raw = row.get("drivers_json")
    if not isinstance(raw, str):
        return []
    try:
        drivers = json.loads(raw)
    except json.JSONDecodeError:
        return []
    return [d for d in drivers if isinstance(d, dict) and (d.get("points") or 0) > 0]


def reason_facts(row: dict[str, Any], rule: AlertRule, playbook: str) -> dict[str, str]:
    """The placeholders a rule's reason reads (``rules.REASON_FIELDS``), as text."""
    raising = levers(row)[:2]
    drivers = "; ".join(str(d.get("sentence", "")).rstrip(".") for d in raising)
    health_change = _float(row.get("health_change"))
    return {
        "account_id": str(row["account_id"]),
        "account_name": _text(row.get("account_name")) or str(row["account_id"]),
        "csm": _text(row.get("account_csm")) or "no CSM",
        "rule": rule.name, "playbook": playbook, "tier": _text(row.get("tier")) or "?",
        "health_score": _figure(row.get("health_score")),
        "health_fall": _figure(-health_change if health_change is not None else None),
        "churn_pct": _figure(_scaled(row.get("churn_probability")), 0),
        "churn_change": (f"{_float(row.get('churn_change')):+.1f}"
                         if _float(row.get("churn_change")) is not None else "?"),
        "days_to_renewal": _figure(row.get("days_to_renewal"), 0),
        "tenure_days": _figure(row.get("tenure_days"), 0),
        "last_nps": _figure(row.get("last_nps"), 0),
        "urgent_tickets_90d": _figure(row.get("high_urgent_tickets_90d"), 0),
        "expansion_pct": _figure(_scaled(row.get("expansion_probability")), 0),
        "drivers": drivers or "no single lever stands out",
        "change_summary": _text(row.get("change_summary")) or "no previous score",
        "as_of": str(row.get("as_of") or "?"),
        "previous_as_of": (str(row["previous_as_of"]) if _text(row.get("previous_as_of"))
                           else "the previous score"),
    }


def evaluate(settings: Settings, table: pd.DataFrame, as_of: date, book: RuleBook,
             store: TaskStore, now: datetime | None = None) -> Evaluation:
    """Run every active rule on one score table and record what fired.

    Idempotent: a firing is (account, rule, as_of), so evaluating the same table again
    creates no task and queues no webhook.
    """
    now = now or now_utc()
    facts = account_facts(settings, table, as_of)
    versions = (sorted(str(v) for v in facts["model_version"].dropna().unique())
                if "model_version" in facts else [])
    thresholds = tier_thresholds(settings, versions[0]) if len(versions) == 1 else None
    plan = book.plan(inputs_of(facts, thresholds))
    fired: list[NewFiring] = []
    counts: dict[str, int] = {}
    for rule in plan.active:
        hits = np.flatnonzero(holds(rule, facts, as_of, thresholds))
        counts[rule.name] = len(hits)
        for index in hits:
            row = {str(k): v for k, v in facts.iloc[index].to_dict().items()}
            fired.append(_firing(book, rule, row, as_of, now))
    recorded = store.record(fired, {rule.name: rule.cooldown_days for rule in plan.active},
                            now)
    log.info("alerts on %s: %d tasks, %d held out, %d webhooks queued", as_of,
             len(recorded.tasks), recorded.held_out, recorded.deliveries)
    return Evaluation(as_of=as_of, plan=plan, firings=counts, recorded=recorded)


def run_alerts(settings: Settings, table: pd.DataFrame | None = None, as_of: date | None = None,
               rules_path: Path | None = None, now: datetime | None = None) -> Evaluation:
    """Load the rules, open the store, evaluate ``table`` (default: the latest score table)."""
    book = rules_for(settings, rules_path)
    if table is None or as_of is None:
        table, as_of = latest_table(settings)
    with store_for(settings) as store:
        return evaluate(settings, table, as_of, book, store, now)


def _firing(book: RuleBook, rule: AlertRule, row: dict[str, Any], as_of: date,
            now: datetime) -> NewFiring:
    playbook = rule.playbook or _text(row.get("playbook")) or "review"
    reason = rule.reason.format_map(reason_facts(row, rule, playbook))
    account = str(row["account_id"])
    score: dict[str, Any] = {key: _plain(row.get(key)) for key in (
        "churn_probability", "expansion_probability", "tier", "health_score", "health_change",
        "churn_change", "days_to_renewal", "failing_pillar", "segment", "arr")
        if key in row}
    drivers = [{k: d.get(k) for k in ("feature", "value", "points", "pillar", "sentence")}
               for d in levers(row)[:TASK_DRIVERS]]
    task_id = new_id()
    control = held_out(rule, account, as_of)
    owner = _text(row.get("account_csm")) or book.default_owner
    due = now.date() + timedelta(days=rule.due_days)
    view = {"task_id": task_id, "account_id": account,
            "account_name": _text(row.get("account_name")) or account, "rule": rule.name,
            "playbook": playbook, "priority": rule.priority, "owner": owner,
            "due_date": due.isoformat(), "reason": reason, "as_of": as_of.isoformat(),
            "score": score, "drivers": drivers}
    deliveries = () if control else tuple(
        NewDelivery(id=f"msg_{new_id()}", endpoint=endpoint.name, event=CREATED,
                    payload=task_payload(endpoint.format, view, now))
        for endpoint in book.endpoints if endpoint.wants(rule.name, rule.priority))
    return NewFiring(account_id=account, rule=rule.name, as_of=as_of, held_out=control,
                     playbook=playbook, priority=rule.priority,
                     priority_rank=rule.priority_rank, owner=owner, due_date=due,
                     reason=reason, score=score, drivers=drivers,
                     model_version=_text(row.get("model_version")), task_id=task_id,
                     deliveries=deliveries)


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value)
    return text or None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else number


def _scaled(value: Any) -> float | None:
    number = _float(value)
    return None if number is None else 100.0 * number


def _figure(value: Any, decimals: int = 1) -> str:
    """A number as a sentence reads it: whole numbers without decimals, unknown as '?'."""
    number = _float(value)
    if number is None:
        return "?"
    rounded = round(number, decimals)
    return f"{rounded:.0f}" if float(rounded).is_integer() else f"{rounded:.{decimals}f}"


def _plain(value: Any) -> Any:
    """A value JSON can hold (numpy scalars and NaN become numbers and null)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, date):
        return value.isoformat()
    return value
