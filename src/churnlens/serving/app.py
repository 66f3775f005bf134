"""The risk API: explained churn and expansion scores over HTTP.

Known accounts are answered from the score table (explanations precomputed); what-if answers
are explained live. Every caller mistake is a 4xx whose ``detail`` says what is wrong.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at
# runtime, and the key-scope dependencies in them are local to ``create_app``.

import fcntl
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field

from churnlens.features.kpis import (
    compute_report,
    health_tiers,
    month_arg,
    read_report,
)
from churnlens.raw.history import load_history
from churnlens.serving.guards import (
    MAX_WHAT_IF,
    BodyLimit,
    KeyGate,
    RateLimiter,
    active_key,
    redact_keys_in_logs,
)
from churnlens.serving.keys import KeyRecord, KeyStore, Scope
from churnlens.serving.pages import register_pages
from churnlens.serving.score import score_rows
from churnlens.serving.state import (
    Runtime,
    ScoreTable,
    Served,
    answers,
    build_table,
    encoded_answer,
    load_served,
    revenue_of,
)
from churnlens.settings import Settings
from churnlens.training.bundle import BundleError

MAX_BATCH = 1000
SHOWN_ID = 80
"""Characters of a caller's account id repeated in an error message."""
logger = logging.getLogger("churnlens.serving")


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
    """What moved the score since the previous snapshot; the drivers' points sum to
    ``churn_points``."""

    previous_as_of: str
    churn_points: float = Field(description="Change in churn probability, in points.")
    health_points: float = Field(description="Change in the health score.")
    summary: str
    drivers: list[ChangeDriver]


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


class RiskAnswer(BaseModel):
    account_id: str
    as_of: str = Field(description="The snapshot date whose features were used.")
    model_version: str
    churn_probability: float
    churn_model: str = Field("full", description="`full`, or `cold-start` for a new account "
                             "(tenure under 90 days): answered by the model trained on new "
                             "accounts' onboarding features.")
    expansion_probability: float | None = Field(
        description="Probability of expanding within the horizon; null when the model has no "
        "expansion model (the history it was trained on held no expansions).")
    tier: str
    health_score: int
    segment: str
    arr: float | None = Field(None, description="Annual recurring revenue at the snapshot.")
    arr_at_risk: float | None = Field(None, description="Churn probability x ARR: the revenue "
                                      "expected to be lost over the horizon.")
    expected_expansion_arr: float | None = Field(
        None, description="Expansion probability x the ARR an expansion added on average in "
        "history: the ARR expected to be gained over the horizon.")
    failing_pillar: str | None
    pillars: dict[str, float] = Field(description="Churn probability points per CS pillar.")
    drivers: list[Driver]
    playbook: Playbook
    change: Change | None = Field(None, description="Since the previous snapshot; null for an "
                                  "account new since, and in what-if answers.")
    timing: Timing | None = Field(None, description="Churn by month and before the renewal; "
                                  "null when the model has no hazard model.")
    coverage: Coverage | None = None

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
                     "reason": "High churn risk (31%) with the renewal 40 days away."}}]}}


class BatchRequest(BaseModel):
    account_ids: list[str] = Field(min_length=1, examples=[["acc_000042", "acc_000043"]])


class BatchAnswer(BaseModel):
    results: list[RiskAnswer]
    not_found: list[str]


class WhatIfRequest(BaseModel):
    account_id: str = Field(examples=["acc_000042"])
    features: dict[str, float | str | None] = Field(
        examples=[{"seat_utilisation_30d": 0.8}],
        description="Feature values to use instead of the account's latest snapshot: finite "
        "numbers within ±1e12 (null: unknown), or one of a category's levels.")


class ReloadAnswer(BaseModel):
    model_version: str
    as_of: str


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    problem: str | None = Field(None, description="Why nothing is served yet (not ready).")
    model_version: str | None = None
    as_of: str | None = None
    accounts: int | None = None
    score_table: str | None = Field(None, description="`score table`, `building` or "
                                    "`built by the server`.")
    drift: dict[str, Any] | None = None


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


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("churnlens_requests_total", "Requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("churnlens_request_seconds", "Latency by route", ["route"],
                                 registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1))
        self.model = Gauge("churnlens_model_info", "Served model", ["version", "as_of"],
                           registry=self.registry)
        self.psi = Gauge("churnlens_feature_psi", "Population stability index of each feature "
                         "in the served snapshot against the training snapshots", ["feature"],
                         registry=self.registry)
        self.scores = Histogram("churnlens_churn_probability", "Churn probabilities served",
                                registry=self.registry,
                                buckets=(.02, .05, .1, .2, .3, .5, .7, .9, 1))


class _Measure:
    """Counts and times every request by route template and status (plain ASGI: a
    ``BaseHTTPMiddleware`` would cost more than a cached answer does)."""

    def __init__(self, app: Any, metrics: _Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


SECURITY_SCHEMES = {
    "bearerKey": {"type": "http", "scheme": "bearer",
                  "description": "An API key from `churnlens keys create`."},
    "headerKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                  "description": "The same key, in a header of its own."},
}


REFUSALS = {
    400: "The body is not JSON this API can read (malformed, or nested too deeply).",
    401: "No key, or an unknown or revoked one.",
    404: "The account is not a customer in the served snapshot.",
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


def _json(content: Any) -> Response:
    return Response(json.dumps(content), media_type="application/json")


def shown(account_id: str) -> str:
    """A caller's account id as an error message repeats it: quoted, and cut if long."""
    if len(account_id) <= SHOWN_ID:
        return repr(account_id)
    return f"{account_id[:SHOWN_ID]!r}... ({len(account_id):,} characters)"


def create_app(settings: Settings) -> FastAPI:
    redact_keys_in_logs()
    keys = KeyStore(settings.layout.root / "api_keys.json")
    what_if_budget = RateLimiter(settings.whatif_rate_per_minute)
    metrics = _Metrics()
    runtime = Runtime()
    reload_lock = threading.Lock()

    def install(served: Served) -> None:
        with reload_lock:
            metrics.model.clear()
            metrics.model.labels(served.version, served.as_of.isoformat()).set(1)
            metrics.psi.clear()
            for feature, value in served.drift.psi.items():
                metrics.psi.labels(feature).set(value)
            runtime.served = served  # one reference swap: requests in flight keep the old one
            runtime.problem = None
        if served.table is None:
            threading.Thread(target=complete, args=(served,), daemon=True,
                             name="score-table").start()

    def complete(served: Served) -> None:
        """Build the missing score table, once across workers, then swap it in."""
        settings.layout.scores.mkdir(parents=True, exist_ok=True)
        try:
            with open(settings.layout.scores / ".build.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it now
                if runtime.served is not served:
                    return  # a newer champion or snapshot: its own load builds its table
                done = build_table(served, settings)  # reads it if that worker wrote it
            with reload_lock:
                current = runtime.served
                if current is not None and (current.version, current.as_of) == (
                        done.version, done.as_of) and current.table is None:
                    runtime.served = done
        except Exception as error:  # answers stay live; the next reload tries again
            logger.error("could not build the score table: %s", error)

    def champion_marker() -> str:
        if settings.champion_source == "mlflow":
            from churnlens.training import tracking
            from churnlens.training.train import registry_champion_versions

            client = tracking.connect(settings.layout, settings.mlflow_tracking_uri)
            found = registry_champion_versions(client, settings)
            return "" if found is None else repr(sorted((t, v.version)
                                                        for t, v in found.items()))
        pointer = settings.layout.models / "CHAMPION"
        return str(pointer.stat().st_mtime_ns) if pointer.is_file() else ""

    def watch(stop: threading.Event) -> None:
        """Swap in a new champion once its bundle is exported; a bad one is logged, not served."""
        seen = champion_marker()
        while not stop.wait(settings.reload_poll_seconds):
            try:
                marker = champion_marker()
                if marker == seen and runtime.served is not None:
                    continue
                seen = marker
                install(load_served(settings))
            except (BundleError, FileNotFoundError) as error:
                if runtime.served is None:
                    runtime.problem = str(error)
                else:
                    logger.error("refused the new champion, still serving %s: %s",
                                 runtime.served.version, error)
            except Exception as error:  # keep serving the old model
                logger.error("could not load the new champion: %s", error)

    def start() -> None:
        try:
            install(load_served(settings))
        except (BundleError, FileNotFoundError) as error:  # pages say what to do next
            runtime.problem = str(error)
            logger.warning("serving nothing yet: %s", error)

    def compute_kpis() -> None:
        try:
            settings.layout.reports.mkdir(parents=True, exist_ok=True)
            with open(settings.layout.reports / ".kpis.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # one worker validates and computes
                report = read_report(settings)  # the others read what it wrote
                if report is None:
                    report = compute_report(settings, load_history(settings))
            runtime.kpis, runtime.kpi_problem = report, None
        except Exception as error:  # no raw history here: the KPIs say so, scores still work
            runtime.kpi_problem = f"the KPIs could not be computed from the raw history: {error}"
            logger.warning(runtime.kpi_problem)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        start()
        threading.Thread(target=compute_kpis, daemon=True, name="kpis").start()
        stop = threading.Event()
        watcher = None
        if settings.reload_poll_seconds > 0:
            watcher = threading.Thread(target=watch, args=(stop,), daemon=True,
                                       name="champion-watch")
            watcher.start()
        yield
        stop.set()
        if watcher is not None:
            watcher.join(timeout=5)

    app = FastAPI(title="churnlens", version="1", lifespan=lifespan,
                  description="Explained churn and expansion risk for every account.")
    app.add_middleware(BodyLimit)
    app.add_middleware(KeyGate, keys=keys)  # outside BodyLimit: no key, no body read
    app.add_middleware(_Measure, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}"
                    for e in error.errors()]
        return JSONResponse(status_code=422, content={"detail": "; ".join(problems)})

    def served() -> Served:
        state = runtime.served
        if state is None:
            raise HTTPException(503, runtime.problem or "the model is still loading",
                                headers={"Retry-After": "5"})
        return state

    def authorize(request: Request, needed: Scope) -> KeyRecord:
        """The caller's key record, or a 401/403 saying what is wrong. Called by each route
        rather than declared as a dependency: FastAPI's dependency solving costs more than
        answering a cached account does. ``KeyGate`` has already refused requests without an
        active key, before their body was read."""
        record = active_key(keys, request.headers.get("x-api-key"),
                            request.headers.get("authorization"))
        if not record.allows(needed):
            raise HTTPException(403, f"this key has scope '{record.scope}'; this endpoint "
                                f"needs '{needed}'")
        return record

    documented_schema = app.openapi

    def openapi() -> dict[str, Any]:
        schema = documented_schema()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    def unknown(state: Served, account_id: str) -> HTTPException:
        return HTTPException(404, f"unknown account {shown(account_id)}: it is not a customer "
                             f"in the snapshot of {state.as_of}")

    @app.get("/healthz", tags=["operations"], response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], response_model=Readiness, responses={
        503: {"model": Readiness, "description": "Nothing is served yet; `problem` says why."}})
    async def readyz() -> JSONResponse:
        state = runtime.served
        if state is None:
            return JSONResponse(status_code=503, content={"ready": False,
                                                          "problem": runtime.problem})
        return JSONResponse({"ready": True, "model_version": state.version,
                             "as_of": state.as_of.isoformat(), "accounts": len(state.ranking),
                             "score_table": state.table_source,
                             "drift": {"flag": state.drift.flag,
                                       "drifted_features": state.drift.drifted}})

    @app.get("/metrics", tags=["operations"], response_class=Response, responses={
        200: {"description": "Prometheus text exposition.",
              "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}})
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # The answer routes return JSON they serialise themselves (the table's answers are encoded
    # once); ``response_model`` still documents them in the OpenAPI schema.

    @app.get("/v1/accounts/{account_id}/risk", response_model=RiskAnswer, tags=["risk"],
             openapi_extra=secured("read"),
             responses={**key_refusals("read"), **refusals(404, 422, 503)})
    async def account_risk(account_id: str, request: Request) -> Response:
        """Churn and expansion risk of one account, explained, with its playbook."""
        authorize(request, "read")
        state = served()
        if not state.knows(account_id):
            raise unknown(state, account_id)
        return Response(encoded_answer(state, account_id, settings),
                        media_type="application/json")

    @app.post("/v1/risk", response_model=BatchAnswer, tags=["risk"],
              openapi_extra=secured("read"),
              responses={**key_refusals("read"), **refusals(400, 413, 422, 503)})
    def batch_risk(body: BatchRequest, request: Request) -> Response:
        """Up to 1,000 accounts at once; unknown ids are listed, not fatal."""
        authorize(request, "read")
        if len(body.account_ids) > MAX_BATCH:
            raise HTTPException(413, f"{len(body.account_ids)} account ids; at most "
                                f"{MAX_BATCH} per request")
        state = served()
        known = [a for a in body.account_ids if state.knows(a)]
        results = answers(state, known, settings)
        for result in results:
            metrics.scores.observe(result["churn_probability"])
        return _json({"results": results,
                      "not_found": [a for a in body.account_ids if not state.knows(a)]})

    @app.post("/v1/what-if", response_model=RiskAnswer, tags=["risk"],
              openapi_extra=secured("whatif"),
              responses={**key_refusals("whatif"), **refusals(400, 404, 413, 422, 429, 503)})
    def what_if(body: WhatIfRequest, request: Request) -> Response:
        """The same answer for changed feature values, explained live. Each key may ask for
        a limited number a minute (setting ``whatif_rate_per_minute``)."""
        record = authorize(request, "whatif")
        wait = what_if_budget.wait_for(record.id)
        if wait > 0:
            detail, headers = what_if_budget.refusal(wait)
            raise HTTPException(429, detail, headers=headers)
        state = served()
        if not state.knows(body.account_id):
            raise unknown(state, body.account_id)
        space = state.bundle.space
        strangers = sorted(set(body.features) - set(space.features))
        if strangers:
            raise HTTPException(422, f"not features of model {state.version}: {strangers[:5]}")
        rows = state.rows.take([state.position[body.account_id]])
        for name, value in body.features.items():
            column = space.features.index(name)
            if name in space.categories:
                levels = space.categories[name]
                if value is not None and str(value) not in levels:
                    raise HTTPException(422, f"{name} must be one of {levels}, not {value!r}")
                shown: Any = None if value is None else str(value)
                rows.x[0, column] = float("nan") if value is None else levels.index(str(value))
            else:
                if isinstance(value, str):
                    raise HTTPException(422, f"{name} is a number, not {value!r}")
                if value is not None and not math.isfinite(value):
                    raise HTTPException(422, f"{name} must be a finite number, not {value}; "
                                        "send null for an unknown value")
                if value is not None and abs(value) > MAX_WHAT_IF:
                    raise HTTPException(422, f"{name} must be between {-MAX_WHAT_IF:g} and "
                                        f"{MAX_WHAT_IF:g}, not {value:g}")
                shown = None if value is None else float(value)
                rows.x[0, column] = float("nan") if value is None else float(value)
            rows.values[0, column] = shown
            if name in rows.meta:
                rows.meta[name] = np.array([float("nan") if shown is None else shown],
                                           dtype=object)
        scored = score_rows(state.bundle, rows, settings, state.playbooks)
        return _json(ScoreTable(scored).answer_at(0))

    @app.get("/v1/accounts", response_model=Portfolio, tags=["portfolio"],
             openapi_extra=secured("read"), responses={**key_refusals("read"),
                                                       **refusals(422, 503)})
    def portfolio(request: Request, tier: str | None = None, segment: str | None = None,
                  playbook: str | None = None, csm: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                  cursor: Annotated[str | None, Query(description="next_cursor of the "
                                                      "previous page")] = None
                  ) -> Response:
        """The portfolio, riskiest first, filtered."""
        authorize(request, "read")
        state = served()
        table = state.ranking
        if playbook is not None and "playbook" not in table:
            raise HTTPException(503, "the score table is still being built; filtering by "
                                "playbook works once it is done", headers={"Retry-After": "10"})
        for column, value in (("tier", tier), ("segment", segment), ("playbook", playbook)):
            if value is not None:
                table = table[table[column] == value]
        if csm is not None:
            table = table[table["account_id"].map(state.directory["csm"]) == csm]
        start = 0
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit()):
                raise HTTPException(422, f"cursor {shown(cursor)} is not one this API gave out")
            start = min(int(cursor), len(table))
        page = table.iloc[start:start + limit]
        following = start + limit
        return _json({"accounts": answers(state, list(page["account_id"]), settings),
                      "next_cursor": str(following) if following < len(table) else None,
                      "revenue": revenue_of(table, state.bundle.revenue)})

    @app.post("/v1/admin/reload", tags=["operations"], response_model=ReloadAnswer,
              openapi_extra=secured("admin"), responses={**key_refusals("admin"),
                                                         **refusals(409)})
    def reload(request: Request) -> dict[str, str]:
        """Load the current champion and snapshot, then swap them in atomically."""
        authorize(request, "admin")
        try:
            state = load_served(settings)
        except (BundleError, FileNotFoundError) as error:
            raise HTTPException(409, f"nothing to load: {error}") from None
        install(state)
        return {"model_version": state.version, "as_of": state.as_of.isoformat()}

    @app.get("/v1/kpis", response_model=KpiAnswer, tags=["portfolio"],
             openapi_extra=secured("read"), responses={**key_refusals("read"),
                                                       **refusals(422, 503)})
    def portfolio_kpis(request: Request, since: Annotated[str | None, Query(
            alias="from", description="First month, YYYY-MM.")] = None,
            until: Annotated[str | None, Query(alias="to", description="Last month, "
                                               "YYYY-MM.")] = None) -> dict[str, Any]:
        """Portfolio KPIs by month (definitions included), with accounts by health tier."""
        authorize(request, "read")
        try:
            first, last = month_arg(since), month_arg(until)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        if runtime.kpis is None:
            raise HTTPException(503, runtime.kpi_problem or "the KPIs are being computed",
                                headers={"Retry-After": "10"})
        tiers = health_tiers(settings.layout.scores)
        months = [{**m, "health_tiers": tiers.get(m["month"])} for m in runtime.kpis["months"]
                  if (first is None or m["month"] >= first.isoformat())
                  and (last is None or m["month"] <= last.isoformat())]
        return {"definitions": runtime.kpis["definitions"],
                "absent": runtime.kpis.get("absent", {}), "months": months}

    register_pages(app, settings, keys, runtime, what_if_budget)

    return app
