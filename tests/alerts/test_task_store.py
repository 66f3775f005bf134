"""The task store on SQLite and PostgreSQL: migrations, the lifecycle of a task, and at most one
open task per (account, rule) held by the database, also under two runs at once."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
import stores
from sqlalchemy import create_engine, insert, select
from sqlalchemy.exc import IntegrityError

from churnlens.alerts import AlertsError
from churnlens.alerts.schema import firings, metadata, tasks
from churnlens.alerts.store import (
    NewDelivery,
    NewFiring,
    TaskConflict,
    TaskNotFound,
    TaskStore,
    new_id,
)
from churnlens.alerts.store import store_url as url_of

postgres = stores.postgres
store_url = stores.store_url
"""The store on SQLite and on PostgreSQL (``stores``), for every test that takes it."""

NOW = datetime(2024, 3, 2, 6, 0, tzinfo=UTC)
AS_OF = date(2024, 3, 1)
COOLDOWN = {"health_falls": 30, "renewal_at_risk": 30}


def firing(account: str = "a1", rule: str = "health_falls", as_of: date = AS_OF,
           held_out: bool = False, endpoints: tuple[str, ...] = ("crm",)) -> NewFiring:
    task_id = new_id()
    return NewFiring(
        account_id=account, rule=rule, as_of=as_of, held_out=held_out, playbook="renewal save",
        priority="high", priority_rank=1, owner="Jordan Lee", due_date=as_of + timedelta(5),
        reason=f"{account} fell", score={"health_score": 31.5, "tier": "high"},
        drivers=[{"feature": "active_users_30d", "sentence": "3 active users"}],
        model_version="v1", task_id=task_id,
        deliveries=tuple(NewDelivery(id=f"msg_{new_id()}", endpoint=e, event="task.created",
                                     payload="{}") for e in endpoints))


def test_an_empty_database_is_migrated_to_the_tables_the_code_reads(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with TaskStore(store_url) as store:
        assert store.revision() == "0001"
        with store.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_an_existing_store_is_upgraded_on_open_and_keeps_its_tasks(store_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    url = store_url_for(store_url)
    engine = create_engine(url)
    with engine.begin() as conn:  # a store an earlier churnlens left at its first version
        config = Config()
        config.set_main_option("script_location", "churnlens.alerts:migrations")
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    engine.dispose()
    with TaskStore(url) as store:
        store.record([firing()], COOLDOWN, NOW)
    with TaskStore(url) as store:  # opened again: nothing migrated twice, nothing lost
        assert store.revision() == "0001"
        assert len(store.tasks()[0]) == 1


def store_url_for(url: str) -> str:
    return url_of(url, home=None)  # type: ignore[arg-type]


def test_a_task_lives_open_in_progress_done_with_every_change_recorded(store_url: str
                                                                       ) -> None:
    with TaskStore(store_url) as store:
        recorded = store.record([firing()], COOLDOWN, NOW)
        assert len(recorded.tasks) == 1 and recorded.deliveries == 1
        task_id = recorded.tasks[0]
        task = store.task(task_id)
        assert (task.status, task.owner, task.created_by) == ("open", "Jordan Lee",
                                                              "churnlens alerts")
        assert task.score == {"health_score": 31.5, "tier": "high"}
        later = NOW + timedelta(hours=2)
        store.change(task_id, "ana", status="in_progress", owner="Ana Ruiz",
                     note="Called the champion", now=later)
        done = store.change(task_id, "ana", status="done", now=later + timedelta(days=1))
        assert done.status == "done" and done.closed_at == later + timedelta(days=1)
        assert [(e.change, e.actor, e.before, e.after) for e in done.events] == [
            ("created", "churnlens alerts", None, "health_falls"),
            ("status", "ana", "open", "in_progress"),
            ("owner", "ana", "Jordan Lee", "Ana Ruiz"),
            ("note", "ana", None, "Called the champion"),
            ("status", "ana", "in_progress", "done")]
        assert [(n.author, n.text, n.at) for n in done.notes] == [
            ("ana", "Called the champion", later)]
        with pytest.raises(TaskConflict, match="is done; it cannot become open"):
            store.change(task_id, "ana", status="open")
        with pytest.raises(TaskNotFound):
            store.change("nope", "ana", status="done")


def test_dismissing_needs_a_reason(store_url: str) -> None:
    with TaskStore(store_url) as store:
        task_id = store.record([firing()], COOLDOWN, NOW).tasks[0]
        with pytest.raises(AlertsError, match="needs a reason"):
            store.change(task_id, "ana", status="dismissed")
        with pytest.raises(AlertsError, match="unknown task status"):
            store.change(task_id, "ana", status="closed")
        dismissed = store.change(task_id, "ana", status="dismissed",
                                 dismissal_reason="Customer already renewed")
        assert dismissed.dismissal_reason == "Customer already renewed"
        assert dismissed.closed_at is not None


def test_the_database_refuses_a_second_open_task_for_an_account_and_rule(store_url: str
                                                                         ) -> None:
    with TaskStore(store_url) as store:
        first = store.record([firing()], COOLDOWN, NOW).tasks[0]
        row = {c: v for c, v in store.engine.connect().execute(
            select(tasks).where(tasks.c.id == first)).mappings().one().items()}
        with pytest.raises(IntegrityError), store.engine.begin() as conn:
            conn.execute(insert(tasks).values({**row, "id": new_id()}))
        store.change(first, "ana", status="done", now=NOW)
        with store.engine.begin() as conn:  # closed tasks do not count
            conn.execute(insert(tasks).values({**row, "id": new_id(), "status": "open"}))


def test_a_rerun_fires_nothing_new_and_a_closed_task_cools_down(store_url: str) -> None:
    with TaskStore(store_url) as store:
        first = store.record([firing(), firing(rule="renewal_at_risk")], COOLDOWN, NOW)
        assert len(first.tasks) == 2
        again = store.record([firing(), firing(rule="renewal_at_risk")], COOLDOWN, NOW)
        assert again.tasks == [] and again.deliveries == 0 and again.already_fired == 2
        # the next table, a month later: the open task holds it back
        next_month = store.record([firing(as_of=date(2024, 4, 1))], COOLDOWN,
                                  NOW + timedelta(days=30))
        assert next_month.tasks == [] and next_month.open_task == 1
        store.change(first.tasks[0] if store.task(first.tasks[0]).rule == "health_falls"
                     else first.tasks[1], "ana", status="done", now=NOW + timedelta(days=31))
        cooling = store.record([firing(as_of=date(2024, 5, 1))], COOLDOWN,
                               NOW + timedelta(days=60))
        assert cooling.tasks == [] and cooling.cooling_down == 1
        after = store.record([firing(as_of=date(2024, 5, 1))], COOLDOWN,
                             NOW + timedelta(days=62))
        assert len(after.tasks) == 1
        assert len(store.deliveries()) == 3
        assert len(store.firings("health_falls")) == 2


def test_held_out_firings_are_recorded_without_a_task_and_cool_down(store_url: str) -> None:
    with TaskStore(store_url) as store:
        recorded = store.record([firing(held_out=True)], COOLDOWN, NOW)
        assert recorded.tasks == [] and recorded.held_out == 1 and recorded.deliveries == 0
        assert store.tasks()[0] == [] and store.deliveries() == []
        (control,) = store.firings()
        assert control["held_out"] and control["task_id"] is None
        assert control["reason"] == "a1 fell"
        later = store.record([firing(as_of=date(2024, 4, 1))], COOLDOWN,
                             NOW + timedelta(days=10))
        assert later.cooling_down == 1 and later.tasks == []


def test_two_evaluations_at_once_make_one_open_task_per_account_and_rule(store_url: str
                                                                         ) -> None:
    """Two runs, each with its own connection pool, on two score tables (so the firing keys
    differ and only the open-task index can stop the second), started together."""
    TaskStore(store_url).close()  # migrated once, as `churnlens score` would have
    accounts = [f"acc_{i:03d}" for i in range(40)]
    start = threading.Barrier(2)
    results = {}

    def run(name: str, as_of: date) -> None:
        with TaskStore(store_url) as store:
            batch = [firing(a, r, as_of) for a in accounts for r in COOLDOWN]
            start.wait()
            results[name] = store.record(batch, COOLDOWN, NOW)

    threads = [threading.Thread(target=run, args=(name, as_of)) for name, as_of in
               (("march", AS_OF), ("april", date(2024, 4, 1)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert set(results) == {"march", "april"}
    with TaskStore(store_url) as store:
        open_tasks, _ = store.tasks(status=["open"], limit=1000)
        pairs = [(t.account_id, t.rule) for t in open_tasks]
        assert len(pairs) == len(set(pairs)) == 2 * len(accounts)
        assert len(store.deliveries()) == len(open_tasks)
        made = sorted(f["task_id"] for f in store.firings() if f["task_id"])
        assert made == sorted(t.id for t in open_tasks)  # no firing left without its task
    assert sum(len(r.tasks) for r in results.values()) == 2 * len(accounts)


def test_a_task_another_run_has_not_committed_yet_still_holds_the_second_back(
        store_url: str) -> None:
    """The second run cannot see the first's task when it looks (not committed yet): only the
    database can stop it, and does (PostgreSQL: the index makes its insert wait, then do
    nothing; SQLite: its write waits for the first to commit)."""
    outcome = {}
    with TaskStore(store_url) as first, TaskStore(store_url) as second:
        with first._writing() as conn:
            assert first._insert_task(conn, firing(), NOW)
            other = threading.Thread(target=lambda: outcome.update(recorded=second.record(
                [firing(as_of=date(2024, 4, 1))], COOLDOWN, NOW)))
            other.start()
            other.join(timeout=1.5)
            assert other.is_alive(), "the second run did not wait for the first"
        other.join(timeout=60)
        assert outcome["recorded"].tasks == [] and outcome["recorded"].open_task == 1
        assert second.firings() == []  # its firing was taken back with the task
        assert len(second.tasks()[0]) == 1


def test_tasks_are_listed_by_due_date_then_priority_in_pages(store_url: str) -> None:
    with TaskStore(store_url) as store:
        batch = [replace(firing(f"a{i}"), due_date=date(2024, 3, 10 - i % 3),
                         priority=("urgent", "high", "low")[i % 3],
                         priority_rank=(0, 1, 3)[i % 3]) for i in range(7)]
        batch.append(replace(firing("b"), due_date=date(2024, 3, 8), priority="urgent",
                             priority_rank=0))
        store.record(batch, COOLDOWN, NOW)
        seen, cursor = [], None
        while True:
            page, cursor = store.tasks(limit=3, after=cursor)
            seen += page
            if cursor is None:
                break
        keys = [(t.due_date, ("urgent", "high", "normal", "low").index(t.priority), t.id)
                for t in seen]
        assert keys == sorted(keys) and len(seen) == 8
        assert [t.account_id for t in store.tasks(account_id="b")[0]] == ["b"]
        assert len(store.tasks(due_before=date(2024, 3, 9))[0]) == 3  # a2, a5 and b
        with pytest.raises(AlertsError, match="cursor"):
            store.tasks(after="not-a-cursor")


def test_a_claimed_delivery_is_not_sent_twice_at_once_and_comes_back_after_its_lease(
        store_url: str) -> None:
    with TaskStore(store_url) as store:
        store.record([firing(endpoints=("crm", "slack"))], COOLDOWN, NOW)
        lease = timedelta(minutes=5)
        claimed = store.due_deliveries(NOW, lease=lease)
        assert len(claimed) == 2
        assert store.due_deliveries(NOW + timedelta(minutes=1), lease=lease) == []
        store.attempted(claimed[0].id, error=None, now=NOW + timedelta(minutes=1))
        # the sender died holding the other: after its lease it is due again, same id
        back = store.due_deliveries(NOW + timedelta(minutes=6), lease=lease)
        assert [d.id for d in back] == [claimed[1].id]
        store.attempted(back[0].id, error="HTTP 503", dead=True)
        final = {d.id: d for d in store.deliveries()}
        assert final[claimed[0].id].status == "sent" and final[claimed[0].id].attempts == 1
        assert final[claimed[1].id].status == "dead"
        assert final[claimed[1].id].last_error == "HTTP 503"


def test_an_unreachable_postgres_store_is_a_clear_error() -> None:
    with pytest.raises(AlertsError) as caught:
        TaskStore(url_of("postgresql://ana:hunter2@127.0.0.1:9/tasks", home=None))  # type: ignore[arg-type]
    assert "cannot open the task store" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_firing_keys_are_unique_in_the_database(store_url: str) -> None:
    with TaskStore(store_url) as store:
        store.record([firing(held_out=True)], COOLDOWN, NOW)
        row = {**store.firings()[0], "id": new_id()}
        with pytest.raises(IntegrityError), store.engine.begin() as conn:
            conn.execute(insert(firings).values(row))
