"""The task store: tasks a CSM owns, what happened to them, the firings that made them and the
webhooks that announce them, in SQLite (HOME/tasks.db) or PostgreSQL.

Correctness is the database's job, not a read-then-write's: a partial unique index keeps at
most one open task per (account, rule), a unique key makes a firing happen once per (account,
rule, score table), and both are written with ``INSERT ... ON CONFLICT DO NOTHING``, so two
evaluation runs at once, in two processes or on two machines, create each task once. A task,
its firing and its deliveries are written in one transaction (the outbox): no task without
its webhook, no webhook without its task.

Opening a store applies its Alembic migrations, so an older store upgrades in place.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from churnlens.alerts import AlertsError
from churnlens.alerts.schema import (
    OPEN_STATUSES,
    OPEN_WHERE,
    STATUSES,
    deliveries,
    firings,
    task_events,
    task_notes,
    tasks,
)

SYSTEM_ACTOR = "churnlens alerts"
"""Who the rule engine is in a task's history."""

TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "done", "dismissed"}),
    "in_progress": frozenset({"open", "done", "dismissed"}),
    "done": frozenset(),
    "dismissed": frozenset(),
}
"""Where a task may go from each status. A closed task stays closed: the next firing after the
cooldown opens a new one, so each task keeps the story of one follow-up."""

_MIGRATION_LOCK = 20_2012
"""PostgreSQL advisory lock held while migrating, so two processes opening a new store at once
do not both create its tables."""


class TaskNotFound(AlertsError, LookupError):
    """No task with that id (the API answers 404)."""


class TaskConflict(AlertsError):
    """A change the task's state does not allow, such as reopening a closed task (409)."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def store_url(settings_url: str | None, home: Path) -> str:
    """The SQLAlchemy URL of the store: the setting, else SQLite in HOME. ``postgresql://``
    (and ``postgres://``) use psycopg 3, the driver churnlens ships."""
    if not settings_url:
        return f"sqlite:///{home / 'tasks.db'}"
    for prefix in ("postgresql://", "postgres://"):
        if settings_url.startswith(prefix):
            return "postgresql+psycopg://" + settings_url.removeprefix(prefix)
    return settings_url


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable URL)"


@dataclass(frozen=True)
class NewDelivery:
    """A webhook to queue with its task: ``id`` is the Standard Webhooks ``webhook-id``, kept
    for every resend."""

    id: str
    endpoint: str
    event: str
    payload: str


@dataclass(frozen=True)
class NewFiring:
    """One rule holding for one account on one score table, with the task it would create."""

    account_id: str
    rule: str
    as_of: date
    held_out: bool
    playbook: str
    priority: str
    priority_rank: int
    owner: str
    due_date: date
    reason: str
    score: dict[str, Any]
    drivers: list[dict[str, Any]]
    model_version: str | None
    task_id: str = field(default_factory=new_id)
    deliveries: tuple[NewDelivery, ...] = ()


@dataclass(frozen=True)
class Recorded:
    """What one evaluation wrote."""

    tasks: list[str] = field(default_factory=list)
    held_out: int = 0
    deliveries: int = 0
    already_fired: int = 0
    """Firings this score table had already made (a rerun)."""
    open_task: int = 0
    """Firings skipped because the account has an open task for that rule."""
    cooling_down: int = 0
    """Firings skipped within a rule's cooldown."""


@dataclass(frozen=True)
class TaskEvent:
    at: datetime
    actor: str
    change: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Note:
    at: datetime
    author: str
    text: str


@dataclass(frozen=True)
class Task:
    id: str
    account_id: str
    rule: str
    playbook: str
    priority: str
    owner: str
    status: str
    due_date: date
    reason: str
    as_of: date | None
    model_version: str | None
    score: dict[str, Any] | None
    drivers: list[dict[str, Any]] | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    closed_at: datetime | None
    dismissal_reason: str | None
    events: tuple[TaskEvent, ...] = ()
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True)
class Delivery:
    id: str
    task_id: str
    endpoint: str
    event: str
    payload: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


class TaskStore:
    """One task database, migrated to the latest version on open."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = _engine(url)
            self._migrate()
        except (DBAPIError, ArgumentError, NoSuchModuleError) as error:
            raise AlertsError(f"cannot open the task store {shown_url(url)}: "
                              f"{_first_line(error)}") from None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> TaskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction that will write: on SQLite it takes the write lock at once (BEGIN
        IMMEDIATE), so two writers queue instead of one failing when it upgrades its lock."""
        with self.engine.connect().execution_options(churnlens_write=True) as conn, \
                conn.begin():
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        with self._writing() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            config = Config()
            config.set_main_option("script_location", "churnlens.alerts:migrations")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        """The migration the store is at."""
        from alembic.runtime.migration import MigrationContext

        with self._reading() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # ------------------------------------------------------------------ firings

    def record(self, fired: Sequence[NewFiring], cooldowns: dict[str, int],
               now: datetime | None = None) -> Recorded:
        """Write the firings of one evaluation, with their tasks and deliveries, in one
        transaction.

        Skipped: a firing this score table already made (unique firing key), one whose
        account has an open task for the rule (the partial unique index), and one within the
        rule's cooldown (``cooldowns``: days by rule) after a task closed or a control firing.
        The open-task rule is the database's: a task that another run creates meanwhile makes
        this run's insert do nothing, and its firing is taken back.
        """
        now = now or now_utc()
        counts = {"held_out": 0, "deliveries": 0, "already_fired": 0, "open_task": 0,
                  "cooling_down": 0}
        created: list[str] = []
        # one order for every run: two PostgreSQL transactions inserting the same keys wait
        # for each other instead of deadlocking
        ordered = sorted(fired, key=lambda f: (f.account_id, f.rule, f.as_of))
        with self._writing() as conn:
            blocked = self._blocked(conn, cooldowns, now)
            seen = {(account, rule, as_of) for account, rule, as_of in conn.execute(
                select(firings.c.account_id, firings.c.rule, firings.c.as_of)
                .where(firings.c.as_of.in_({f.as_of for f in fired})))}
            for firing in ordered:
                key = (firing.account_id, firing.rule)
                if (*key, firing.as_of) in seen:
                    counts["already_fired"] += 1
                    continue
                if blocked.get(key) == "open_task":
                    counts["open_task"] += 1
                    continue
                if blocked.get(key) == "cooling_down":
                    counts["cooling_down"] += 1
                    continue
                firing_id = self._insert_firing(conn, firing, now)
                if firing_id is None:
                    counts["already_fired"] += 1
                    continue
                if firing.held_out:
                    counts["held_out"] += 1
                    continue
                if not self._insert_task(conn, firing, now):
                    conn.execute(delete(firings).where(firings.c.id == firing_id))
                    counts["open_task"] += 1
                    continue
                conn.execute(update(firings).where(firings.c.id == firing_id)
                             .values(task_id=firing.task_id))
                conn.execute(task_events.insert().values(
                    task_id=firing.task_id, at=now, actor=SYSTEM_ACTOR, change="created",
                    before=None, after=firing.rule))
                for delivery in firing.deliveries:
                    conn.execute(deliveries.insert().values(
                        id=delivery.id, task_id=firing.task_id, endpoint=delivery.endpoint,
                        event=delivery.event, payload=delivery.payload, status="pending",
                        attempts=0, created_at=now, next_attempt_at=now))
                    counts["deliveries"] += 1
                created.append(firing.task_id)
        return Recorded(tasks=created, **counts)

    def _blocked(self, conn: Connection, cooldowns: dict[str, int], now: datetime
                 ) -> dict[tuple[str, str], str]:
        """(account, rule) pairs that may not fire now, and why."""
        blocked: dict[tuple[str, str], str] = {}
        for rule, days in cooldowns.items():
            since = now - timedelta(days=days)
            closed = select(tasks.c.account_id).where(
                tasks.c.rule == rule, tasks.c.closed_at >= since)
            controls = select(firings.c.account_id).where(
                firings.c.rule == rule, firings.c.held_out, firings.c.fired_at >= since)
            for (account,) in conn.execute(closed.union(controls)):
                blocked[(account, rule)] = "cooling_down"
        opened = select(tasks.c.account_id, tasks.c.rule).where(
            tasks.c.status.in_(OPEN_STATUSES), tasks.c.rule.in_(list(cooldowns)))
        for account, rule in conn.execute(opened):
            blocked[(account, rule)] = "open_task"
        return blocked

    def _insert_firing(self, conn: Connection, firing: NewFiring, now: datetime) -> str | None:
        firing_id = new_id()
        statement = _insert(conn, firings).values(
            id=firing_id, account_id=firing.account_id, rule=firing.rule, as_of=firing.as_of,
            fired_at=now, held_out=firing.held_out, task_id=None, reason=firing.reason,
            score=firing.score, model_version=firing.model_version,
        ).on_conflict_do_nothing(index_elements=["account_id", "rule", "as_of"])
        inserted = conn.execute(statement.returning(firings.c.id)).scalar_one_or_none()
        return firing_id if inserted is not None else None

    def _insert_task(self, conn: Connection, firing: NewFiring, now: datetime) -> bool:
        statement = _insert(conn, tasks).values(
            id=firing.task_id, account_id=firing.account_id, rule=firing.rule,
            playbook=firing.playbook, priority=firing.priority,
            priority_rank=firing.priority_rank, owner=firing.owner, status="open",
            due_date=firing.due_date, reason=firing.reason, as_of=firing.as_of,
            model_version=firing.model_version, score=firing.score, drivers=firing.drivers,
            created_at=now, created_by=SYSTEM_ACTOR, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["account_id", "rule"], index_where=OPEN_WHERE)
        return conn.execute(statement.returning(tasks.c.id)).scalar_one_or_none() is not None

    def firings(self, rule: str | None = None) -> list[dict[str, Any]]:
        """Every firing (treated and held out), oldest first: what the control-group report
        reads."""
        query = select(firings).order_by(firings.c.fired_at, firings.c.account_id)
        if rule is not None:
            query = query.where(firings.c.rule == rule)
        with self._reading() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # ------------------------------------------------------------------ tasks

    def task(self, task_id: str) -> Task:
        """One task with its history and notes."""
        with self._reading() as conn:
            return self._task(conn, task_id, full=True)

    def _task(self, conn: Connection, task_id: str, full: bool = False) -> Task:
        row = conn.execute(select(tasks).where(tasks.c.id == task_id)).mappings().first()
        if row is None:
            raise TaskNotFound(f"no task {task_id!r}")
        found = _task_of(row)
        if not full:
            return found
        events = conn.execute(select(task_events).where(task_events.c.task_id == task_id)
                              .order_by(task_events.c.id)).mappings()
        notes = conn.execute(select(task_notes).where(task_notes.c.task_id == task_id)
                             .order_by(task_notes.c.id)).mappings()
        return replace(found, events=tuple(
            TaskEvent(at=e["at"], actor=e["actor"], change=e["change"], before=e["before"],
                      after=e["after"]) for e in events),
            notes=tuple(Note(at=n["at"], author=n["author"], text=n["text"]) for n in notes))

    def tasks(self, *, status: Sequence[str] | None = None, owner: str | None = None,
              account_id: str | None = None, rule: str | None = None,
              due_before: date | None = None, limit: int = 100, after: str | None = None
              ) -> tuple[list[Task], str | None]:
        """Tasks by due date, then priority (urgent first), then id; at most ``limit``, from
        the cursor ``after``. Returns them and the cursor of the next page (None at the end).
        """
        if limit < 1:
            raise AlertsError("limit must be at least 1")
        unknown = sorted(set(status or ()) - set(STATUSES))
        if unknown:
            raise AlertsError(f"unknown task status {unknown}; known: {list(STATUSES)}")
        query = select(tasks)
        if status:
            query = query.where(tasks.c.status.in_(list(status)))
        for column, value in ((tasks.c.owner, owner), (tasks.c.account_id, account_id),
                              (tasks.c.rule, rule)):
            if value is not None:
                query = query.where(column == value)
        if due_before is not None:
            query = query.where(tasks.c.due_date < due_before)
        order = (tasks.c.due_date, tasks.c.priority_rank, tasks.c.id)
        if after is not None:
            query = query.where(tuple_(*order) > tuple_(*_read_cursor(after)))
        query = query.order_by(*order).limit(limit + 1)
        with self._reading() as conn:
            rows = [_task_of(row) for row in conn.execute(query).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (_cursor(rows[-1]) if more else None)

    def change(self, task_id: str, actor: str, *, status: str | None = None,
               owner: str | None = None, note: str | None = None,
               dismissal_reason: str | None = None, now: datetime | None = None) -> Task:
        """Change a task's status or owner, or add a note; every change is recorded with
        ``actor`` and the time. Dismissing needs a reason; a closed task stays closed."""
        now = now or now_utc()
        if not actor.strip():
            raise AlertsError("a task change needs who made it")
        if status is not None and status not in STATUSES:
            raise AlertsError(f"unknown task status {status!r}; known: {list(STATUSES)}")
        if status == "dismissed" and not (dismissal_reason or "").strip():
            raise AlertsError("dismissing a task needs a reason (dismissal_reason)")
        if status != "dismissed" and dismissal_reason is not None:
            raise AlertsError("a dismissal reason goes with status 'dismissed' only")
        if owner is not None and not owner.strip():
            raise AlertsError("owner must not be empty")
        if note is not None and not note.strip():
            raise AlertsError("a note must not be empty")
        with self._writing() as conn:
            current = self._task(conn, task_id)
            values: dict[str, Any] = {}
            changes: list[tuple[str, str | None, str | None]] = []
            if status is not None and status != current.status:
                if status not in TRANSITIONS[current.status]:
                    raise TaskConflict(f"task {task_id} is {current.status}; it cannot become "
                                       f"{status}")
                values["status"] = status
                changes.append(("status", current.status, status))
                if status in ("done", "dismissed"):
                    values["closed_at"] = now
                if status == "dismissed":
                    values["dismissal_reason"] = dismissal_reason
            if owner is not None and owner != current.owner:
                if current.closed_at is not None:
                    raise TaskConflict(f"task {task_id} is {current.status}; it cannot be "
                                       "reassigned")
                values["owner"] = owner
                changes.append(("owner", current.owner, owner))
            if note is not None:
                conn.execute(task_notes.insert().values(task_id=task_id, at=now, author=actor,
                                                        text=note))
                changes.append(("note", None, note))
            if values or note is not None:
                values["updated_at"] = now
                conn.execute(update(tasks).where(tasks.c.id == task_id).values(**values))
            for change, before, after in changes:
                conn.execute(task_events.insert().values(task_id=task_id, at=now, actor=actor,
                                                         change=change, before=before,
                                                         after=after))
            return self._task(conn, task_id, full=True)

    def open_counts(self) -> dict[str, int]:
        """Open tasks by rule."""
        query = (select(tasks.c.rule, func.count()).where(tasks.c.status.in_(OPEN_STATUSES))
                 .group_by(tasks.c.rule))
        with self._reading() as conn:
            return {rule: int(count) for rule, count in conn.execute(query)}

    # ------------------------------------------------------------------ the outbox

    def due_deliveries(self, now: datetime | None = None, limit: int = 100,
                       lease: timedelta = timedelta(minutes=5)) -> list[Delivery]:
        """Claim up to ``limit`` pending deliveries that are due, for ``lease``: another
        sender skips them meanwhile. A sender that dies leaves its claim to expire, and the
        delivery is sent again under the same id (at least once)."""
        now = now or now_utc()
        free = or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now)
        due = and_(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now, free)
        with self._writing() as conn:
            query = (select(deliveries.c.id).where(due)
                     .order_by(deliveries.c.next_attempt_at, deliveries.c.id).limit(limit))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(update(deliveries).where(deliveries.c.id.in_(ids), due)
                         .values(claimed_until=now + lease))
            rows = conn.execute(select(deliveries).where(deliveries.c.id.in_(ids))
                                .order_by(deliveries.c.next_attempt_at, deliveries.c.id))
            return [_delivery_of(row) for row in rows.mappings()]

    def attempted(self, delivery_id: str, *, error: str | None, dead: bool = False,
                  retry_at: datetime | None = None, now: datetime | None = None) -> None:
        """Record one send: sent (``error`` None, the receiver answered 2xx), failed and to be
        retried at ``retry_at``, or ``dead`` after the last attempt, with the error."""
        now = now or now_utc()
        values: dict[str, Any] = {"attempts": deliveries.c.attempts + 1, "last_error": error}
        if error is None:
            values.update(status="sent", sent_at=now, claimed_until=None)
        elif dead:
            values.update(status="dead", claimed_until=None)
        else:  # free for whichever sender is up when the retry is due
            values.update(next_attempt_at=retry_at or now, claimed_until=None)
        with self._writing() as conn:
            conn.execute(update(deliveries).where(deliveries.c.id == delivery_id,
                                                  deliveries.c.status == "pending")
                         .values(**values))

    def next_retry(self) -> datetime | None:
        """When the earliest pending delivery is due (a claimed one: when its claim ends)."""
        pending = deliveries.c.status == "pending"
        claimed_later = deliveries.c.claimed_until > deliveries.c.next_attempt_at
        with self._reading() as conn:
            free = conn.execute(select(func.min(deliveries.c.next_attempt_at)).where(
                pending, or_(deliveries.c.claimed_until.is_(None), ~claimed_later))).scalar()
            held = conn.execute(select(func.min(deliveries.c.claimed_until)).where(
                pending, claimed_later)).scalar()
        times = [t for t in (free, held) if t is not None]
        return min(times) if times else None

    def deliveries(self, status: str | None = None) -> list[Delivery]:
        """Every delivery (or those of one status), oldest first."""
        query = select(deliveries).order_by(deliveries.c.created_at, deliveries.c.id)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        with self._reading() as conn:
            return [_delivery_of(row) for row in conn.execute(query).mappings()]


def open_store(url: str) -> TaskStore:
    return TaskStore(url)


def _engine(url: str) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        # the driver's own transaction handling off: BEGIN is ours (below), so SQLite's
        # transactional DDL and BEGIN IMMEDIATE work as written
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("churnlens_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _insert(conn: Connection, table: Any) -> Any:
    """The dialect's INSERT, which has ON CONFLICT DO NOTHING on both stores."""
    return (postgresql.insert(table) if conn.dialect.name == "postgresql"
            else sqlite.insert(table))


def _first_line(error: BaseException) -> str:
    origin = getattr(error, "orig", None) or error
    text = str(origin).strip().splitlines()
    return text[0] if text else type(origin).__name__


def _task_of(row: Any) -> Task:
    return Task(id=row["id"], account_id=row["account_id"], rule=row["rule"],
                playbook=row["playbook"], priority=row["priority"], owner=row["owner"],
                status=row["status"], due_date=row["due_date"], reason=row["reason"],
                as_of=row["as_of"], model_version=row["model_version"], score=row["score"],
                drivers=row["drivers"], created_at=row["created_at"],
                created_by=row["created_by"], updated_at=row["updated_at"],
                closed_at=row["closed_at"], dismissal_reason=row["dismissal_reason"])


def _delivery_of(row: Any) -> Delivery:
    return Delivery(id=row["id"], task_id=row["task_id"], endpoint=row["endpoint"],
                    event=row["event"], payload=row["payload"], status=row["status"],
                    attempts=row["attempts"], last_error=row["last_error"],
                    created_at=row["created_at"], next_attempt_at=row["next_attempt_at"],
                    sent_at=row["sent_at"])


def _cursor(task: Task) -> str:
    raw = json.dumps([task.due_date.isoformat(), task.priority, task.id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[date, int, str]:
    from churnlens.alerts.rules import PRIORITIES

    try:
        due, priority, task_id = json.loads(base64.urlsafe_b64decode(
            cursor + "=" * (-len(cursor) % 4)))
        return date.fromisoformat(due), PRIORITIES.index(priority), str(task_id)
    except (ValueError, TypeError):
        raise AlertsError("cursor is not one this store gave out") from None
