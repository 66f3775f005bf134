"""The first task store: tasks, their events and notes, rule firings and the webhook outbox.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from churnlens.alerts.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

OPEN_WHERE = sa.text("status IN ('open', 'in_progress')")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("playbook", sa.String(200), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("priority_rank", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("score", sa.JSON(), nullable=True),
        sa.Column("drivers", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("dismissal_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'in_progress', 'done', 'dismissed')",
                           name="ck_tasks_status"),
        sa.CheckConstraint("status <> 'dismissed' OR dismissal_reason IS NOT NULL",
                           name="ck_tasks_dismissal_reason"),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
    )
    # at most one open task per (account, rule): the database refuses a second
    op.create_index("ix_tasks_one_open", "tasks", ["account_id", "rule"], unique=True,
                    sqlite_where=OPEN_WHERE, postgresql_where=OPEN_WHERE)
    op.create_index("ix_tasks_queue", "tasks", ["status", "due_date", "priority_rank"])
    op.create_index("ix_tasks_owner", "tasks", ["owner", "status"])
    op.create_index("ix_tasks_closed", "tasks", ["rule", "account_id", "closed_at"])

    op.create_table(
        "task_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("change", sa.String(32), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_task_events_task_id_tasks"),
        sa.PrimaryKeyConstraint("id", name="pk_task_events"),
    )
    op.create_index("ix_task_events_task_id", "task_events", ["task_id"])

    op.create_table(
        "task_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_task_notes_task_id_tasks"),
        sa.PrimaryKeyConstraint("id", name="pk_task_notes"),
    )
    op.create_index("ix_task_notes_task_id", "task_notes", ["task_id"])

    op.create_table(
        "firings",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("fired_at", UTCDateTime(), nullable=False),
        sa.Column("held_out", sa.Boolean(), nullable=False),
        sa.Column("task_id", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("score", sa.JSON(), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_firings_task_id_tasks"),
        sa.PrimaryKeyConstraint("id", name="pk_firings"),
        # a firing is (account, rule, score table): evaluating one table twice fires once
        sa.UniqueConstraint("account_id", "rule", "as_of",
                            name="uq_firings_account_id_rule_as_of"),
    )
    op.create_index("ix_firings_rule_account_fired_at", "firings",
                    ["rule", "account_id", "fired_at"])

    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("task_id", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'dead')",
                           name="ck_deliveries_status"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_deliveries_task_id_tasks"),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_task_id", "deliveries", ["task_id"])
    op.create_index("ix_deliveries_status_next_attempt_at", "deliveries",
                    ["status", "next_attempt_at"])


def downgrade() -> None:
    for table in ("deliveries", "firings", "task_notes", "task_events", "tasks"):
        op.drop_table(table)
