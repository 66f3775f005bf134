"""The CSM pages: portfolio, account and model, rendered on the server (Jinja2, inline SVG).

No front-end build and nothing fetched from elsewhere: the stylesheet is served by the app, the
charts are SVG drawn here, and there is no script at all, so the Content-Security-Policy can
forbid every script. Sign-in takes an API key once and keeps its id in a signed, HttpOnly,
SameSite session cookie; each page checks that the key is still active.
"""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.middleware.sessions import SessionMiddleware

from churnlens.features.kpis import DEFINITIONS
from churnlens.features.registry import PILLARS_ORDER, REGISTRY, load_all
from churnlens.features.store import PART, SNAPSHOTS
from churnlens.serving.forecasting import read_report
from churnlens.serving.guards import MAX_WHAT_IF, RateLimiter
from churnlens.serving.keys import KeyRecord, KeyStore
from churnlens.serving.score import score_probabilities, score_rows
from churnlens.serving.state import (
    Runtime,
    ScoreTable,
    Served,
    answers,
    name_of,
    revenue_of,
)
from churnlens.settings import Settings

PAGE_SIZE = 50
NONE = "\u2013"
"""What a page shows where there is no value (an en dash)."""
HISTORY_SNAPSHOTS = 12
WHAT_IF_FIELDS = 5
KPI_CARDS = (("logo_churn_rate", "Logo churn", "pct1"), ("grr", "GRR", "pct1"),
             ("nrr", "NRR", "pct1"), ("expansion_mrr", "Expansion MRR", "money"),
             ("contraction_mrr", "Contraction MRR", "money"), ("nps", "NPS", "signed"),
             ("csat", "CSAT", "dec2"), ("median_ttfv_days", "Time to first value (days)", "dec1"),
             ("dau_mau", "DAU/MAU", "pct1"), ("feature_adoption_rate", "Feature adoption", "pct0"))
PLOTS = ("churn_calibration.png", "churn_gains.png", "expansion_calibration.png",
         "expansion_gains.png", "churn_shap.png", "churn_auc_by_month.png")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
TEMPLATES = Path(__file__).parent / "templates"


def fmt(value: Any, style: str) -> str:
    """A KPI or score as a CSM reads it; ``NONE`` when there is none."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return NONE
    number = float(value)
    return {"pct0": f"{number:.0%}", "pct1": f"{number:.1%}", "money": f"{number:,.0f}",
            "signed": f"{number:+.0f}", "dec1": f"{number:.1f}", "dec2": f"{number:.2f}",
            "dec3": f"{number:.3f}", "int": f"{number:,.0f}"}.get(style, str(value))


def sparkline(values: list[float | None], width: int = 120, height: int = 28) -> Markup:
    """A small inline SVG line of ``values`` (gaps where a value is missing)."""
    points = [(i, v) for i, v in enumerate(values) if v is not None and not np.isnan(v)]
    if len(points) < 2:
        return Markup("")
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (high - low) or 1.0
    step = width / max(len(values) - 1, 1)
    coords = " ".join(f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}"
                      for i, v in points)
    return Markup(f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" '
                  f'height="{height}" role="img" aria-label="trend"><polyline points="{coords}"'
                  ' fill="none" stroke="currentColor" stroke-width="1.5"/></svg>')


def line_chart(labels: list[str], series: dict[str, list[float | None]], *,
               percent: bool = False, width: int = 520, height: int = 160) -> Markup:
    """A labelled SVG line chart: one polyline per series, axis labels at both ends."""
    values = [v for s in series.values() for v in s if v is not None and not np.isnan(v)]
    if not values or len(labels) < 2:
        return Markup('<p class="muted">Not enough snapshots to draw.</p>')
    low, high = min(0.0, min(values)), max(values)
    span = (high - low) or 1.0
    left, bottom = 40, 20
    step = (width - left - 10) / (len(labels) - 1)

    def y(v: float) -> float:
        return height - bottom - (v - low) / span * (height - bottom - 10)

    def label(v: float) -> str:
        return f"{v:.0%}" if percent else f"{v:,.1f}"

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img">',
             f'<line x1="{left}" y1="{y(low):.1f}" x2="{width - 10}" y2="{y(low):.1f}" '
             'class="axis"/>',
             f'<text x="{left - 4}" y="{y(high) + 4:.1f}" class="tick" text-anchor="end">'
             f'{label(high)}</text>',
             f'<text x="{left - 4}" y="{y(low) + 4:.1f}" class="tick" text-anchor="end">'
             f'{label(low)}</text>',
             f'<text x="{left}" y="{height - 4}" class="tick">{labels[0]}</text>',
             f'<text x="{width - 10}" y="{height - 4}" class="tick" text-anchor="end">'
             f'{labels[-1]}</text>']
    for index, (name, data) in enumerate(series.items()):
        coords = " ".join(f"{left + i * step:.1f},{y(v):.1f}" for i, v in enumerate(data)
                          if v is not None and not np.isnan(v))
        parts.append(f'<polyline points="{coords}" class="series s{index}"/>')
        parts.append(f'<text x="{left + 6 + 130 * index}" y="12" class="legend s{index}">'
                     f'{Markup.escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _session_secret(settings: Settings) -> str:
    """A random signing key kept in HOME (0600), so sessions survive restarts and workers."""
    path = settings.layout.root / ".session_secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".session_secret.{os.getpid()}")
        tmp.write_text(secrets.token_urlsafe(48))
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):  # the first worker wins; others read it
            os.link(tmp, path)
        tmp.unlink()
    return path.read_text().strip()


def account_history(settings: Settings, served: Served, account_id: str) -> pd.DataFrame:
    """The account's last snapshots, scored by the served model (oldest first)."""
    recent = sorted((settings.layout.features / SNAPSHOTS).glob(f"as_of=*/{PART}"))
    dataset = ds.dataset([str(p) for p in recent[-HISTORY_SNAPSHOTS:]], format="parquet")
    frame = dataset.to_table(filter=ds.field("account_id") == account_id).to_pandas()
    if frame.empty:
        return frame
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    frame = frame.sort_values("as_of").tail(HISTORY_SNAPSHOTS).reset_index(drop=True)
    scored = score_probabilities(served.bundle, frame, settings)  # numbers, no sentences
    frame["churn_probability"] = scored["churn_probability"].to_numpy()
    frame["health_score"] = scored["health_score"].to_numpy()
    return frame


def _run_report(settings: Settings, run_id: str) -> dict[str, Any]:
    """The training run's report.json (the hazard figures live there), or nothing."""
    try:
        return dict(json.loads((settings.layout.reports / "runs" / run_id / "report.json")
                               .read_text())) if run_id else {}
    except (OSError, ValueError):
        return {}


def segment_rows(review: dict[str, Any]) -> list[dict[str, Any]]:
    """The training report's segment review as rows for the model page: each segment the
    churn model was reviewed on (enough rows and churners), worst ranked first, beside the
    overall figures, so a data scientist sees where it serves some customers worse."""
    churn = review.get("churn") or {}
    rows = []
    for column, levels in (churn.get("by") or {}).items():
        for level, figures in levels.items():
            if figures.get("reviewed"):
                rows.append({"segment": f"{column} {level}", "rows": figures["rows"],
                             "rate": figures["rate"], "mean_prediction":
                             figures["mean_prediction"], "roc_auc": figures.get("roc_auc"),
                             "flagged": bool(figures.get("flags"))})
    rows.sort(key=lambda row: row["roc_auc"] if row["roc_auc"] is not None else 1.0)
    overall = churn.get("overall")
    if overall and rows:
        rows.insert(0, {"segment": "all validation snapshots", "rows": int(overall["rows"]),
                        "rate": overall["rate"], "mean_prediction": None,
                        "roc_auc": overall["roc_auc"], "flagged": False})
    return rows


def _series(frame: pd.DataFrame, column: str) -> list[float | None]:
    if column not in frame:
        return [None] * len(frame)
    return [None if pd.isna(v) else float(v) for v in frame[column]]


def register_pages(app: FastAPI, settings: Settings, keys: KeyStore, runtime: Runtime,
                   what_if_budget: RateLimiter | None = None) -> None:
    """Add the sign-in, portfolio, account and model pages to ``app``; the page what-if
    spends the same per-key budget as the API's."""
    budget = what_if_budget or RateLimiter(settings.whatif_rate_per_minute)
    load_all()
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.globals.update(fmt=fmt, sparkline=sparkline, pillars=PILLARS_ORDER)
    app.add_middleware(SessionMiddleware, secret_key=_session_secret(settings),
                       session_cookie="churnlens_session", same_site="strict",
                       max_age=12 * 3600)

    def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
        response = templates.TemplateResponse(request, template, {
            "user": context.pop("user", None), **context}, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    def signed_in(request: Request) -> KeyRecord | None:
        key_id = request.session.get("key_id")
        if not key_id:
            return None
        for record in keys.records():
            if record.id == key_id and record.revoked_at is None:
                return record
        request.session.clear()  # revoked since: sign in again
        return None

    def to_login(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    def nothing_served(request: Request, user: KeyRecord) -> Response:
        return page(request, "empty.html", 503, user=user, title="No model yet",
                    problem=runtime.problem or "The model is still loading.",
                    steps=["churnlens features", "churnlens train", "churnlens score"])

    def admit(request: Request) -> tuple[KeyRecord, Served] | Response:
        """The signed-in key and the served model, or the page to show instead."""
        user = signed_in(request)
        if user is None:
            return to_login(request)
        if runtime.served is None:
            return nothing_served(request, user)
        return user, runtime.served

    @app.get("/static/app.css", include_in_schema=False)
    def stylesheet() -> Response:
        return FileResponse(TEMPLATES / "app.css", media_type="text/css",
                            headers={"Cache-Control": "max-age=3600", **SECURITY_HEADERS})

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> Response:
        return page(request, "login.html", next=next if next.startswith("/") else "/")

    @app.post("/login", include_in_schema=False)
    def login(request: Request, key: Annotated[str, Form()] = "",
              next: Annotated[str, Form()] = "/") -> Response:
        record = keys.find(key.strip()) if key.strip() else None
        if record is None:
            return page(request, "login.html", 401, next=next,
                        error="That key is unknown or revoked. Create one with "
                              "`churnlens keys create --name you`.")
        request.session.clear()
        request.session["key_id"] = record.id
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        return RedirectResponse(target, status_code=303)

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @app.get("/", include_in_schema=False)
    def portfolio_page(request: Request, tier: str = "", segment: str = "", csm: str = "",
                       playbook: str = "", q: str = "", sort: str = "",
                       page_number: Annotated[int, Query(alias="page", ge=1)] = 1
                       ) -> Response:
        admitted = admit(request)
        if isinstance(admitted, Response):
            return admitted
        user, served = admitted
        table = served.ranking
        chosen = pd.Series(True, index=table.index)
        for column, value in (("tier", tier), ("segment", segment), ("playbook", playbook)):
            if value and column in table:
                chosen &= table[column] == value
        if csm:
            chosen &= table["account_id"].map(served.directory["csm"]) == csm
        if q:
            names = table["account_id"].map(served.directory["name"])
            needle = q.strip().lower()
            chosen &= (names.fillna("").str.lower().str.contains(needle, regex=False)
                       | table["account_id"].str.lower().str.contains(needle, regex=False))
        matching = table[chosen]
        if sort == "drop" and "health_change" in matching:  # new accounts (no change) last
            matching = matching.sort_values("health_change", kind="stable", na_position="last")
        if sort == "renewal" and "churn_before_renewal" in matching:  # no renewal date last
            matching = matching.sort_values("churn_before_renewal", ascending=False,
                                            kind="stable", na_position="last")
        start = (page_number - 1) * PAGE_SIZE
        rows = answers(served, list(matching["account_id"].iloc[start:start + PAGE_SIZE]),
                       settings)
        for row in rows:
            row["name"] = name_of(served, row["account_id"])
        filters = {"tier": tier, "segment": segment, "csm": csm, "playbook": playbook, "q": q,
                   "sort": sort}

        def link(number: int) -> str:
            return "/?" + urlencode({**{k: v for k, v in filters.items() if v},
                                     "page": number})

        kpis = runtime.kpis["months"][-12:] if runtime.kpis else []
        absent = (runtime.kpis or {}).get("absent", {})
        cards = [{"title": title, "value": fmt(kpis[-1].get(key), style) if kpis else NONE,
                  "month": kpis[-1]["month"][:7] if kpis else "",
                  "spark": sparkline([m.get(key) for m in kpis]),
                  "definition": DEFINITIONS[key] + (f" Absent here: {absent[key]}."
                                                    if key in absent else "")}
                 for key, title, style in KPI_CARDS]
        tiers = served.ranking["tier"].value_counts().to_dict()
        return page(request, "portfolio.html", user=user, served=served, rows=rows,
                    cards=cards, kpi_problem=runtime.kpi_problem, tiers=tiers,
                    filters=filters, total=len(matching),
                    revenue=revenue_of(matching, served.bundle.revenue),
                    options={"tier": ["high", "medium", "low"],
                             "segment": sorted(set(served.ranking["segment"])),
                             "csm": sorted({c for c in served.directory["csm"]
                                            if isinstance(c, str) and c}),
                             "playbook": sorted(set(served.ranking["playbook"]))
                             if "playbook" in served.ranking else []},
                    previous=link(page_number - 1) if page_number > 1 else None,
                    following=link(page_number + 1) if start + PAGE_SIZE < len(matching)
                    else None, page_number=page_number,
                    pages=max(1, -(-len(matching) // PAGE_SIZE)))

    def account_context(served: Served, account_id: str) -> dict[str, Any]:
        answer = answers(served, [account_id], settings)[0]
        history = account_history(settings, served, account_id)
        labels = [d.isoformat()[:7] for d in history["as_of"]] if not history.empty else []
        latest = served.snapshot.loc[account_id]
        space = served.bundle.space
        editable = [d["feature"] for d in answer["drivers"]
                    if d["feature"] not in space.categories][:WHAT_IF_FIELDS]
        return {
            "answer": answer, "name": name_of(served, account_id),
            "csm": csm if isinstance(csm := served.directory["csm"].get(account_id), str)
            else None,
            "risk_chart": line_chart(labels, {"churn probability": _series(
                history, "churn_probability")}, percent=True),
            "health_chart": line_chart(labels, {"health score": _series(history,
                                                                        "health_score")}),
            "usage_chart": line_chart(labels, {
                "active users (30d)": _series(history, "active_users_30d"),
                "features used (30d)": _series(history, "features_used_30d")}),
            "voice_chart": line_chart(labels, {
                "last NPS": _series(history, "last_nps"),
                "mean CSAT (90d)": _series(history, "mean_csat_90d")}),
            "pillar_scale": max([abs(v) for v in answer["pillars"].values()] + [1.0]),
            "facts": [(REGISTRY[n].description, latest.get(n), REGISTRY[n].unit)
                      for n in ("open_tickets", "days_to_renewal", "mrr", "seats",
                                "active_users_30d") if n in latest.index],
            "what_if": [{"name": n, "label": REGISTRY[n].description, "unit": REGISTRY[n].unit,
                         "value": "" if pd.isna(latest[n]) else float(latest[n])}
                        for n in editable],
        }

    @app.get("/accounts/{account_id}", include_in_schema=False)
    def account_page(request: Request, account_id: str) -> Response:
        admitted = admit(request)
        if isinstance(admitted, Response):
            return admitted
        user, served = admitted
        if not served.knows(account_id):
            return page(request, "empty.html", 404, user=user, title="Unknown account",
                        problem=f"No account {account_id!r} in the snapshot of {served.as_of}: "
                                "it may have churned, be new since, or the id is mistyped.",
                        steps=[], back=True)
        return page(request, "account.html", user=user, served=served,
                    can_what_if=user.allows("whatif"), **account_context(served, account_id))

    @app.post("/accounts/{account_id}/what-if", include_in_schema=False)
    async def account_what_if(request: Request, account_id: str) -> Response:
        admitted = admit(request)
        if isinstance(admitted, Response):
            return admitted
        user, served = admitted
        if not served.knows(account_id):
            return RedirectResponse(f"/accounts/{quote(account_id)}", status_code=303)
        context = account_context(served, account_id)
        if not user.allows("whatif"):
            return page(request, "account.html", 403, user=user, served=served,
                        can_what_if=False, **context)
        wait = budget.wait_for(user.id)
        if wait > 0:
            response = page(request, "account.html", 429, user=user, served=served,
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
        result = ScoreTable(score_rows(served.bundle, rows, settings,
                                       served.playbooks)).answer_at(0)
        return page(request, "account.html", 422 if errors else 200, user=user, served=served,
                    can_what_if=True, what_if_result=result, changed=changed,
                    what_if_errors=errors, **context)

    @app.get("/model", include_in_schema=False)
    def model_page(request: Request) -> Response:
        admitted = admit(request)
        if isinstance(admitted, Response):
            return admitted
        user, served = admitted
        bundle = served.bundle
        drift = sorted(served.drift.psi.items(), key=lambda kv: -kv[1])[:15]
        run_id = str(bundle.manifest.get("run_id", ""))
        plots = [name for name in PLOTS if run_id and
                 (settings.layout.reports / "runs" / run_id / name).is_file()]
        report = _run_report(settings, run_id)
        return page(request, "model.html", user=user, served=served, bundle=bundle,
                    metrics=bundle.metrics, drift=drift, drifted=set(served.drift.drifted),
                    plots=plots, trained_at=bundle.manifest.get("trained_at"),
                    timing=report.get("hazard") or {},
                    segments=segment_rows(report.get("segments") or {}),
                    segment_flags=(report.get("segments") or {}).get("flags", []),
                    segment_review=bool(report.get("segments")),
                    baselines=report.get("baselines"),
                    backtest=(read_report(settings) or {}).get("backtest"),
                    has_arr=revenue_of(served.ranking) is not None)

    @app.get("/model/plots/{name}", include_in_schema=False)
    def model_plot(request: Request, name: str) -> Response:
        user = signed_in(request)
        served = runtime.served
        if user is None or served is None or name not in PLOTS:
            return Response(status_code=404)
        path = settings.layout.reports / "runs" / str(
            served.bundle.manifest.get("run_id", "")) / name
        if not path.is_file():
            return Response(status_code=404)
        return FileResponse(path, media_type="image/png", headers=SECURITY_HEADERS)

    @app.exception_handler(404)
    async def not_found(request: Request, error: Exception) -> Response:
        if request.url.path.startswith("/v1/") or "text/html" not in request.headers.get(
                "accept", ""):
            detail = getattr(error, "detail", "Not Found")
            return Response(json.dumps({"detail": detail}), status_code=404,
                            media_type="application/json")
        return page(request, "empty.html", 404, title="Not found",
                    problem=f"There is no page at {request.url.path}.", steps=[], back=True)

