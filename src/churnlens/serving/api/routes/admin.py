"""Operations: liveness, readiness, Prometheus metrics, and the reload an admin asks for."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from churnlens.serving.api import lifecycle
from churnlens.serving.api.deps import (
    AdminKey,
    ServingDep,
    authorize,
    scores_of,
    without_paths,
)
from churnlens.serving.api.schemas import (
    Health,
    Readiness,
    ReloadAnswer,
    key_refusals,
    refusals,
    secured,
)
from churnlens.serving.state import load_served
from churnlens.training.bundle import BundleError

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={
    503: {"model": Readiness, "description": "Nothing is served yet; `problem` says why."}})
async def readyz(state: ServingDep) -> JSONResponse:
    """Ready (200) once a model is served; ``degraded`` (still 200, as a drifted or still
    building model is) while its scores are stale: the server answers, and taking it out of
    a load balancer would not make the scores any newer."""
    served = state.runtime.served
    if served is None:
        return JSONResponse(status_code=503, content={"ready": False, "status": "not ready",
                                                      "problem": state.runtime.problem})
    freshness = scores_of(state, served)
    return JSONResponse({"ready": True, "status": "degraded" if freshness.stale else "ready",
                         "scores": freshness.answer(), "model_version": served.version,
                         "as_of": served.as_of.isoformat(), "accounts": len(served.ranking),
                         "score_table": served.table_source,
                         "drift": {"flag": served.drift.flag,
                                   "drifted_features": served.drift.drifted}})


@router.get("/metrics", response_class=Response, responses={
    200: {"description": "Prometheus text exposition.",
          "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
    **{status: {**line, "description": f"Only when `metrics_scope` is set: {line['description']}"}
       for status, line in key_refusals("read").items()}})
def prometheus(request: Request, state: ServingDep) -> Response:
    """Prometheus metrics; a key of the scope ``metrics_scope`` names when that is set (they
    name every feature and its drift)."""
    if state.settings.metrics_scope is not None:
        authorize(request, state.settings.metrics_scope)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/admin/reload", response_model=ReloadAnswer, openapi_extra=secured("admin"),
             responses={**key_refusals("admin"), **refusals(409)})
def reload(key: AdminKey, state: ServingDep) -> dict[str, str]:
    """Load the current champion and snapshot, then swap them in atomically."""
    try:
        served = load_served(state.settings)
    except (BundleError, FileNotFoundError) as error:
        raise HTTPException(409, "nothing to load: " + without_paths(
            str(error), state.settings.layout.root)) from None
    lifecycle.install(state, served)
    return {"model_version": served.version, "as_of": served.as_of.isoformat()}
