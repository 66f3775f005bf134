"""Whether the served scores are stale, and why, in words a CSM and an operator can act on.

Scores are stale when

- the raw history runs past the next snapshot date after theirs: a newer snapshot could be
  built and scored (``churnlens features`` records the history's end in the feature store's
  manifest); or
- their score table was written longer ago than ``max_score_age_days`` (0: never by age).

The first rule compares with the raw history's last day, not with today: a company's
history of 2024 scored today is fresh, since no newer snapshot can be made from it. Both
inputs are read once per load (the manifest, the table file's modification time), so judging
freshness on a request costs a subtraction, never a scan of the raw events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from churnlens.features.store import read_manifest

REMEDY = "churnlens features && churnlens score"
"""What brings the scores up to date: build the newest snapshot, then score it."""


def next_snapshot(as_of: date, grid: str) -> date:
    """The grid's next snapshot date after ``as_of``: the next month's 1st, or a week on."""
    if grid == "weekly":
        return as_of + timedelta(days=7)
    return date(as_of.year + as_of.month // 12, as_of.month % 12 + 1, 1)


def age_in_words(days: float) -> str:
    """``3 days``, ``1 day``, ``5 hours``, ``a few minutes``: how old, as a person says it."""
    if days >= 1:
        whole = int(days)
        return f"{whole} day{'s' if whole != 1 else ''}"
    hours = int(days * 24)
    if hours >= 1:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return "a few minutes"


@dataclass(frozen=True)
class Freshness:
    """How current the served scores are; ``reasons`` is empty when they are fresh."""

    as_of: date
    scored_at: datetime | None
    """When the score table was written (UTC); None while the server is still building it
    from the current snapshot (then the scores are as new as they can be)."""
    history_last_day: date | None
    """The last day of raw history the feature store was built from; None when unknown (a
    store written before its manifest recorded it)."""
    age_days: float
    reasons: tuple[str, ...]

    @property
    def stale(self) -> bool:
        return bool(self.reasons)

    @property
    def age_words(self) -> str:
        return age_in_words(self.age_days)

    @property
    def remedy(self) -> str:
        return REMEDY

    def answer(self) -> dict[str, Any]:
        """The ``scores`` block of the API's answers (``schemas.ScoreFreshness``)."""
        return {"stale": self.stale, "reasons": list(self.reasons),
                "as_of": self.as_of.isoformat(),
                "scored_at": None if self.scored_at is None
                else self.scored_at.isoformat(timespec="seconds"),
                "age_days": round(self.age_days, 2),
                "history_last_day": None if self.history_last_day is None
                else self.history_last_day.isoformat(),
                "remedy": REMEDY if self.stale else None}


def judge(as_of: date, scored_at: datetime | None, history_end: date | None, grid: str,
          max_age_days: float, now: datetime | None = None) -> Freshness:
    """The freshness of scores of ``as_of`` written at ``scored_at``.

    ``history_end`` is the first day after the raw history (the manifest's ``history_end``):
    a snapshot of date d needs the history up to the day before d, so the next snapshot
    could be built once it is on or before ``history_end``."""
    now = now or datetime.now(UTC)
    age = 0.0 if scored_at is None else max((now - scored_at).total_seconds() / 86400, 0.0)
    reasons = []
    following = next_snapshot(as_of, grid)
    last_day = None if history_end is None else history_end - timedelta(days=1)
    if history_end is not None and following <= history_end:
        reasons.append(f"the raw history runs to {last_day}, so a snapshot of {following} "
                       f"could be scored, but these scores are of {as_of}")
    if max_age_days > 0 and age > max_age_days:
        reasons.append(f"the score table was written {age_in_words(age)} ago, more than the "
                       f"{max_age_days:g} day{'s' if max_age_days != 1 else ''} the setting "
                       "max_score_age_days allows")
    return Freshness(as_of=as_of, scored_at=scored_at, history_last_day=last_day,
                     age_days=age, reasons=tuple(reasons))


def written_at(path: Path) -> datetime | None:
    """When a score table file was last written (its modification time, UTC)."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return None


def history_of(features_root: Path) -> tuple[date | None, str | None]:
    """The first day after the raw history and the snapshot grid, as the feature store's
    manifest recorded them when ``churnlens features`` last ran; (None, None) when the
    manifest does not say."""
    manifest = read_manifest(features_root) or {}
    end = manifest.get("history_end")
    grid = (manifest.get("settings") or {}).get("grid")
    try:
        history_end = date.fromisoformat(end) if isinstance(end, str) else None
    except ValueError:
        history_end = None
    return history_end, grid if isinstance(grid, str) else None
