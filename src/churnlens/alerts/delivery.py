"""Webhooks from the outbox: each queued delivery is POSTed to its endpoint with Standard
Webhooks headers (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``: HMAC-SHA256
by the ``standardwebhooks`` package), so a receiver can check the sender and drop duplicates.

At least once: a delivery is marked sent only after the receiver answers 2xx; a sender that
dies mid-send leaves it pending (its claim expires) and the next sender sends it again under
the same ``webhook-id``. A failed send is retried on tenacity's exponential backoff with full
jitter, each delivery on its own schedule, so one receiver that is down never holds the
others' webhooks back; after ``delivery_attempts`` sends it is marked dead with the last
error. Secrets (the signing secret, and the URL, which for Slack is a credential itself) are
never logged nor stored: the store keeps the endpoint's name, the rules file the rest.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
from standardwebhooks import Webhook
from tenacity import RetryCallState, Retrying, wait_random_exponential

import churnlens
from churnlens.alerts.rules import Endpoint, RuleBook
from churnlens.alerts.store import Delivery, TaskStore, now_utc

log = logging.getLogger(__name__)

CREATED = "task.created"
"""The event a new task sends."""
BATCH = 20
"""Deliveries one sender claims at a time."""
ERROR_CHARS = 300
"""What is kept of a receiver's answer to a failed send."""


def task_payload(form: Literal["json", "slack"], task: dict[str, Any], now: datetime) -> str:
    """The body announcing a new task: Standard Webhooks' ``{type, timestamp, data}``, or
    Slack's incoming-webhook message layout. Written once, when the task is, so every resend
    carries the same bytes."""
    if form == "slack":
        return json.dumps(_slack(task), separators=(",", ":"))
    return json.dumps({"type": CREATED, "timestamp": now.isoformat(), "data": task},
                      separators=(",", ":"), default=str)


def _slack(task: dict[str, Any]) -> dict[str, Any]:
    def escape(text: object) -> str:  # Slack's mrkdwn reads these three as markup
        return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    title = (f"[{task['priority']}] {escape(task['rule'].replace('_', ' '))}: "
             f"{escape(task['account_name'])} ({escape(task['account_id'])})")
    context = (f"Playbook: {escape(task['playbook'])} · Owner: {escape(task['owner'])} · "
               f"Due: {task['due_date']} · Task {task['task_id']}")
    summary = {"type": "mrkdwn", "text": f"*{title}*\n{escape(task['reason'])}"}
    return {"text": f"{title}. {task['reason']}",
            "blocks": [{"type": "section", "text": summary},
                       {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}]}


@dataclass
class DeliveryRun:
    """What one ``deliver`` did."""

    sent: int = 0
    failed: int = 0
    """Sends that failed and will be retried."""
    dead: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Schedule:
    """How often and how far apart a delivery is tried (from the settings)."""

    attempts: int
    max_delay_seconds: float
    timeout_seconds: float

    def delay(self, attempts_made: int) -> timedelta:
        """Wait before the next send after ``attempts_made`` failed ones: tenacity's
        exponential backoff with full jitter (uniform up to min(max, 2^n) seconds)."""
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = attempts_made
        wait = wait_random_exponential(multiplier=1, max=self.max_delay_seconds)
        return timedelta(seconds=wait(state))

    @property
    def lease(self) -> timedelta:
        """How long a sender holds the deliveries it claimed: long enough to send a batch."""
        return timedelta(seconds=self.timeout_seconds * BATCH + 60)


def deliver(store: TaskStore, book: RuleBook, schedule: Schedule, *, wait: bool = True,
            client: httpx.Client | None = None,
            sleep: Callable[[float], None] = time.sleep) -> DeliveryRun:
    """Send every due delivery; with ``wait``, keep going (sleeping until the next retry is
    due) until each is sent or dead, else make one pass and leave retries to the next run."""
    endpoints = {endpoint.name: endpoint for endpoint in book.endpoints}
    run = DeliveryRun()
    owned = client is None
    http = client or httpx.Client(timeout=schedule.timeout_seconds, follow_redirects=False)
    started = now_utc()
    try:
        while True:
            # one pass sends what was due when it started; retries wait for the next run
            batch = store.due_deliveries(now_utc() if wait else started, limit=BATCH,
                                         lease=schedule.lease)
            for delivery in batch:
                _send(store, endpoints.get(delivery.endpoint), delivery, schedule, http, run)
            if batch:
                continue
            upcoming = store.next_retry() if wait else None
            if upcoming is None:
                return run
            sleep(max(0.0, (upcoming - now_utc()).total_seconds()))
    finally:
        if owned:
            http.close()


def _send(store: TaskStore, endpoint: Endpoint | None, delivery: Delivery, schedule: Schedule,
          http: httpx.Client, run: DeliveryRun) -> None:
    error: str | None
    if endpoint is None:
        error = f"endpoint '{delivery.endpoint}' is no longer in the alert rules"
    else:
        error = send_once(http, endpoint, delivery)
    made = delivery.attempts + 1
    if error is None:
        store.attempted(delivery.id, error=None)
        run.sent += 1
        log.info("webhook %s sent to %s", delivery.id, delivery.endpoint)
        return
    dead = endpoint is None or made >= schedule.attempts
    store.attempted(delivery.id, error=error, dead=dead,
                    retry_at=now_utc() + schedule.delay(made))
    run.errors.append(f"{delivery.endpoint}: {error}")
    if dead:
        run.dead += 1
        log.warning("webhook %s to %s is dead after %d attempts: %s", delivery.id,
                    delivery.endpoint, made, error)
    else:
        run.failed += 1
        log.info("webhook %s to %s failed (attempt %d of %d): %s", delivery.id,
                 delivery.endpoint, made, schedule.attempts, error)


def send_once(http: httpx.Client, endpoint: Endpoint, delivery: Delivery) -> str | None:
    """POST one delivery, signed now; None on a 2xx answer, else what went wrong (with the
    endpoint's URL replaced by its scheme and host)."""
    body = delivery.payload.encode()
    moment = now_utc()
    headers = {
        "content-type": "application/json",
        "user-agent": f"churnlens/{getattr(churnlens, '__version__', 'dev')}",
        "webhook-id": delivery.id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(endpoint.signing_secret).sign(delivery.id, moment, body),
    }
    url = endpoint.url.get_secret_value()
    try:
        answer = http.post(url, content=body, headers=headers)
    except httpx.HTTPError as error:
        return _redacted(f"{type(error).__name__}: {error}", url, endpoint.where)
    if 200 <= answer.status_code < 300:
        return None
    text = " ".join(answer.text.split())[:ERROR_CHARS]
    return _redacted(f"HTTP {answer.status_code}" + (f": {text}" if text else ""), url,
                     endpoint.where)


def _redacted(text: str, url: str, shown: str) -> str:
    return text.replace(url, shown) if url else text
