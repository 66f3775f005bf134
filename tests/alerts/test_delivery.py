"""Webhooks from the outbox to a real HTTP receiver that verifies their signatures: sent once
acknowledged, retried under the same id, dead with the error when the receiver stays down,
and no secret in any log line or error."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from alert_fixtures import EXPECTED, receiver, rules_file, scored_home

from churnlens.alerts.delivery import Schedule, deliver
from churnlens.alerts.evaluate import rules_for, run_alerts, store_for
from churnlens.alerts.rules import new_secret
from churnlens.settings import Settings

FAST = Schedule(attempts=3, max_delay_seconds=0.05, timeout_seconds=5)


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=scored_home(tmp_path / "home"), tier_rule="absolute",
                    tier_high=0.25, tier_medium=0.10)


def test_signed_webhooks_reach_the_receiver_once_each(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    secret = new_secret()
    with receiver(secret) as got:
        path = rules_file(tmp_path / "alerts.yaml", got.url, secret)
        run_alerts(settings, rules_path=path)
        book = rules_for(settings, path)
        with store_for(settings) as store:
            run = deliver(store, book, FAST)
            assert (run.sent, run.failed, run.dead) == (len(EXPECTED), 0, 0)
            queued = store.deliveries()
            assert {d.status for d in queued} == {"sent"}
            assert deliver(store, book, FAST).sent == 0  # nothing left to send
        run_alerts(settings, rules_path=path)  # a rerun queues nothing new
        with store_for(settings) as store:
            assert len(store.deliveries()) == len(EXPECTED)
    assert got.rejected == 0
    assert sorted(got.ids) == sorted(d.id for d in queued)
    assert {(p["data"]["account_id"], p["data"]["rule"]) for p in got.payloads} == EXPECTED
    assert all(p["type"] == "task.created" for p in got.payloads)


def test_a_wrong_secret_is_refused_by_the_receiver_and_the_delivery_retried(
        tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with receiver(new_secret()) as got:
        path = rules_file(tmp_path / "alerts.yaml", got.url, new_secret(),
                          "rules:\n  - name: health_falls\n    enabled: false\n")
        run_alerts(settings, rules_path=path)
        with store_for(settings) as store:
            run = deliver(store, rules_for(settings, path), FAST)
            assert run.sent == 0 and run.dead == len(EXPECTED) - 1
            assert {d.last_error for d in store.deliveries()} == {"HTTP 401"}
    assert got.rejected == FAST.attempts * (len(EXPECTED) - 1)


def test_a_receiver_that_fails_twice_gets_the_same_webhook_id_three_times(
        tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    secret = new_secret()
    with receiver(secret) as got:
        path = rules_file(tmp_path / "alerts.yaml", got.url, secret,
                          "rules:\n" + "".join(f"  - name: {r}\n    enabled: false\n"
                                               for r in ("health_falls", "renewal_at_risk",
                                                         "expansion_opportunity")))
        got.failures_left = 2
        run_alerts(settings, rules_path=path)
        with store_for(settings) as store:
            run = deliver(store, rules_for(settings, path), FAST)
            (delivery,) = store.deliveries()
    assert (run.sent, run.failed, run.dead) == (1, 2, 0)
    assert delivery.status == "sent" and delivery.attempts == 3
    assert got.ids == [delivery.id] * 3


def test_a_receiver_that_is_down_ends_dead_with_the_error_and_no_secret_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(tmp_path)
    secret = new_secret()
    with receiver(secret) as got:
        url = got.url
    # the receiver is gone: nothing listens on its port any more
    path = rules_file(tmp_path / "alerts.yaml", url, secret)
    run_alerts(settings, rules_path=path)
    one_pass = Schedule(attempts=3, max_delay_seconds=0.05, timeout_seconds=2)
    with caplog.at_level(logging.DEBUG), store_for(settings) as store:
        first = deliver(store, rules_for(settings, path), one_pass, wait=False)
        assert first.failed == len(EXPECTED) and first.dead == 0
        assert {d.status for d in store.deliveries()} == {"pending"}
        rest = deliver(store, rules_for(settings, path), one_pass)
        assert rest.dead == len(EXPECTED)
        dead = store.deliveries()
    assert {d.status for d in dead} == {"dead"} and {d.attempts for d in dead} == {3}
    assert all(d.last_error and d.last_error.startswith("ConnectError") for d in dead)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    shown = "\n".join([logged, *(d.last_error or "" for d in dead), json.dumps(
        [e for e in first.errors + rest.errors])])
    assert "dead after 3 attempts" in logged
    for never in (secret, secret.removeprefix("whsec_"), "t0ps3cret", url):
        assert never not in shown
