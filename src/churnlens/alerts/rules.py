"""Alert rules and webhook endpoints, declared in YAML and validated on load.

The shipped rules (``rules.yaml`` beside this module) are on unless turned off; a user's file
is merged over them by rule name, so changing one threshold does not mean copying every rule.
Every mistake in a file is refused with the rule (or endpoint) and the key at fault, the way
``serving/playbooks.py`` refuses a bad ``playbooks.yaml``; a secret is never repeated back.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from churnlens.alerts import AlertsError

log = logging.getLogger(__name__)

Priority = Literal["urgent", "high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")
"""Most pressing first: a task's ``priority_rank`` is its place here, so sorting by it sorts
urgent before low."""
Tier = Literal["low", "medium", "high"]
Pillar = Literal["onboarding", "adoption", "support", "satisfaction", "commercial"]

CONDITION_INPUTS: dict[str, tuple[str, ...]] = {
    "enters_tier": ("score changes", "the scoring model's tiers"),
    "min_health_fall": ("score changes",),
    "tier": (),
    "max_days_to_renewal": ("renewal dates",),
    "max_tenure_days": ("account tenure",),
    "failing_pillar": ("explanations",),
    "new_nps_at_most": ("NPS surveys",),
    "min_urgent_tickets_90d": ("support tickets",),
    "min_expansion_probability": ("an expansion model",),
}
"""What each condition reads, named as a user knows it: a rule whose inputs the data lacks is
skipped (and said so once), instead of silently never firing."""

REASON_FIELDS = frozenset({
    "account_id", "account_name", "csm", "rule", "playbook", "tier", "health_score",
    "health_fall", "churn_pct", "churn_change", "days_to_renewal", "tenure_days", "last_nps",
    "urgent_tickets_90d", "expansion_pct", "drivers", "change_summary", "as_of",
    "previous_as_of",
})
"""The ``{placeholders}`` a rule's reason may use (``evaluate.reason_facts`` fills them)."""


class When(BaseModel):
    """A rule's conditions; every one given must hold for the rule to fire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enters_tier: Literal["medium", "high"] | None = Field(
        None, description="In this tier now and below it at the previous score, both under "
        "the model that wrote the table (a new model never fires this by itself).")
    min_health_fall: float | None = Field(
        None, gt=0, le=100, description="Health points lost since the previous score, "
        "under the same model.")
    tier: list[Tier] | None = Field(None, min_length=1)
    max_days_to_renewal: int | None = Field(None, ge=0)
    max_tenure_days: int | None = Field(None, ge=0)
    failing_pillar: list[Pillar] | None = Field(None, min_length=1)
    new_nps_at_most: int | None = Field(
        None, ge=0, le=10, description="An NPS answer given since the previous score, at or "
        "below this (6: a detractor).")
    min_urgent_tickets_90d: int | None = Field(None, ge=1)
    min_expansion_probability: float | None = Field(None, gt=0, lt=1)

    def conditions(self) -> dict[str, Any]:
        """The conditions given, by name."""
        return {key: value for key, value in self.model_dump().items() if value is not None}

    def needs(self) -> tuple[str, ...]:
        """The inputs these conditions read."""
        return tuple(dict.fromkeys(need for key in self.conditions()
                                   for need in CONDITION_INPUTS[key]))


class AlertRule(BaseModel):
    """One rule: when it fires, what task it creates, and how often it may fire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    enabled: bool = True
    playbook: str | None = Field(None, min_length=1, description="Omitted: the playbook the "
                                 "score table recommends for the account.")
    priority: Priority = "normal"
    due_days: int = Field(7, ge=0, le=365)
    cooldown_days: int = Field(30, ge=0, le=3650)
    holdout: float = Field(0.0, ge=0, lt=1, description="Share of firings held out as a "
                           "control group: recorded with the same reason, no task.")
    reason: str = Field(min_length=1)
    when: When

    @field_validator("when")
    @classmethod
    def _some_condition(cls, when: When) -> When:
        if not when.conditions():
            raise ValueError("names no condition: a rule that always fires is a task for "
                             "every account")
        return when

    @field_validator("reason")
    @classmethod
    def _known_placeholders(cls, reason: str) -> str:
        try:
            fields = {field for _, field, _, _ in string.Formatter().parse(reason) if field}
        except ValueError as error:  # an unmatched brace
            raise ValueError(f"is not a sentence with {{placeholders}}: {error}") from None
        unknown = sorted(fields - REASON_FIELDS)
        if unknown:
            raise ValueError(f"uses unknown placeholders {unknown}; known: "
                             f"{sorted(REASON_FIELDS)}")
        return reason

    @property
    def priority_rank(self) -> int:
        return PRIORITIES.index(self.priority)


class Endpoint(BaseModel):
    """Where tasks are announced: a URL taking Standard Webhooks, signed with ``secret``.

    The URL is kept secret too: a Slack incoming-webhook URL is itself the credential.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: SecretStr
    secret: SecretStr | None = Field(None, description="whsec_<base64 of 24 to 64 bytes>, as "
                                     "Standard Webhooks secrets are written.")
    secret_env: str | None = Field(None, description="Or the name of the environment variable "
                                   "that holds it, to keep it out of the file.")
    rules: list[str] | None = Field(None, min_length=1, description="Only these rules "
                                    "(default: every rule).")
    priorities: list[Priority] | None = Field(None, min_length=1)
    format: Literal["json", "slack"] = "json"

    @field_validator("url")
    @classmethod
    def _http(cls, url: SecretStr) -> SecretStr:
        parts = urlsplit(url.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return url

    @field_validator("secret")
    @classmethod
    def _signing(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            check_secret(secret.get_secret_value())
        return secret

    @model_validator(mode="after")
    def _check(self) -> Endpoint:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of 'secret' and 'secret_env'")
        if self.secret_env is not None and not os.environ.get(self.secret_env):
            raise ValueError(f"'secret_env': the environment variable {self.secret_env} is not "
                             "set")
        if self.secret_env is not None:
            try:
                check_secret(self.signing_secret)
            except ValueError as error:
                raise ValueError(f"'secret_env' ({self.secret_env}): {error}") from None
        return self

    @property
    def signing_secret(self) -> str:
        if self.secret is not None:
            return self.secret.get_secret_value()
        return os.environ.get(self.secret_env or "", "")

    @property
    def where(self) -> str:
        """The URL as logs, answers and listings show it: scheme and host only."""
        parts = urlsplit(self.url.get_secret_value())
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/…"

    def wants(self, rule: str, priority: str) -> bool:
        return ((self.rules is None or rule in self.rules)
                and (self.priorities is None or priority in self.priorities))


def check_secret(secret: str) -> None:
    """Refuse a secret that is not what Standard Webhooks signs with (whsec_ and base64 of 24
    to 64 bytes), without repeating it: the ``standardwebhooks`` package would quietly decode
    a typo into another key."""
    body = secret.removeprefix("whsec_")
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64 after its whsec_ prefix") from None
    if not 24 <= len(raw) <= 64:
        raise ValueError(f"decodes to {len(raw)} bytes; Standard Webhooks secrets are 24 to "
                         "64 bytes")


def new_secret() -> str:
    """A fresh signing secret, as an endpoint's owner would generate one."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


class RuleBook(BaseModel):
    """The rules and endpoints in force."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_owner: str = Field("CS queue", min_length=1, description="Owner of the tasks of "
                               "accounts without a CSM.")
    rules: list[AlertRule]
    endpoints: list[Endpoint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> RuleBook:
        for what, names in (("rule", [r.name for r in self.rules]),
                            ("endpoint", [e.name for e in self.endpoints])):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{what} names must be unique: {twice} appear twice")
        known = {r.name for r in self.rules}
        for endpoint in self.endpoints:
            unknown = sorted(set(endpoint.rules or ()) - known)
            if unknown:
                raise ValueError(f"endpoint '{endpoint.name}' names unknown rules {unknown}; "
                                 f"known: {sorted(known)}")
        return self

    def rule(self, name: str) -> AlertRule:
        return next(r for r in self.rules if r.name == name)

    def plan(self, inputs: frozenset[str]) -> Plan:
        """Which enabled rules can run on data that has ``inputs``; the others are skipped,
        each with one warning naming what it lacks."""
        active, skipped = [], {}
        for rule in self.rules:
            if not rule.enabled:
                continue
            lacking = [need for need in rule.when.needs() if need not in inputs]
            if lacking:
                skipped[rule.name] = f"the data lacks {' and '.join(lacking)}"
                log.warning("alert rule %s is skipped: %s", rule.name, skipped[rule.name])
            else:
                active.append(rule)
        return Plan(active=tuple(active), skipped=skipped)


@dataclass(frozen=True)
class Plan:
    """The rules that run on one score table, and why the others do not."""

    active: tuple[AlertRule, ...]
    skipped: dict[str, str]


def load_rules(path: Path | None = None) -> RuleBook:
    """The shipped rules, with the user's file (when given) merged over them by rule name."""
    shipped = _read(resources.files("churnlens.alerts").joinpath("rules.yaml").read_text(),
                    "the shipped alert rules")
    where = "the shipped alert rules"
    data = shipped
    if path is not None:
        if not path.is_file():
            raise AlertsError(f"alert rules file {path} does not exist")
        where = str(path)
        data = _merge(shipped, _read(path.read_text(), where), where)
    try:
        return RuleBook.model_validate(data)
    except ValidationError as error:
        raise AlertsError(f"{where}: " + "; ".join(_problem(e, data) for e in error.errors())
                          ) from None


def _read(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise AlertsError(f"{where} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise AlertsError(f"{where} must hold a mapping with 'rules' (and optionally "
                          "'endpoints' and 'default_owner')")
    return data


def _merge(shipped: dict[str, Any], own: dict[str, Any], where: str) -> dict[str, Any]:
    """``own`` over ``shipped``: a rule of the same name changes only the keys it gives (its
    ``when`` too, key by key; ``null`` removes a condition), a new name adds a rule."""
    merged = {**shipped, **{k: v for k, v in own.items() if k != "rules"}}
    rules = {rule["name"]: dict(rule) for rule in shipped["rules"]}
    given = own.get("rules") or []
    if not isinstance(given, list):
        raise AlertsError(f"{where}: 'rules' must be a list of rules")
    for index, rule in enumerate(given):
        if not isinstance(rule, dict) or not isinstance(rule.get("name"), str):
            raise AlertsError(f"{where}: rule {index + 1} needs a 'name'")
        base = rules.get(rule["name"], {})
        when = rule.get("when", {}) if "when" in rule else {}
        if not isinstance(when, dict):
            raise AlertsError(f"{where}: rule '{rule['name']}' key 'when' must be a mapping")
        both = {**base.get("when", {}), **when}
        rules[rule["name"]] = {**base, **rule,
                               "when": {k: v for k, v in both.items() if v is not None}}
    merged["rules"] = list(rules.values())
    return merged


def _problem(error: Any, data: dict[str, Any]) -> str:
    """One validation error as 'rule NAME, key KEY: what is wrong (got VALUE)'."""
    loc = list(error["loc"])
    head = "file"
    if len(loc) >= 2 and loc[0] in ("rules", "endpoints") and isinstance(loc[1], int):
        kind = "rule" if loc[0] == "rules" else "endpoint"
        items = data.get(loc[0]) or []
        item = items[loc[1]] if loc[1] < len(items) else {}
        name = item.get("name") if isinstance(item, dict) else None
        head = f"{kind} '{name}'" if name else f"{kind} {loc[1] + 1}"
        loc = loc[2:]
    key = ".".join(str(part) for part in loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    shown = head + (f", key '{key}'" if key else "") + f": {message}"
    secretive = "endpoint" in head or "secret" in key or "url" in key
    if loc and error["type"] not in ("missing", "value_error") and not secretive:
        shown += f" (got {error['input']!r})"
    return shown
