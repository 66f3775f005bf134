"""Loading a company's history the one way every step does: open, map, validate, report.

``churnlens validate`` calls this, and so does every later step that reads raw history, so
``churnlens features`` can be run straight after pointing churnlens at the data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from churnlens.engines import open_engine
from churnlens.raw.contract import CHURN_DEFINITION_TABLES, CORE_TABLES
from churnlens.raw.loader import RawSource, SourceError, is_url, open_source
from churnlens.raw.mapping import load_mapping
from churnlens.raw.validation import History, ValidationFailed, validate_history
from churnlens.settings import Settings

REPORT_NAME = "validation.json"


def reference_now(settings: Settings) -> datetime:
    """The moment after which timestamps count as 'in the future' (naive UTC)."""
    now = settings.now or datetime.now(UTC)
    return now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now


def load_history(settings: Settings, labels_churn: bool = False) -> History:
    """Open and validate the raw history that ``settings`` point at.

    Accounts and usage events are always required; the other tables add what they hold. With
    ``labels_churn`` (validate, features) the tables the configured churn definition reads are
    required too, and their absence is refused before any row is read, naming the option that
    changes it. Lenient mode quarantines bad rows under ``HOME/quarantine``; strict mode raises
    :class:`ValidationFailed`. Either way the report lands in ``HOME/reports/validation.json``.
    """
    home = settings.layout
    data = settings.data or str(home.raw)
    _, backend = open_engine(settings)
    source = open_source(data, load_mapping(settings.mapping), backend=backend,
                         required=CORE_TABLES)
    if labels_churn:
        refuse_without_churn_tables(source, settings.churn_definition, data)
    try:
        history = validate_history(source, now=reference_now(settings), strict=settings.strict,
                                   quarantine_dir=home.quarantine, required=CORE_TABLES)
    except ValidationFailed as refused:
        refused.report.write(report_path(settings))
        raise
    history.report.write(report_path(settings))
    return history


def refuse_without_churn_tables(source: RawSource, churn_definition: str, data: str) -> None:
    """Raise :class:`SourceError` when the churn definition reads a table the history lacks:
    subscription churn without subscriptions could only label every account as staying."""
    missing = [name for name in CHURN_DEFINITION_TABLES[churn_definition]
               if name not in source.tables]
    if missing:
        where = data if is_url(data) else Path(data).resolve()
        others = [d for d, needs in CHURN_DEFINITION_TABLES.items()
                  if not set(needs) & set(missing)]
        raise SourceError(
            f"{churn_definition} churn (setting churn_definition) needs the "
            f"{', '.join(missing)} table, not found in {where}; a history without it runs with "
            + " or ".join(f"--churn-definition {d}" for d in others)
            + (" (churn = no usage for --inactivity-days)" if "inactivity" in others else ""))


def report_path(settings: Settings) -> Path:
    return settings.layout.reports / REPORT_NAME
