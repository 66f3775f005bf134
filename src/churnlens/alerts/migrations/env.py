"""Alembic's entry point for the task store: runs on the connection the store opened (in the
transaction it holds), never on a URL from an ini file."""

from __future__ import annotations

from alembic import context

from churnlens.alerts.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
