"""The CSM pages: portfolio, account (with its what-if form) and model, and what they serve
(the stylesheet, the training plots). Rendering lives in ``churnlens.serving.pages``."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

from typing import Annotated
from urllib.parse import quote, urlencode

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from churnlens.features.kpis import DEFINITIONS
from churnlens.features.registry import REGISTRY
from churnlens.serving import whatif
from churnlens.serving.api.deps import (
    SameOrigin,
    Serving,
    ServingDep,
    listed,
    shown,
    signed_in,
    spend_what_if,
    to_login,
)
from churnlens.serving.api.filters import choices, unknown_values
from churnlens.serving.forecasting import read_report
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
from churnlens.serving.state import (
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

SORTS = ("", *PAGE_ORDERS)
"""The portfolio page's orders: riskiest first (no ``sort``), then ``PAGE_ORDERS``."""


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
    problems = unknown_values(served, {"tier": tier, "segment": segment, "csm": csm,
                                       "playbook": playbook})
    if sort not in SORTS:
        problems.append(f"sort {shown(sort)} is none of {listed([s for s in SORTS if s])}")
    if problems:
        return render(request, "empty.html", 422, user=user, title="Cannot filter like this",
                      problem="; ".join(problems) + ".", steps=[], back=True)
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
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    if page_number > pages:
        return render(request, "empty.html", 404, user=user, title="No such page",
                      problem=f"Page {page_number:,} is past the last page, {pages:,} "
                              f"({len(matching):,} accounts match).", steps=[], back=True)
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
                  options={"tier": choices(served, "tier"),
                           "segment": sorted(set(served.ranking["segment"])),
                           "csm": choices(served, "csm"),
                           "playbook": sorted(set(served.ranking["playbook"]))
                           if "playbook" in served.ranking else []},
                  previous=link(page_number - 1) if page_number > 1 else None,
                  following=link(page_number + 1) if start + PAGE_SIZE < len(matching)
                  else None, page_number=page_number, pages=pages)


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
    """The account page's what-if form: the API's what-if (``serving/whatif.py``) behind a
    form, spending the same per-key budget. The key's scope and budget are checked before
    anything is read or scored, so a refused request costs no model time."""
    admitted = admit(request, state)
    if isinstance(admitted, Response):
        return admitted
    user, served = admitted
    if not served.knows(account_id):
        return RedirectResponse(f"/accounts/{quote(account_id)}", status_code=303)
    if not user.allows("whatif"):
        return render(request, "empty.html", 403, user=user, title="Not allowed",
                      problem=f"Your key has scope '{user.scope}'; a what-if needs a "
                              "'whatif' key.", steps=[], back=True)
    refused = spend_what_if(state, user)
    if refused is not None:
        response = render(request, "empty.html", 429, user=user, title="Too many what-ifs",
                          problem=f"Your key {refused[0].removeprefix('this key ')}.",
                          steps=[], back=True)
        response.headers.update(refused[1])
        return response
    changes, errors = form_changes(served, account_id, await request.form())
    result = whatif.what_if(served, state.settings, account_id, changes)
    context = account_context(state.settings, served, account_id)
    for field_ in context["what_if"]:
        if field_["name"] in changes:
            field_["value"] = changes[field_["name"]]
    return render(request, "account.html", 422 if errors else 200, user=user, served=served,
                  can_what_if=True, what_if_result=result, changed=changes,
                  what_if_errors=errors, **context)


def form_changes(served: Served, account_id: str, form: FormData
                 ) -> tuple[dict[str, whatif.Value], list[str]]:
    """The values the what-if form changed, checked as the API checks them, and what is wrong
    with the others, by the label the form shows. An empty field or the value already there
    is no change; fields that are no numeric feature of the model (a form token) are not
    values to change."""
    space = served.bundle.space
    latest = served.snapshot.loc[account_id]
    sent: dict[str, object] = {}
    errors = []
    for name, raw_value in form.items():
        if name not in space.features or name in space.categories:
            continue
        raw = str(raw_value).strip()
        if raw == "":
            continue
        try:
            value = float(raw)
        except ValueError:
            errors.append(f"{label_of(name)}: {raw!r} is not a number")
            continue
        current = latest.get(name)
        if current is not None and not pd.isna(current) and value == float(current):
            continue
        sent[name] = value
    changes, problems = whatif.check_changes(served, sent)
    return changes, errors + [f"{label_of(p.feature)}: {p.problem}" for p in problems]


def label_of(feature: str) -> str:
    """A feature as the page labels it: its description."""
    return REGISTRY[feature].description if feature in REGISTRY else feature


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
