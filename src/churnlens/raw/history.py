"""Loading a company's history the one way every step does: open, map, validate, report.

``churnlens validate`` calls this, and so does every later step that reads raw history, so
``churnlens features`` can be run straight after pointing churnlens at the data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from churnlens.engines import open_engine
from churnlens.raw.loader import open_source
from churnlens.raw.mapping import load_mapping
from churnlens.raw.validation import History, ValidationFailed, validate_history
from churnlens.settings import Settings

REPORT_NAME = "validation.json"


def reference_now(settings: Settings) -> datetime:
    """The moment after which timestamps count as 'in the future' (naive UTC)."""
    now = settings.now or datetime.now(UTC)
    return now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now


def load_history(settings: Settings, required: tuple[str, ...] | None = None) -> History:
    """Open and validate the raw history that ``settings`` point at.

    Lenient mode quarantines bad rows under ``HOME/quarantine``; strict mode raises
    :class:`ValidationFailed`. Either way the report lands in ``HOME/reports/validation.json``.
    """
    home = settings.layout
    data = settings.data or str(home.raw)
    _, backend = open_engine(settings)
    source = open_source(data, load_mapping(settings.mapping), backend=backend,
                         required=required)
    try:
        history = validate_history(source, now=reference_now(settings), strict=settings.strict,
                                   quarantine_dir=home.quarantine, required=required)
    except ValidationFailed as refused:
        refused.report.write(report_path(settings))
        raise
    history.report.write(report_path(settings))
    return history


def report_path(settings: Settings) -> Path:
    return settings.layout.reports / REPORT_NAME
