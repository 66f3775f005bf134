"""The validation review: one definition of "miscalibrated" for the whole and each segment,
so the report, `churnlens train` and the model page say the same."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnlens.training.evaluation import OVERALL, review_rows, segment_review

ACCOUNTS, MONTHS = 1800, 3


def _validation(scale: float, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Three monthly snapshots of 1,800 accounts in four regions and four plans, labels drawn
    from the true churn probability (6.5% on average), predictions ``scale`` x the truth."""
    rng = np.random.default_rng(seed)
    account = np.tile(np.arange(ACCOUNTS), MONTHS)
    region = np.array(["APAC", "EMEA", "LATAM", "NA"])[account % 4]
    plan = np.array(["free", "starter", "growth", "scale"])[(account // 4) % 4]
    truth = rng.beta(1.3, 18.7, ACCOUNTS)[account]
    y = (rng.random(len(account)) < truth).astype(np.int8)
    frame = pd.DataFrame({"account_id": account, "region": region, "plan": plan,
                          "mrr": 100.0})
    return frame, y, np.clip(truth * scale, 0.0, 1.0)


def test_a_model_that_over_predicts_everywhere_is_said_to() -> None:
    """The demo's model predicted 7.97% churn against 6.52% observed, over-predicting in 15
    of 16 segments, and its review said nothing: a segment was only flagged when it was
    calibrated worse than the whole, and the whole was never judged."""
    frame, y, p = _validation(1.3, seed=1)
    review = segment_review(frame, {"churn": (y, p)}, 1e9, 1e8)
    overall = review["churn"]["overall"]
    assert overall["mean_prediction"] > 1.2 * overall["rate"]
    whole = [f for f in review["flags"] if f.startswith(f"Churn model, {OVERALL}:")]
    assert len(whole) == 1 and "over-predicting" in whole[0], review["flags"]

    rows = review_rows(review)
    assert rows[0]["segment"] == OVERALL
    assert rows[0]["mean_prediction"] == overall["mean_prediction"]  # not a dash on the page
    assert rows[0]["rate"] == overall["rate"] and rows[0]["flagged"]
    for row in rows:  # the table and the sentences beside it say the same
        named = any(f.startswith(f"Churn model, {row['segment']}:") for f in review["flags"])
        assert row["flagged"] is named, row


def test_a_calibrated_model_raises_no_flag_in_any_of_many_segments() -> None:
    """Eight segments and the whole, judged at 5% each, would flag a calibrated model about
    a third of the time: the segments share the 5% (Bonferroni)."""
    flagged = 0
    for seed in range(10):
        frame, y, p = _validation(1.0, seed=seed)
        review = segment_review(frame, {"churn": (y, p)}, 1e9, 1e8)
        flagged += bool(review["flags"])
    assert flagged <= 2
