"""The task store's tables, as SQLAlchemy Core metadata: what the queries read and write.

The migrations under ``migrations/versions`` create and change these tables; they are written
out by hand, never generated at run time, so an existing store upgrades step by step. A test
compares the migrated database with this metadata, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

STATUSES = ("open", "in_progress", "done", "dismissed")
OPEN_STATUSES = ("open", "in_progress")
"""A task in one of these counts as open: at most one per (account, rule)."""
DELIVERY_STATUSES = ("pending", "sent", "dead")

OPEN_WHERE = text("status IN ('open', 'in_progress')")
"""The partial index's predicate, the same text on SQLite and PostgreSQL (both index only the
rows it holds for, and both take it as the target of ON CONFLICT)."""


class UTCDateTime(TypeDecorator[datetime]):
    """A moment in UTC: stored without a zone (SQLite keeps none), read back zone-aware, so
    a timestamp means the same whichever database holds it."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the task store keeps zone-aware UTC times only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

tasks = Table(
    "tasks", metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(200), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("playbook", String(200), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("priority_rank", Integer, nullable=False),
    Column("owner", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("due_date", Date, nullable=False),
    Column("reason", Text, nullable=False),
    Column("as_of", Date, nullable=True),
    Column("model_version", String(64), nullable=True),
    Column("score", JSON, nullable=True),
    Column("drivers", JSON, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("dismissal_reason", Text, nullable=True),
    CheckConstraint("status IN ('open', 'in_progress', 'done', 'dismissed')", name="status"),
    CheckConstraint("status <> 'dismissed' OR dismissal_reason IS NOT NULL",
                    name="dismissal_reason"),
    Index("ix_tasks_one_open", "account_id", "rule", unique=True,
          sqlite_where=OPEN_WHERE, postgresql_where=OPEN_WHERE),
    Index("ix_tasks_queue", "status", "due_date", "priority_rank"),
    Index("ix_tasks_owner", "owner", "status"),
    Index("ix_tasks_closed", "rule", "account_id", "closed_at"),
)

task_events = Table(
    "task_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(32), ForeignKey("tasks.id"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("change", String(32), nullable=False),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
)

task_notes = Table(
    "task_notes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(32), ForeignKey("tasks.id"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("author", String(200), nullable=False),
    Column("text", Text, nullable=False),
)

firings = Table(
    "firings", metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(200), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("fired_at", UTCDateTime, nullable=False),
    Column("held_out", Boolean, nullable=False),
    Column("task_id", String(32), ForeignKey("tasks.id"), nullable=True),
    Column("reason", Text, nullable=False),
    Column("score", JSON, nullable=True),
    Column("model_version", String(64), nullable=True),
    UniqueConstraint("account_id", "rule", "as_of"),
    Index("ix_firings_rule_account_fired_at", "rule", "account_id", "fired_at"),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", String(40), primary_key=True),
    Column("task_id", String(32), ForeignKey("tasks.id"), nullable=False, index=True),
    Column("endpoint", String(64), nullable=False),
    Column("event", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    CheckConstraint("status IN ('pending', 'sent', 'dead')", name="status"),
    Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
)
