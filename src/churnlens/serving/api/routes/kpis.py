"""The portfolio KPIs by month, with their definitions and the accounts by health tier."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from churnlens.features.kpis import health_tiers, month_arg
from churnlens.serving.api.deps import ReadKey, ServingDep
from churnlens.serving.api.schemas import KpiAnswer, key_refusals, refusals, secured

router = APIRouter(tags=["portfolio"])


@router.get("/v1/kpis", response_model=KpiAnswer, openapi_extra=secured("read"),
            responses={**key_refusals("read"), **refusals(422, 503)})
def portfolio_kpis(key: ReadKey, state: ServingDep,
                   since: Annotated[str | None, Query(alias="from", description="First month, "
                                                      "YYYY-MM.")] = None,
                   until: Annotated[str | None, Query(alias="to", description="Last month, "
                                                      "YYYY-MM.")] = None) -> dict[str, Any]:
    """Portfolio KPIs by month (definitions included), with accounts by health tier."""
    try:
        first, last = month_arg(since), month_arg(until)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    runtime = state.runtime
    if runtime.kpis is None:
        raise HTTPException(503, runtime.kpi_problem or "the KPIs are being computed",
                            headers={"Retry-After": "10"})
    tiers = health_tiers(state.settings.layout.scores)
    months = [{**m, "health_tiers": tiers.get(m["month"])} for m in runtime.kpis["months"]
              if (first is None or m["month"] >= first.isoformat())
              and (last is None or m["month"] <= last.isoformat())]
    return {"definitions": runtime.kpis["definitions"],
            "absent": runtime.kpis.get("absent", {}), "months": months}
