"""The slice chooser: which labelled snapshot dates fit, tune, calibrate and validate."""

from __future__ import annotations

from datetime import date

import pytest

from churnlens.training.splits import MIN_LABELLED_DATES, NotEnoughHistory, choose_split


def months(count: int) -> list[date]:
    return [date(2023 + (m - 1) // 12, (m - 1) % 12 + 1, 1) for m in range(1, count + 1)]


def test_slices_are_in_time_order_and_disjoint() -> None:
    dates = months(12)
    split = choose_split(list(reversed(dates)), validation=3, calibration=2, tuning=2)
    assert split.validation == tuple(dates[-3:])
    assert split.calibration == tuple(dates[7:9])
    assert split.tuning == tuple(dates[5:7])
    assert split.fit == tuple(dates[:5])
    assert split.chosen == ("fit",)


@pytest.mark.parametrize(("labelled", "sizes"), [
    (6, (3, 1, 1, 1)), (7, (3, 1, 1, 2)), (8, (3, 1, 2, 2)), (9, (3, 2, 2, 2)),
    (10, (3, 2, 2, 3)), (11, (3, 2, 3, 3)), (12, (3, 3, 3, 3)), (30, (21, 3, 3, 3))])
def test_the_history_decides_the_slices(labelled: int, sizes: tuple[int, ...]) -> None:
    """From 6 dates up every date is used; held-out slices grow to 3, validation first, and
    with 12 or more every further date is fitted on."""
    dates = months(labelled)
    split = choose_split(dates)
    assert tuple(split.sizes().values()) == sizes
    assert split.fit + split.tuning + split.calibration + split.validation == tuple(dates)
    assert split.validation[-1] == dates[-1]
    assert "chosen" in split.describe() and "given" not in split.describe()


def test_a_given_size_is_kept_and_the_others_fill_the_rest() -> None:
    split = choose_split(months(9), validation=4)
    assert split.sizes() == {"fit": 3, "tuning": 1, "calibration": 1, "validation": 4}
    assert split.chosen == ("fit", "tuning", "calibration")
    assert "validation 4 (given)" in split.describe()


def test_a_given_fit_size_leaves_the_oldest_dates_out() -> None:
    dates = months(20)
    split = choose_split(dates, fit=6)
    assert split.sizes() == {"fit": 6, "tuning": 3, "calibration": 3, "validation": 3}
    assert split.unused == tuple(dates[:5]) and split.fit == tuple(dates[5:11])
    assert split.as_dict()["unused"][0] == "2023-01-01"
    assert "5 older dates unused" in split.describe()


def test_below_the_minimum_it_says_how_many_dates_are_missing() -> None:
    assert MIN_LABELLED_DATES == 6
    with pytest.raises(NotEnoughHistory, match=r"5 labelled snapshot dates, 2023-01-01 to "
                       r"2023-05-01; training needs at least 6 .*1 more"):
        choose_split(months(5))
    with pytest.raises(NotEnoughHistory, match=r"needs at least 12 \(3 validation \+ 3 "
                       r"calibration \+ 3 tuning \+ 3 fit.*, 4 more"):
        choose_split(months(8), validation=3, calibration=3, tuning=3)


def test_a_slice_of_no_dates_is_refused() -> None:
    with pytest.raises(ValueError, match="the tuning slice needs at least one"):
        choose_split(months(12), tuning=0)
