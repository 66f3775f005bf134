"""Alembic migrations of the task store, applied whenever a store is opened."""
