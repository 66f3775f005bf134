"""Prometheus metrics of one server process: requests, latency, the served model, drift, the
churn probabilities answered and how old the served scores are."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from churnlens.serving.freshness import Freshness


class Metrics:
    """The process's own registry (not the global one), so each app counts only itself."""

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
        self.scores_age = Gauge("churnlens_scores_age_days", "Days since the served score "
                                "table was written (0 while the server builds it; NaN while "
                                "nothing is served)", registry=self.registry)
        self.scores_stale = Gauge("churnlens_scores_stale", "1 when the served scores are "
                                  "stale (GET /readyz says why), else 0", registry=self.registry)

    def follow_scores(self, freshness: Callable[[], Freshness | None]) -> None:
        """Read the served scores' age and staleness at each scrape: the age grows between
        loads, so a value set at load would be wrong by the next day."""
        def age() -> float:
            now = freshness()
            return float("nan") if now is None else now.age_days

        def stale() -> float:
            now = freshness()
            return float("nan") if now is None else float(now.stale)

        self.scores_age.set_function(age)
        self.scores_stale.set_function(stale)


class Measure:
    """Counts and times every request by route template and status (plain ASGI: a
    ``BaseHTTPMiddleware`` would cost more than a cached answer does)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
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

