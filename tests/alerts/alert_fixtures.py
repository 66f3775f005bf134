"""A tiny scored project folder whose every alert is known, and a real webhook receiver that
checks Standard Webhooks signatures with the ``standardwebhooks`` package."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

AS_OF = date(2024, 5, 1)
PREVIOUS = date(2024, 4, 1)
THRESHOLDS = {"CHURNLENS_TIER_RULE": "absolute", "CHURNLENS_TIER_HIGH": "0.25",
              "CHURNLENS_TIER_MEDIUM": "0.10"}


def _drivers(*sentences: str) -> str:
    return json.dumps([{"feature": f"f{i}", "value": 1, "points": 5.0 - i,
                        "pillar": "adoption", "sentence": s}
                       for i, s in enumerate(sentences)])


SCORES = pd.DataFrame([
    # entered the high tier (20% -> 40% under one model) and lost 25 health points
    {"account_id": "a1", "tier": "high", "churn_probability": 0.40, "churn_change": 20.0,
     "health_score": 30.0, "health_change": -25.0, "expansion_probability": 0.05,
     "days_to_renewal": 200.0, "failing_pillar": "adoption", "playbook": "adoption push",
     "drivers_json": _drivers("3 of 20 seats active", "No key action in 30 days")},
    # already high at the previous score
    {"account_id": "a2", "tier": "high", "churn_probability": 0.45, "churn_change": 2.0,
     "health_score": 28.0, "health_change": -1.0, "expansion_probability": 0.05,
     "days_to_renewal": 200.0, "failing_pillar": "support", "playbook": "support escalation",
     "drivers_json": _drivers("5 urgent tickets")},
    # high now, but a new model moved it there: the same model re-scored its previous
    # snapshot just as high (no change)
    {"account_id": "a3", "tier": "high", "churn_probability": 0.30, "churn_change": 0.0,
     "health_score": 40.0, "health_change": 0.0, "expansion_probability": 0.05,
     "days_to_renewal": 200.0, "failing_pillar": "adoption", "playbook": "adoption push",
     "drivers_json": _drivers("Fewer active users")},
    # new account, no previous score
    {"account_id": "a4", "tier": "high", "churn_probability": 0.50, "churn_change": np.nan,
     "health_score": 20.0, "health_change": np.nan, "expansion_probability": 0.05,
     "days_to_renewal": 200.0, "failing_pillar": "onboarding", "playbook": "onboarding rescue",
     "drivers_json": _drivers("No seat activated")},
    # healthy, likely to expand
    {"account_id": "a5", "tier": "low", "churn_probability": 0.02, "churn_change": -1.0,
     "health_score": 90.0, "health_change": 2.0, "expansion_probability": 0.40,
     "days_to_renewal": 200.0, "failing_pillar": None, "playbook": "expansion offer",
     "drivers_json": _drivers()},
    # medium risk, renewing in a month
    {"account_id": "a6", "tier": "medium", "churn_probability": 0.15, "churn_change": 1.0,
     "health_score": 45.0, "health_change": -2.0, "expansion_probability": 0.05,
     "days_to_renewal": 30.0, "failing_pillar": "commercial", "playbook": "renewal save",
     "drivers_json": _drivers("Seat utilisation of 40%")},
]).assign(as_of=AS_OF, previous_as_of=PREVIOUS, model_version="v1")
"""Expected firings: a1 enters_high_tier and health_falls; a5 expansion_opportunity; a6
renewal_at_risk. The table has no snapshot beside it, so NPS, tickets and tenure are lacking."""

EXPECTED = {("a1", "enters_high_tier"), ("a1", "health_falls"),
            ("a5", "expansion_opportunity"), ("a6", "renewal_at_risk")}


def scored_home(home: Path, scores: pd.DataFrame = SCORES) -> Path:
    """A project folder with a score table, its model's metrics and the accounts' CSMs."""
    (home / "scores").mkdir(parents=True, exist_ok=True)
    scores.to_parquet(home / "scores" / f"{AS_OF.isoformat()}.parquet", index=False)
    (home / "models" / "v1").mkdir(parents=True, exist_ok=True)
    (home / "models" / "v1" / "metrics.json").write_text(json.dumps({"churn": {"rate": 0.08}}))
    (home / "features").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"account_id": ["a1", "a5", "a6"],
                             "name": ["Acme", "Globex", "Initech"],
                             "csm": ["Jordan Lee", None, "Ana Ruiz"]}),
                   home / "features" / "accounts.parquet")
    return home


@dataclass
class Receiver:
    """What the receiver got: every request's webhook-id and verified payload, in order."""

    url: str
    secret: str
    ids: list[str] = field(default_factory=list)
    payloads: list[Any] = field(default_factory=list)
    rejected: int = 0
    failures_left: int = 0
    """Answer 503 to this many requests first (a receiver having a bad moment)."""


@contextmanager
def receiver(secret: str) -> Iterator[Receiver]:
    """A webhook receiver on a free local port, as a CRM's would be: it verifies each request
    with ``standardwebhooks`` and answers 401 to a bad signature, 204 otherwise."""
    verifier = Webhook(secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    got = Receiver(url=f"http://127.0.0.1:{port}/hooks/churnlens?token=t0ps3cret", secret=secret)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with lock:
                if got.failures_left > 0:
                    got.failures_left -= 1
                    got.ids.append(self.headers.get("webhook-id", ""))
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"try later")
                    return
                try:
                    payload = verifier.verify(body, dict(self.headers))
                except WebhookVerificationError:
                    got.rejected += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                got.ids.append(self.headers["webhook-id"])
                got.payloads.append(payload)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


def rules_file(path: Path, url: str, secret: str, extra: str = "") -> Path:
    path.write_text(f"""
endpoints:
  - name: crm
    url: "{url}"
    secret: {secret}
{extra}""")
    return path
