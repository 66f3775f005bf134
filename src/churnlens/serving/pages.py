"""The CSM pages' rendering: templates, number formats, inline SVG charts, and the data each
page reads beyond the score table (an account's history, the training report). The routes are
in ``serving/api/routes/pages.py`` and ``session.py``.

No front-end build and nothing fetched from elsewhere: the stylesheet is served by the app, the
charts are SVG drawn here, and there is no script at all, so the Content-Security-Policy can
forbid every script. Sign-in takes an API key once and keeps its id in a signed, HttpOnly,
SameSite session cookie; each page checks that the key is still active.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from churnlens.features.registry import PILLARS_ORDER, REGISTRY
from churnlens.features.store import PART, SNAPSHOTS
from churnlens.serving.api.deps import freshness_of, serving_of
from churnlens.serving.keys import KeyRecord
from churnlens.serving.score import score_probabilities
from churnlens.serving.state import Served, answers, name_of
from churnlens.settings import Settings
from churnlens.training import evaluation

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


def session_secret(settings: Settings) -> str:
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


def run_report(settings: Settings, run_id: str) -> dict[str, Any]:
    """The training run's report.json (the hazard figures live there), or nothing."""
    try:
        return dict(json.loads((settings.layout.reports / "runs" / run_id / "report.json")
                               .read_text())) if run_id else {}
    except (OSError, ValueError):
        return {}


def segment_rows(review: dict[str, Any]) -> list[dict[str, Any]]:
    """The training report's segment review as rows for the model page: the whole validation
    slice first, then each reviewed segment, worst ranked first, flagged by the one rule the
    report's flags use (``evaluation.review_rows``)."""
    return evaluation.review_rows(review)


def _series(frame: pd.DataFrame, column: str) -> list[float | None]:
    if column not in frame:
        return [None] * len(frame)
    return [None if pd.isna(v) else float(v) for v in frame[column]]


templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.globals.update(fmt=fmt, sparkline=sparkline, pillars=PILLARS_ORDER)


def render(request: Request, template: str, status: int = 200, *,
           user: KeyRecord | None = None, **context: Any) -> Response:
    """A page from ``template``, with the security headers every page carries, and, for a
    signed-in reader, the banner that says the scores are stale (``scores``)."""
    scores = freshness_of(serving_of(request)) if user is not None else None
    response = templates.TemplateResponse(request, template,
                                          {"user": user, "scores": scores, **context},
                                          status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def account_context(settings: Settings, served: Served, account_id: str) -> dict[str, Any]:
    """What the account page shows: the answer, its history drawn, the facts a CSM checks
    first, and the what-if fields (its top numeric drivers)."""
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
