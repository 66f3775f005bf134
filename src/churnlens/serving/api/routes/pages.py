"""The CSM pages: portfolio, account (with its what-if form) and model, and what they serve
(the stylesheet, the training plots). Rendering lives in ``churnlens.serving.pages``."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

from typing import Annotated
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from churnlens.features.kpis import DEFINITIONS
from churnlens.serving.api.deps import SameOrigin, Serving, ServingDep, signed_in, to_login
from churnlens.serving.forecasting import read_report
from churnlens.serving.guards import MAX_WHAT_IF
from churnlens.serving.keys import KeyRecord
from churnlens.serving.pages import (
    KPI_CARDS,
    NONE,
    PAGE_SIZE,
    PLOTS,
    SECURITY_HEADERS,
    TEMPLATES,
    account_context,
    fmt,
    render,
    run_report,
    segment_rows,
    sparkline,
)
from churnlens.serving.score import score_rows
from churnlens.serving.state import (
    UNASSIGNED,
    ScoreTable,
    Served,
    answers,
    name_of,
    of_csm,
    ordered,
    revenue_of,
    value_by,
)

router = APIRouter(include_in_schema=False)
PAGE_ORDERS = {"arr_at_risk": "most ARR at risk first", "arr": "most ARR first",
               "drop": "biggest health drop first",
               "renewal": "most likely to churn before renewal first"}
"""The portfolio page's orders beside riskiest first (``state.ORDERS``), in a CSM's words."""


def nothing_served(request: Request, state: Serving, user: KeyRecord) -> Response:
    return render(request, "empty.html", 503, user=user, title="No model yet",
                  problem=state.runtime.problem or "The model is still loading.",
                  steps=["churnlens features", "churnlens train", "churnlens score"])


def admit(request: Request, state: Serving) -> tuple[KeyRecord, Served] | Response:
    """The signed-in key and the served model, or the page to show instead."""
    user = signed_in(request)
    if user is None:
        return to_login(request)
    if state.runtime.served is None:
        return nothing_served(request, state, user)
    return user, state.runtime.served


@router.get("/static/app.css")
def stylesheet() -> Response:
    return FileResponse(TEMPLATES / "app.css", media_type="text/css",
                        headers={"Cache-Control": "max-age=3600", **SECURITY_HEADERS})


@router.get("/")
def portfolio_page(request: Request, state: ServingDep, tier: str = "", segment: str = "",
                   csm: str = "", playbook: str = "", q: str = "", sort: str = "",
                   page_number: Annotated[int, Query(alias="page", ge=1)] = 1) -> Response:
    admitted = admit(request, state)
    if isinstance(admitted, Response):
        return admitted
    user, served = admitted
    runtime = state.runtime
    table = served.ranking
    chosen = pd.Series(True, index=table.index)
    for column, value in (("tier", tier), ("segment", segment), ("playbook", playbook)):
        if value and column in table:
            chosen &= table[column] == value
    if csm:
        chosen &= of_csm(served, table, csm)
    if q:
        names = table["account_id"].map(served.directory["name"])
        needle = q.strip().lower()
        chosen &= (names.fillna("").str.lower().str.contains(needle, regex=False)
                   | table["account_id"].str.lower().str.contains(needle, regex=False))
    matching = ordered(table[chosen], sort)
    start = (page_number - 1) * PAGE_SIZE
    rows = answers(served, list(matching["account_id"].iloc[start:start + PAGE_SIZE]),
                   state.settings)
    for row in rows:
        row["name"] = name_of(served, row["account_id"])
    filters = {"tier": tier, "segment": segment, "csm": csm, "playbook": playbook, "q": q,
               "sort": sort}

    def link(number: int) -> str:
        return "/?" + urlencode({**{k: v for k, v in filters.items() if v}, "page": number})

    kpis = runtime.kpis["months"][-12:] if runtime.kpis else []
    absent = (runtime.kpis or {}).get("absent", {})
    cards = [{"title": title, "value": fmt(kpis[-1].get(key), style) if kpis else NONE,
              "month": kpis[-1]["month"][:7] if kpis else "",
              "spark": sparkline([m.get(key) for m in kpis]),
              "definition": DEFINITIONS[key] + (f" Absent here: {absent[key]}."
                                                if key in absent else "")}
             for key, title, style in KPI_CARDS]
    tiers = served.ranking["tier"].value_counts().to_dict()
    return render(request, "portfolio.html", user=user, served=served, rows=rows,
                  cards=cards, kpi_problem=runtime.kpi_problem, tiers=tiers,
                  filters=filters, total=len(matching),
                  revenue=revenue_of(matching, served.bundle.revenue),
                  values={by: value_by(served, matching, by) for by in ("segment", "csm")},
                  orders=PAGE_ORDERS,
                  options={"tier": ["high", "medium", "low"],
                           "segment": sorted(set(served.ranking["segment"])),
                           "csm": [UNASSIGNED, *sorted({c for c in served.directory["csm"]
                                                        if isinstance(c, str) and c})],
                           "playbook": sorted(set(served.ranking["playbook"]))
                           if "playbook" in served.ranking else []},
                  previous=link(page_number - 1) if page_number > 1 else None,
                  following=link(page_number + 1) if start + PAGE_SIZE < len(matching)
                  else None, page_number=page_number,
                  pages=max(1, -(-len(matching) // PAGE_SIZE)))


@router.get("/accounts/{account_id}")
def account_page(request: Request, state: ServingDep, account_id: str) -> Response:
    admitted = admit(request, state)
    if isinstance(admitted, Response):
        return admitted
    user, served = admitted
    if not served.knows(account_id):
        return render(request, "empty.html", 404, user=user, title="Unknown account",
                      problem=f"No account {account_id!r} in the snapshot of {served.as_of}: "
                              "it may have churned, be new since, or the id is mistyped.",
                      steps=[], back=True)
    return render(request, "account.html", user=user, served=served,
                  can_what_if=user.allows("whatif"),
                  **account_context(state.settings, served, account_id))


@router.post("/accounts/{account_id}/what-if", dependencies=[SameOrigin])
async def account_what_if(request: Request, state: ServingDep, account_id: str) -> Response:
    """The account page's what-if form; it spends the same per-key budget as the API's."""
    admitted = admit(request, state)
    if isinstance(admitted, Response):
        return admitted
    user, served = admitted
    if not served.knows(account_id):
        return RedirectResponse(f"/accounts/{quote(account_id)}", status_code=303)
    context = account_context(state.settings, served, account_id)
    if not user.allows("whatif"):
        return render(request, "account.html", 403, user=user, served=served,
                      can_what_if=False, **context)
    budget = state.what_if_budget
    wait = budget.wait_for(user.id)
    if wait > 0:
        response = render(request, "account.html", 429, user=user, served=served,
                          can_what_if=True, what_if_errors=[budget.refusal(wait)[0]],
                          **context)
        response.headers.update(budget.refusal(wait)[1])
        return response
    form = await request.form()
    rows = served.rows.take([served.position[account_id]])
    changed, errors = {}, []
    for field_ in context["what_if"]:
        raw = str(form.get(field_["name"], "")).strip()
        if raw == "" or raw == str(field_["value"]):
            continue
        try:
            value = float(raw)
            if not np.isfinite(value):
                raise ValueError
        except ValueError:
            errors.append(f"{field_['label']}: {raw!r} is not a number")
            continue
        if abs(value) > MAX_WHAT_IF:
            errors.append(f"{field_['label']}: {raw!r} is beyond ±{MAX_WHAT_IF:g}")
            continue
        column = served.bundle.space.features.index(field_["name"])
        rows.x[0, column] = value
        rows.values[0, column] = value
        changed[field_["name"]] = value
        field_["value"] = value
    result = ScoreTable(score_rows(served.bundle, rows, state.settings,
                                   served.playbooks)).answer_at(0)
    return render(request, "account.html", 422 if errors else 200, user=user, served=served,
                  can_what_if=True, what_if_result=result, changed=changed,
                  what_if_errors=errors, **context)


@router.get("/model")
def model_page(request: Request, state: ServingDep) -> Response:
    admitted = admit(request, state)
    if isinstance(admitted, Response):
        return admitted
    user, served = admitted
    settings = state.settings
    bundle = served.bundle
    drift = sorted(served.drift.psi.items(), key=lambda kv: -kv[1])[:15]
    run_id = str(bundle.manifest.get("run_id", ""))
    plots = [name for name in PLOTS if run_id and
             (settings.layout.reports / "runs" / run_id / name).is_file()]
    report = run_report(settings, run_id)
    return render(request, "model.html", user=user, served=served, bundle=bundle,
                  metrics=bundle.metrics, drift=drift, drifted=set(served.drift.drifted),
                  plots=plots, trained_at=bundle.manifest.get("trained_at"),
                  timing=report.get("hazard") or {},
                  segments=segment_rows(report.get("segments") or {}),
                  segment_flags=(report.get("segments") or {}).get("flags", []),
                  segment_review=bool(report.get("segments")),
                  baselines=report.get("baselines"),
                  backtest=(read_report(settings) or {}).get("backtest"),
                  renewal=report.get("renewal") or {},
                  value_backtest=report.get("lifetime_value") or {},
                  has_arr=revenue_of(served.ranking) is not None)


@router.get("/model/plots/{name}")
def model_plot(request: Request, state: ServingDep, name: str) -> Response:
    user = signed_in(request)
    served = state.runtime.served
    if user is None or served is None or name not in PLOTS:
        return Response(status_code=404)
    path = state.settings.layout.reports / "runs" / str(
        served.bundle.manifest.get("run_id", "")) / name
    if not path.is_file():
        return Response(status_code=404)
    return FileResponse(path, media_type="image/png", headers=SECURITY_HEADERS)
