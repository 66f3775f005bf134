"""The API's request and answer schemas, and the OpenAPI lines of its refusals.

Every answer a route gives is one of these models (or documented by one where the route
serialises its JSON itself), so the OpenAPI schema that clients and the fuzz test read is the
contract.
"""

# No ``from __future__ import annotations``: pydantic and FastAPI read these at runtime.

from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

from churnlens.serving.keys import Scope


class Problem(BaseModel):
    """Every refusal: what is wrong, in words, and what to do."""

    detail: str = Field(examples=["unknown account 'acc_x': it is not a customer in the "
                                  "snapshot of 2026-01-01"])


class Driver(BaseModel):
    feature: str
    value: Any = None
    points: float = Field(description="Percentage points of churn probability it adds (+) or "
                          "removes (-).")
    direction: str
    pillar: str
    sentence: str


class Playbook(BaseModel):
    name: str
    reason: str


class ChangeDriver(BaseModel):
    feature: str | None = Field(description="The feature whose value changed; null for the "
                                "rest of the change (interactions of unchanged features).")
    before: Any = None
    after: Any = None
    points: float = Field(description="Percentage points of churn probability this change "
                          "added (+) or removed (-).")
    pillar: str | None = None
    sentence: str


class Change(BaseModel):
    """What moved the score since the previous snapshot; the points of ``drivers`` (levers)
    and ``context`` together sum to ``churn_points``."""

    previous_as_of: str
    churn_points: float = Field(description="Change in churn probability, in points.")
    health_points: float = Field(description="Change in the health score.")
    summary: str
    drivers: list[ChangeDriver] = Field(description="Changes of levers: behaviour the customer "
                                        "or the CSM can change.")
    context: list[ChangeDriver] = Field([], description="Changes of context: timing, "
                                        "contract, firmographics.")


class Improvement(BaseModel):
    """A lever change that would lower the churn probability, computed with the model: a
    what-if sent ``changes`` answers ``improved_churn_probability``."""

    feature: str
    pillar: str
    root: str = Field(description="The lever actually changed (a derived feature moves "
                      "through it).")
    value: float | None = None
    improved_value: float | None = None
    changes: dict[str, float | None] = Field(description="Every feature the change moves, "
                                             "with its new value.")
    churn_probability: float
    improved_churn_probability: float
    points: float = Field(description="Change in churn probability, in percentage points "
                          "(negative: the change lowers the risk).")
    playbook: str
    sentence: str


class Timing(BaseModel):
    """When the account is likely to churn: the hazard model's timing at the churn model's
    level, so the last month equals ``churn_probability``."""

    by_month: list[float] = Field(description="Cumulative churn probability within 30, 60, "
                                  "90 days (each of the next months of the horizon).")
    days_to_renewal: float | None = Field(None, description="Days to the next renewal; null "
                                          "when unknown.")
    before_renewal: float | None = Field(None, description="Probability of churning before "
                                         "the renewal date; null when it is unknown.")
    renewal_beyond_horizon: bool | None = Field(None, description="True when the renewal lies "
                                                "beyond the horizon: ``before_renewal`` is then "
                                                "the horizon's probability, a lower bound.")
    summary: str


class Coverage(BaseModel):
    """How much of the account the model could see."""

    share: float = Field(description="Share of the model's features with a value.")
    pillars_without_data: list[str] = Field(description="Pillars with no value at all (a "
                                            "missing source table, or no rows for this "
                                            "account): shown as no data, never failing.")
    new_account: bool | None = Field(None, description="Tenure under 90 days: less than one "
                                     "horizon of history.")


class ScoreFreshness(BaseModel):
    """Whether the scores in this answer are stale (``serving/freshness.py``): the raw history
    runs past the next snapshot date after theirs, or their table was written longer ago than
    ``max_score_age_days``."""

    stale: bool
    reasons: list[str] = Field(description="Why they are stale, in words; empty when fresh.")
    as_of: str = Field(description="The snapshot date the scores were computed on.")
    scored_at: str | None = Field(description="When the score table was written (UTC); null "
                                  "while the server builds it.")
    age_days: float = Field(description="Days since the score table was written.")
    history_last_day: str | None = Field(description="The raw history's last day, as "
                                         "`churnlens features` last saw it; null when unknown.")
    remedy: str | None = Field(description="What to run when stale: `churnlens features && "
                               "churnlens score`.")


class RiskAnswer(BaseModel):
    account_id: str
    name: str | None = Field(None, description="The account's name from the account "
                             "directory; null where it has none.")
    csm: str | None = Field(None, description="The account's CSM from the account directory; "
                            "null for an unassigned account.")
    as_of: str = Field(description="The snapshot date whose features were used.")
    model_version: str
    churn_probability: float
    churn_model: str = Field("full", description="`full`, or `cold-start` for a new account "
                             "(tenure under 90 days): answered by the model trained on new "
                             "accounts' onboarding features.")
    expansion_probability: float | None = Field(
        description="Probability of expanding within the horizon; null when the model has no "
        "expansion model (the history it was trained on held no expansions).")
    tier: str = Field(description="high, medium or low by `risk`, against the reference of "
                      "its basis (see `health_score`).")
    health_score: float = Field(description="0-100, higher is healthier: 100 / (1 + "
                                "sqrt(odds(risk) / odds(reference))), 50 at the reference "
                                "frozen with the model: the validation churn rate for a "
                                "horizon `risk`, the rate of loss at the next renewal for a "
                                "renewal `risk`.")
    segment: str
    arr: float | None = Field(None, description="Annual recurring revenue at the snapshot.")
    arr_at_risk: float | None = Field(None, description="Churn probability x ARR: the revenue "
                                      "expected to be lost over the horizon.")
    expected_expansion_arr: float | None = Field(
        None, description="Expansion probability x the ARR an expansion added on average in "
        "history: the ARR expected to be gained over the horizon.")
    risk: float | None = Field(None, description="The one risk a CSM sees, which tier, health "
                               "and the portfolio order read: `renewal_risk` where the account "
                               "has a renewal date, else `churn_probability`.")
    risk_basis: str | None = Field(None, description="`renewal` (risk until the next renewal) "
                                   "or `horizon` (the horizon probability: no renewal date, "
                                   "or no renewal model to read one beyond the horizon).")
    renewal_risk: float | None = Field(None, description="Probability of being lost at or "
                                       "before the next renewal (within 12 months without a "
                                       "renewal date); null for a renewal beyond the horizon "
                                       "when the model has no renewal model (a history too "
                                       "short to have seen renewals a year out).")
    expected_revenue_12m: float | None = Field(None, description="Revenue expected over the "
                                               "next 12 months: monthly revenue x the chance "
                                               "of still being a customer, month by month. "
                                               "Null where there is no revenue (see "
                                               "`value_basis`).")
    lifetime_value: float | None = Field(None, description="Discounted expected revenue until "
                                         "churn over `ltv_horizon_months` (default 60) at the "
                                         "annual `ltv_discount_rate` (default 10%), times "
                                         "`ltv_gross_margin` (default 1: revenue LTV); from the "
                                         "churn curve, the renewal model and the expansion "
                                         "model. Null where there is no revenue.")
    value_basis: str | None = Field(None, description="Where the revenue comes from (`mrr`, "
                                    "`spend_90d`), with any assumption added, or why there is "
                                    "no value.")
    failing_pillar: str | None
    pillars: dict[str, float] = Field(description="Churn probability points per CS pillar.")
    drivers: list[Driver] = Field(description="Levers (behaviour the customer or the CSM "
                                  "can change) that move the risk most.")
    context: list[Driver] = Field([], description="Context (renewal timing, contract, "
                                  "firmographics): its points, apart from the levers'.")
    context_points: float | None = Field(None, description="Churn probability points of all "
                                         "context features together.")
    improvements: list[Improvement] = Field([], description="The lever changes that would "
                                            "lower the churn probability most.")
    playbook: Playbook
    change: Change | None = Field(None, description="Since the previous snapshot; null for an "
                                  "account new since, and in what-if answers.")
    timing: Timing | None = Field(None, description="Churn by month and before the renewal; "
                                  "null when the model has no hazard model.")
    coverage: Coverage | None = None
    scores: ScoreFreshness | None = Field(None, description="On a single account's answer "
                                          "and a what-if; a batch or portfolio has it once, "
                                          "beside its accounts.")

    model_config = {"json_schema_extra": {"examples": [{
        "account_id": "acc_000042", "as_of": "2026-01-01", "model_version": "v3",
        "churn_probability": 0.31, "expansion_probability": 0.02, "tier": "high",
        "health_score": 0, "segment": "mid-touch", "failing_pillar": "adoption",
        "pillars": {"onboarding": 0.1, "adoption": 9.8, "support": 1.2, "satisfaction": 2.0,
                    "commercial": 6.4},
        "drivers": [{"feature": "seat_utilisation_30d", "value": 0.21, "points": 7.9,
                     "direction": "raises", "pillar": "adoption",
                     "sentence": "21% of paid seats active in the last 30 days"}],
        "playbook": {"name": "renewal save",
                     "reason": "High risk of losing it (31%) with the renewal 40 days away."}}]}}


class BatchRequest(BaseModel):
    account_ids: list[str] = Field(min_length=1, examples=[["acc_000042", "acc_000043"]])


class BatchAnswer(BaseModel):
    results: list[RiskAnswer]
    not_found: list[str]
    scores: ScoreFreshness | None = None


WhatIfValue = Annotated[Any, WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"},
                                                        {"type": "null"}]})]
"""A what-if value, taken as sent: ``serving/whatif.py`` checks it against the feature (its
range, its levels) and refuses a boolean or a quoted number in words, which a coercing type
(``float`` reads ``true`` as 1.0) could not."""


class WhatIfRequest(BaseModel):
    account_id: str = Field(examples=["acc_000042"])
    features: dict[str, WhatIfValue] = Field(
        examples=[{"seat_utilisation_30d": 0.8}],
        description="Feature values to use instead of the account's latest snapshot: a number "
        "within the feature's valid range (a share between 0 and 1, a count not negative...; "
        "a refusal names the range), null for unknown, or one of a category's levels.")


class ReloadAnswer(BaseModel):
    model_version: str
    as_of: str


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    status: str | None = Field(None, description="`ready`, `degraded` (served, but the scores "
                               "are stale: `scores.reasons` says why; still 200) or `not "
                               "ready` (503).")
    problem: str | None = Field(None, description="Why nothing is served yet (not ready).")
    model_version: str | None = None
    as_of: str | None = None
    accounts: int | None = None
    score_table: str | None = Field(None, description="`score table`, `building` or "
                                    "`built by the server`.")
    drift: dict[str, Any] | None = None
    scores: ScoreFreshness | None = None


class KpiAnswer(BaseModel):
    definitions: dict[str, str]
    months: list[dict[str, Any]] = Field(description="One object per month: `month` and each "
                                         "KPI of `definitions` (null when undefined), plus "
                                         "`health_tiers` where a score table exists.")
    absent: dict[str, str] = Field(default_factory=dict, description="The KPIs this history "
                                   "cannot give (null in every month), each with the table it "
                                   "would need.")


class Interval(BaseModel):
    expected: float
    low: float
    high: float


class Forecast(BaseModel):
    """Gross and net revenue retention of these accounts over the horizon (the next quarter
    with the default 90 days), from the two calibrated models; ``churnlens forecast`` prints
    how well such forecasts did on past quarters."""

    level: float = Field(description="The intervals' stated coverage.")
    horizon_days: int
    grr: Interval
    nrr: Interval


class Revenue(BaseModel):
    """Sums over every account the filters match (not only this page)."""

    accounts: int
    arr: float = Field(description="Their ARR.")
    arr_at_risk: float = Field(description="Sum of churn probability x ARR: the ARR expected "
                               "to churn over the horizon (probabilities are calibrated, so "
                               "they add up).")
    expected_expansion_arr: float | None = Field(None, description="Sum of the accounts' "
                                                 "expected expansion ARR.")
    forecast: Forecast | None = None


class Portfolio(BaseModel):
    accounts: list[RiskAnswer]
    next_cursor: str | None
    revenue: Revenue | None = None
    scores: ScoreFreshness | None = None


SECURITY_SCHEMES = {
    "bearerKey": {"type": "http", "scheme": "bearer",
                  "description": "An API key from `churnlens keys create`."},
    "headerKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                  "description": "The same key, in a header of its own."},
}


REFUSALS = {
    400: "The body is not JSON this API can read (malformed, or nested too deeply).",
    401: "No key, or an unknown or revoked one.",
    404: "The account is not a customer in the served snapshot (the portfolio: the cursor is "
         "past its end).",
    409: "There is no champion or snapshot to load.",
    413: "The body is over 1 MiB, or the batch over 1,000 account ids.",
    422: "A parameter or body field is invalid; `detail` names it and says why.",
    429: "This key's what-if budget for the minute is spent; retry after `Retry-After` "
         "seconds.",
    503: "No model is served yet, or what was asked for is still being computed; "
         "`Retry-After` says when to try again.",
}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI lines of the refusals a route may answer, each a :class:`Problem`."""
    return {status: {"model": Problem, "description": REFUSALS[status]} for status in statuses}


def secured(scope: Scope) -> dict[str, Any]:
    """The OpenAPI lines of a route that needs a key of ``scope``."""
    return {"security": [{"bearerKey": []}, {"headerKey": []}]}


def key_refusals(scope: Scope) -> dict[int | str, dict[str, Any]]:
    return {**refusals(401), 403: {"model": Problem, "description": "The key's scope is "
                                   f"below `{scope}`, which this endpoint needs."}}

