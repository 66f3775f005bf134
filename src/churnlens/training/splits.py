"""Out-of-time slices: what each part of training may look at.

Accounts repeat across snapshots, so a random split would let a model see an account's next
month while being graded on it. Time slices, newest last:

    fit ... | tuning | calibration | validation

``validation`` holds the latest snapshot dates whose horizon has fully elapsed; the model and
its calibrator never see them. ``calibration`` fits the calibrator, on dates the model was not
trained on, as recent as validation allows (a calibrator fitted on old dates carries an old
churn rate forward). ``tuning`` chooses hyper-parameters and the number of trees by early
stopping; the final model is then refitted on fit + tuning with those choices. Label windows
of the slices before validation may reach into the validation dates (a churn in month 32 is a
positive for snapshots of months 30 and 31); the report says so, and says how many accounts
appear in both.

How many dates each slice gets (:func:`choose_split`), from the labelled dates there are:

- every held-out slice (validation, calibration, tuning) starts at one date and fit at three:
  the fewest that still fit a model, tune it, calibrate it and grade it out of time, so
  ``MIN_LABELLED_DATES`` (6) dates are the least a run accepts;
- each further date goes, in turn, to validation, calibration and tuning, until each holds
  ``HELD_OUT_DATES`` (3, a quarter of monthly snapshots): with 12 dates or more the slices are
  3 + 3 + 3 and every other date is fitted on;
- a size given by the user (command line, settings or environment) is taken as it is and the
  others are chosen from what is left; a given fit size uses the dates just before tuning and
  leaves older ones out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

SLICES = ("fit", "tuning", "calibration", "validation")
"""Oldest first."""
HELD_OUT = ("validation", "calibration", "tuning")
"""The slices the model is not fitted on, in the order they receive spare dates."""
HELD_OUT_DATES = 3
"""Dates each held-out slice grows to before the fit slice gets more: a quarter of monthly
snapshots, so a seasonal month does not decide the grade, the calibration or the tree count."""
MIN_FIT_DATES = 3
"""The automatic fit slice never holds fewer dates: with fewer, one month's churn decides the
model."""
MIN_LABELLED_DATES = MIN_FIT_DATES + len(HELD_OUT)
"""The least history training accepts: 3 dates to fit on and 1 each to tune, calibrate and
validate. On the monthly grid with the 90-day horizon, 9 months of history."""


@dataclass(frozen=True)
class TimeSplit:
    fit: tuple[date, ...]
    tuning: tuple[date, ...]
    calibration: tuple[date, ...]
    validation: tuple[date, ...]
    unused: tuple[date, ...] = ()
    """Labelled dates older than the fit slice, left out because a fit size was given."""
    chosen: tuple[str, ...] = ()
    """The slices whose size was chosen from the history (the others were given)."""

    def as_dict(self) -> dict[str, list[str]]:
        return {name: [d.isoformat() for d in getattr(self, name)]
                for name in (*SLICES, "unused") if name in SLICES or getattr(self, name)}

    def sizes(self) -> dict[str, int]:
        """Dates in each slice, oldest slice first."""
        return {name: len(getattr(self, name)) for name in SLICES}

    def describe(self) -> str:
        """One line for the person training: the sizes and whether they were chosen or given."""
        parts = [f"{name} {len(getattr(self, name))} "
                 f"({'chosen' if name in self.chosen else 'given'})" for name in SLICES]
        text = (f"{sum(self.sizes().values())} labelled snapshot dates, "
                f"{self.fit[0]} to {self.validation[-1]}: " + " | ".join(parts))
        if self.unused:
            text += f"; {len(self.unused)} older dates unused"
        return text


class NotEnoughHistory(ValueError):
    """Too few labelled snapshot dates for the slices asked for."""


def choose_split(labelled: list[date], *, fit: int | None = None, tuning: int | None = None,
                 calibration: int | None = None, validation: int | None = None) -> TimeSplit:
    """Cut the labelled snapshot dates into the four slices, newest last (module docstring:
    the rule). A size given as a number is kept; None lets the history decide it."""
    dates = sorted(set(labelled))
    given = {"fit": fit, "tuning": tuning, "calibration": calibration,
             "validation": validation}
    for name, size in given.items():
        if size is not None and size < 1:
            raise ValueError(f"the {name} slice needs at least one snapshot date, not {size}")
    sizes = {name: size if size is not None else 1 for name, size in given.items()
             if name != "fit"}
    floor = fit if fit is not None else MIN_FIT_DATES
    needed = max(MIN_LABELLED_DATES, floor + sum(sizes.values()))
    if len(dates) < needed:
        span = f", {dates[0]} to {dates[-1]}" if dates else ""
        asked = " + ".join(f"{sizes[n]} {n}" for n in HELD_OUT) + f" + {floor} fit"
        raise NotEnoughHistory(
            f"{len(dates)} labelled snapshot dates{span}; training needs at least {needed} "
            f"({asked}; {MIN_LABELLED_DATES} at the least), {needed - len(dates)} more. A "
            "snapshot date is labelled once its whole horizon lies inside the history.")
    spare = len(dates) - floor - sum(sizes.values())
    growing = [n for n in HELD_OUT if given[n] is None]
    while spare > 0 and any(sizes[n] < HELD_OUT_DATES for n in growing):
        for name in growing:
            if spare and sizes[name] < HELD_OUT_DATES:
                sizes[name] += 1
                spare -= 1
    v0 = len(dates) - sizes["validation"]
    c0 = v0 - sizes["calibration"]
    t0 = c0 - sizes["tuning"]
    f0 = 0 if fit is None else t0 - fit
    return TimeSplit(fit=tuple(dates[f0:t0]), tuning=tuple(dates[t0:c0]),
                     calibration=tuple(dates[c0:v0]), validation=tuple(dates[v0:]),
                     unused=tuple(dates[:f0]),
                     chosen=tuple(n for n in SLICES if given[n] is None))

