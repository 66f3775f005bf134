"""One typed settings object for every parameter churnlens reads.

Precedence, highest first: values passed by the CLI (or a test), environment variables
(``CHURNLENS_*``), ``HOME/churnlens.yaml``, then the defaults below.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from churnlens.home import Home

DEFAULT_HOME = Path("churnlens-data")


class Settings(BaseSettings):
    """Everything a run can be told, in one place."""

    model_config = SettingsConfigDict(env_prefix="CHURNLENS_", extra="forbid")

    home: Path = Field(DEFAULT_HOME, description="Project folder every step reads and writes.")

    # loading and validation
    data: str | None = Field(
        None, description="Raw history: a folder of Parquet/CSV files or an Ibis URL. "
        "Default HOME/raw.")
    mapping: Path | None = Field(
        None, description="YAML file mapping foreign names onto the contract.")
    strict: bool = Field(
        False, description="Refuse the load on any bad row instead of quarantining.")
    now: datetime | None = Field(
        None, description="Reference time for 'timestamp in the future' checks (UTC). "
        "Default: the wall clock.")

    # snapshots and labels
    grid: Literal["monthly", "weekly"] = Field("monthly", description="Snapshot calendar.")
    horizon_days: int = Field(90, gt=0, description="Label window after each snapshot.")
    churn_definition: Literal["subscription", "inactivity"] = Field(
        "subscription", description="Churn as a lapsed subscription, or as silence.")
    inactivity_days: int = Field(90, gt=0, description="Silence that counts as churn.")
    grace_days: int = Field(30, ge=0, description="A restart within this many days is no churn.")
    expansion_min_share: float = Field(0.10, ge=0, description="MRR rise that counts as "
                                       "expansion (0.10 = +10%).")
    key_events: list[str] = Field(
        default_factory=lambda: ["workflow_run", "report_create", "integration_sync"],
        description="Event names that mean the customer got value (time to first value).")
    feature_set: str = Field("churn_v1", description="Named feature set to build.")
    money_event: str | None = Field(
        None, description="The usage event whose quantity is an amount of money (an order's "
        "value, a payment): spend, order value and their trends become features, and the "
        "training report's RFM baselines get their M. Unset: no monetary feature, and "
        "quantities are never read as money.")

    # training
    fit_months: int | None = Field(
        None, gt=0, description="Snapshot dates the model is fitted on, just before tuning "
        "(older ones are left out). Default: every labelled date the other slices leave.")
    tuning_months: int | None = Field(
        None, gt=0, description="Snapshot dates before calibration that choose hyper-parameters "
        "and the number of trees (early stopping). Default: chosen from the history, 1 to 3.")
    calibration_months: int | None = Field(
        None, gt=0, description="Snapshot dates before validation that fit the calibrator. "
        "Default: chosen from the history, 1 to 3.")
    validation_months: int | None = Field(
        None, gt=0, description="Latest labelled snapshot dates held out as the out-of-time "
        "validation slice. Default: chosen from the history, 1 to 3.")
    seed: int = Field(7, description="Seed for model fitting and bootstrap intervals.")
    bootstrap: int = Field(200, ge=0, description="Bootstrap resamples (over accounts) for "
                           "confidence intervals; 0 turns them off.")
    cold_start: Literal["auto", "always", "never"] = Field(
        "auto", description="Answer new accounts (tenure under 90 days) with a churn model of "
        "their onboarding features: auto when it beats the full model's Brier score on new "
        "accounts out of time, always, or never.")
    high_touch_arr: float = Field(100_000.0, description="ARR from which an account is "
                                  "high-touch.")
    mid_touch_arr: float = Field(20_000.0, description="ARR from which an account is mid-touch "
                                 "(below: tech-touch).")
    gate_auc_tolerance: float = Field(
        0.005, ge=0, description="A challenger may lose this much ROC AUC and still be promoted.")
    gate_brier_tolerance: float = Field(
        0.001, ge=0, description="A challenger may gain this much Brier score and still be "
        "promoted.")
    model_params: dict[str, Any] = Field(
        default_factory=dict, description="LightGBM parameters fixed for this run (they skip "
        "the search), e.g. {num_leaves: 7}.")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow store; default SQLite at HOME/mlflow.db. MLFLOW_TRACKING_URI "
        "also works.")

    # scoring and serving
    currency: str = Field(
        "USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the currency MRR and ARR "
        "are in: the pages show money with its symbol ($, €, £, ¥ ...) or, for a currency "
        "without one here, its code (1,200 SEK).")
    tier_rule: Literal["relative", "absolute"] = Field(
        "relative", description="relative: tiers against the churn rate the model was "
        "validated on (frozen with it), so they mean the same at a 5% and a 50% base rate; "
        "absolute: the fixed probabilities tier_high and tier_medium.")
    tier_high_odds: float = Field(
        3.0, gt=1, description="relative tiers: high risk from churn odds this many times the "
        "base rate's odds (at a 8% base rate, about 21%; at 49%, about 74%).")
    tier_medium_odds: float = Field(
        1.0, gt=0, description="relative tiers: medium risk from churn odds this many times the "
        "base rate's odds (1: more at risk than the average account).")
    tier_high: float = Field(0.25, gt=0, le=1, description="absolute tiers: churn probability "
                             "from which an account is high risk.")
    tier_medium: float = Field(0.10, gt=0, le=1, description="absolute tiers: churn probability "
                               "from which an account is medium risk.")
    playbooks: Path | None = Field(None, description="YAML playbook rules replacing the shipped "
                                   "ones.")
    # alerts and tasks (``churnlens.alerts``)
    alerts: Path | None = Field(
        None, description="YAML alert rules and webhook endpoints merged over the shipped "
        "rules (by rule name).")
    tasks_db: SecretStr | None = Field(
        None, description="The task store: a SQLAlchemy URL (postgresql://user:password@host/"
        "db). Default: SQLite at HOME/tasks.db. Secret: it may hold a password.")
    delivery_attempts: int = Field(
        8, ge=1, le=100, description="Sends of one webhook before it is marked dead.")
    delivery_max_delay_seconds: float = Field(
        300.0, gt=0, description="Longest wait between two sends of one webhook (exponential "
        "backoff with jitter up to this).")
    delivery_timeout_seconds: float = Field(
        10.0, gt=0, description="How long one send waits for the receiver's answer.")
    champion_source: Literal["models", "mlflow"] = Field(
        "models", description="Where serving and scoring find the champion: HOME/models/CHAMPION "
        "(exported at promotion), or the registry's champion alias in the MLflow store (the "
        "bundle is fetched into HOME/models/ when the alias moves).")
    reload_poll_seconds: float = Field(
        5.0, ge=0, description="How often the server checks HOME/models/CHAMPION for a new "
        "champion to swap in (0: only on POST /v1/admin/reload).")
    whatif_rate_per_minute: int = Field(
        120, ge=0, description="Live what-if answers each API key may ask for per minute, in "
        "bursts of up to that many, in each server worker; beyond it the server answers 429 "
        "with Retry-After (0: unlimited).")
    metrics_scope: Literal["read", "whatif", "admin"] | None = Field(
        None, description="The key scope GET /metrics needs (CHURNLENS_METRICS_SCOPE=read): it "
        "names every feature and its drift. Unset: open to anyone who reaches the server, as "
        "Prometheus scrapes without credentials by default.")
    max_score_age_days: float = Field(
        2.0, ge=0, description="Scores whose table was written longer ago than this many days "
        "are marked stale on every page and answer, and /readyz says degraded "
        "(CHURNLENS_MAX_SCORE_AGE_DAYS; 0: never by age). Scores are also stale, whatever "
        "their age, when the raw history runs past the next snapshot date after theirs.")
    secure_cookies: bool = Field(
        False, description="Send the pages' session cookie with the Secure flag, so a browser "
        "sends it only over HTTPS: set it (CHURNLENS_SECURE_COOKIES=true) wherever the pages are "
        "reached over HTTPS, as behind a TLS proxy.")

    # lifetime value (``training/lifetime.py``)
    ltv_discount_rate: float = Field(
        0.10, ge=0, le=1, description="Annual rate lifetime value discounts future revenue "
        "by, applied monthly: revenue m months out counts (1 + rate)^(-m/12).")
    ltv_horizon_months: int = Field(
        60, ge=12, le=600, description="Months of future revenue lifetime value sums "
        "(expected revenue over 12 months is always 12).")
    ltv_gross_margin: float = Field(
        1.0, gt=0, le=1, description="Share of revenue lifetime value keeps: 1 gives revenue "
        "LTV, e.g. 0.8 gross-profit LTV. Expected 12-month revenue is never margin-adjusted.")

    # execution
    backend: Literal["duckdb", "spark", "postgres"] = Field(
        "duckdb", description="Engine that validates the history and builds features (and, for "
        "`score`, scores): embedded DuckDB; Spark (local or any master, reading the raw folder "
        "or paths Spark can read such as hdfs:// or s3a://); or PostgreSQL, reading the tables "
        "at the `data` URL (postgresql://user:password@host:port/database). A database URL in "
        "`data` picks its engine by itself.")
    spark_master: str = Field(
        "local[*]", description="Spark master URL: local[N], spark://host:7077, yarn, "
        "k8s://...")
    spark_conf: dict[str, str] = Field(
        default_factory=dict, description="Extra Spark settings, e.g. {'spark.executor.memory': "
        "'8g'}; they win over churnlens' own defaults.")
    duckdb_memory_limit: str | None = Field(
        None, description="e.g. '4GB'; DuckDB spills beyond it.")
    threads: int | None = Field(
        None, ge=1, description="Threads (and scoring processes) for the engines, LightGBM and "
        "scoring; default: the cores this process may run on. Set it on a shared machine: "
        "two LightGBM trainings each running on every core of the same two cores took 5x "
        "as long as each on one.")

    @property
    def layout(self) -> Home:
        return Home(self.home)

    @property
    def cores(self) -> int:
        """``threads`` or, unset, the cores this process may run on: a CPU set given by
        taskset or a container counts, where ``os.cpu_count`` would say every core of the
        host and oversubscribe them."""
        allowed = getattr(os, "sched_getaffinity", None)  # Linux only; macOS lacks it
        return self.threads or (len(allowed(0)) if allowed else os.cpu_count()) or 1

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _HomeYamlSource(settings_cls, init_settings))


class _HomeYamlSource(PydanticBaseSettingsSource):
    """Reads ``churnlens.yaml`` from the home that the higher-priority sources chose."""

    def __init__(self, settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self._init = init

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        import os

        home = self._init().get("home") or os.environ.get("CHURNLENS_HOME") or DEFAULT_HOME
        path = Path(home) / "churnlens.yaml"
        if not path.is_file():
            return {}
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of setting names to values")
        return {key.replace("-", "_"): value for key, value in loaded.items()}


def load_settings(**overrides: Any) -> Settings:
    """Settings with CLI/test overrides; ``None`` overrides mean 'not given'."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
