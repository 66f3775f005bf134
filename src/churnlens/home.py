"""The project folder (``HOME``) where every step reads and writes.

Keeping all paths in one place means a user can point ``--home`` anywhere and every command
agrees on where raw history, features, the MLflow store, bundles and reports live.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Home:
    """Paths under one churnlens project folder."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def scores(self) -> Path:
        return self.root / "scores"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def logs(self) -> Path:
        """Full tracebacks of failed commands, one file each (the terminal shows one line)."""
        return self.root / "logs"

    @property
    def scratch(self) -> Path:
        """Spill space for DuckDB when a query outgrows memory."""
        return self.root / ".scratch"

    @property
    def config_file(self) -> Path:
        return self.root / "churnlens.yaml"

    def ensure(self) -> Home:
        for folder in (self.raw, self.features, self.models, self.scores, self.quarantine,
                       self.reports):
            folder.mkdir(parents=True, exist_ok=True)
        return self
