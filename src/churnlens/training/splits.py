"""Out-of-time slices: what each part of training may look at.

Accounts repeat across snapshots, so a random split would let a model see an account's next
month while being graded on it. Time slices, newest last:

    fit ... | tuning | calibration | validation

``validation`` holds the latest snapshot dates whose horizon has fully elapsed; the model and
its calibrator never see them. ``calibration`` fits the calibrator, on dates the model was not
trained on. ``tuning`` chooses hyper-parameters and the number of trees by early stopping; the
final model is then refitted on fit + tuning with those choices. Label windows of the slices
before validation may reach into the validation dates (a churn in month 32 is a positive for
snapshots of months 30 and 31); the report says so, and says how many accounts appear in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class TimeSplit:
    fit: tuple[date, ...]
    tuning: tuple[date, ...]
    calibration: tuple[date, ...]
    validation: tuple[date, ...]

    def as_dict(self) -> dict[str, list[str]]:
        return {name: [d.isoformat() for d in getattr(self, name)]
                for name in ("fit", "tuning", "calibration", "validation")}


class NotEnoughHistory(ValueError):
    """Too few labelled snapshot dates for the slices asked for."""


def split_dates(labelled: list[date], validation: int, calibration: int, tuning: int,
                min_fit: int = 3) -> TimeSplit:
    """Cut the labelled snapshot dates into the four slices, newest last."""
    dates = sorted(set(labelled))
    needed = validation + calibration + tuning + min_fit
    if len(dates) < needed:
        raise NotEnoughHistory(
            f"{len(dates)} labelled snapshot dates; training needs at least {needed} "
            f"({validation} validation + {calibration} calibration + {tuning} tuning + "
            f"{min_fit} to fit on). Build features on a longer history, or lower "
            "--validation-months / calibration_months / tuning_months.")
    v0 = len(dates) - validation
    c0 = v0 - calibration
    t0 = c0 - tuning
    return TimeSplit(fit=tuple(dates[:t0]), tuning=tuple(dates[t0:c0]),
                     calibration=tuple(dates[c0:v0]), validation=tuple(dates[v0:]))
