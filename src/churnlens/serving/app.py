"""The risk API and the CSM pages: ``create_app`` only assembles them.

Known accounts are answered from the score table (explanations precomputed); what-if answers
are explained live. Every caller mistake is a 4xx whose ``detail`` says what is wrong. The
routes live in ``serving/api/routes`` (one module per resource), what they share in
``serving/api/deps.py`` and their schemas in ``serving/api/schemas.py``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.middleware.sessions import SessionMiddleware

from churnlens.features.registry import load_all
from churnlens.serving import wording
from churnlens.serving.api import errors
from churnlens.serving.api.deps import CrossSiteForm, KnownParameters, Serving, UnknownParameters
from churnlens.serving.api.lifecycle import lifespan
from churnlens.serving.api.routes import (
    accounts,
    admin,
    docs,
    kpis,
    pages,
    portfolio,
    session,
    whatif,
)
from churnlens.serving.api.schemas import SECURITY_SCHEMES
from churnlens.serving.api.sessions import SESSION_SECONDS, SessionStore
from churnlens.serving.api.telemetry import Measure, Metrics
from churnlens.serving.guards import BodyLimit, KeyGate, RateLimiter, redact_keys_in_logs
from churnlens.serving.keys import KeyStore
from churnlens.serving.pages import session_secret, templates
from churnlens.serving.state import Runtime
from churnlens.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """The app for one server process: its state, middleware, error answers and routers."""
    redact_keys_in_logs()
    load_all()
    keys = KeyStore(settings.layout.root / "api_keys.json")
    state = Serving(settings=settings, keys=keys, runtime=Runtime(),
                    what_if_budget=RateLimiter(settings.whatif_rate_per_minute),
                    metrics=Metrics(),
                    sessions=SessionStore(settings.layout.root / "sessions.sqlite3"))

    app = FastAPI(title="churnlens", version="1", lifespan=lifespan, docs_url=None,
                  redoc_url=None,  # served by routes/docs.py from a packaged copy
                  dependencies=[KnownParameters],  # a misspelt filter is refused, not ignored
                  description="Explained churn and expansion risk for every account.")
    app.state.serving = state
    # the pages' filters speak the settings' currency (one process serves one settings)
    wording.register(templates.env, settings)
    app.add_middleware(BodyLimit)
    app.add_middleware(KeyGate, keys=keys)  # outside BodyLimit: no key, no body read
    app.add_middleware(Measure, metrics=state.metrics)
    app.add_middleware(SessionMiddleware, secret_key=session_secret(settings),
                       session_cookie="churnlens_session", same_site="strict",
                       max_age=SESSION_SECONDS, https_only=settings.secure_cookies)
    app.add_exception_handler(RequestValidationError, errors.invalid)
    app.add_exception_handler(400, errors.unreadable)
    app.add_exception_handler(404, errors.not_found)
    app.add_exception_handler(CrossSiteForm, errors.cross_site)
    app.add_exception_handler(UnknownParameters, errors.unknown_parameters)

    for resource in (admin, accounts, whatif, portfolio, kpis, session, pages, docs):
        app.include_router(resource.router)

    documented_schema = app.openapi

    def openapi() -> dict[str, Any]:
        schema = documented_schema()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
