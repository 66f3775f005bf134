"""Benchmark: churnlens on a real purchase history, against the peers an analyst tries first.

Runs the product through its command line on `../shared/devsets/online-retail-ii` exactly as a
user would (convert, `validate`, `features`, `train`, `score` on the history before a cut
date), takes each scored account's true label at the cut from the full history (the product's
own inactivity label, built from `full/raw`), and in the same run fits three peers on the same
accounts, labels and training snapshots, from the raw events:

- recency alone (days since the last event; no fitting);
- an RFM logistic regression (log recency, purchases and spend in the last 365 days, tenure);
  a purchase is an invoice (the lines of one invoice share its timestamp);
- LightGBM, untuned (300 trees, 15 leaves), on eight RFM columns (recency, tenure, purchases
  all-time / 365 d / 90 d, spend 365 d / 90 d, mean gap between purchase days).

It prints ROC AUC with 95% bootstrap intervals over accounts, the paired-bootstrap interval of
(churnlens - best peer), PR AUC, and mean predicted against observed churn.

    uv run python bench/realdata.py                      # both cut dates of the dev set README
    uv run python bench/realdata.py --cut 2011-09-01 --keep /tmp/orii

The data: Online Retail II (UCI, Daqing Chen 2012, doi:10.24432/C5CG6D), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

DEVSET = Path(__file__).resolve().parents[1].parent / "shared" / "devsets" / "online-retail-ii"
CUTS = ("2011-09-01", "2011-08-01")
MONEY_EVENT = "purchase"
RESAMPLES = 1000


def churnlens(home: Path, *args: str) -> None:
    """The real command line, as a user runs it; its output goes to HOME/bench.log."""
    started = time.perf_counter()
    with open(home.parent / f"{home.name}.log", "a") as log:
        done = subprocess.run([sys.executable, "-m", "churnlens.cli", "--home", str(home), *args],
                              stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "COLUMNS": "200"})
    if done.returncode != 0:
        tail = (home.parent / f"{home.name}.log").read_text()[-3000:]
        raise SystemExit(f"churnlens {' '.join(args)} failed ({done.returncode}):\n{tail}")
    print(f"  churnlens {args[0]}: {time.perf_counter() - started:.1f} s", flush=True)


def read_snapshots(home: Path) -> pd.DataFrame:
    """Every snapshot partition (as_of=YYYY-MM-DD/part-0.parquet), as_of a date."""
    parts = sorted((home / "features" / "snapshots").glob("as_of=*/*.parquet"))
    frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    frame["as_of"] = pd.to_datetime(frame["as_of"].astype(str)).dt.date
    return frame


def rfm(events: pd.DataFrame, accounts: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """The peers' columns for each (account_id, as_of) in ``keys``, from events before as_of."""
    created = accounts.set_index("account_id")["created_at"]
    rows = []
    for as_of, group in keys.groupby("as_of"):
        cut = pd.Timestamp(as_of, tz="UTC")
        seen = events[events["event_ts"] < cut]
        seen = seen[seen["account_id"].isin(group["account_id"])]
        age = (cut - seen["event_ts"]).dt.total_seconds() / 86400.0
        buys = seen["event"] == MONEY_EVENT
        by = seen.assign(age=age, buy=buys, spend=np.where(buys, seen["quantity"], 0.0),
                         day=seen["event_ts"].dt.floor("D"))
        grouped = by.groupby("account_id")
        # a purchase is an invoice: its lines share the invoice's timestamp
        orders = by[by["buy"]].drop_duplicates(["account_id", "event_ts"])
        out = pd.DataFrame({
            "recency": grouped["age"].min(),
            "purchases_all": orders.groupby("account_id").size(),
            "purchases_365": orders[orders["age"] < 365].groupby("account_id").size(),
            "purchases_90": orders[orders["age"] < 90].groupby("account_id").size(),
            "spend_365": by[by["age"] < 365].groupby("account_id")["spend"].sum(),
            "spend_90": by[by["age"] < 90].groupby("account_id")["spend"].sum(),
        })
        days = by[by["buy"]].groupby("account_id")["day"].agg(["min", "max", "nunique"])
        out["mean_gap"] = ((days["max"] - days["min"]).dt.days / (days["nunique"] - 1)
                           ).where(days["nunique"] > 1)
        out = out.reindex(group["account_id"])
        tenure = (cut - pd.to_datetime(created.reindex(out.index), utc=True)).dt.days
        out["tenure"] = tenure.values
        out = out.fillna({c: 0.0 for c in ("purchases_all", "purchases_365", "purchases_90",
                                           "spend_365", "spend_90")})
        out["as_of"] = as_of
        rows.append(out.reset_index())
    return pd.concat(rows, ignore_index=True)


LOGISTIC = ["log_recency", "purchases_365", "spend_365", "tenure"]
EIGHT = ["recency", "tenure", "purchases_all", "purchases_365", "purchases_90", "spend_365",
         "spend_90", "mean_gap"]


def peers(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, np.ndarray]:
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for frame in (train, test):
        frame["log_recency"] = np.log1p(frame["recency"].fillna(9999))
    y = train["churned"].astype(int).to_numpy()
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    logistic.fit(train[LOGISTIC].fillna(0), y)
    booster = lgb.LGBMClassifier(n_estimators=300, num_leaves=15, verbose=-1, random_state=0)
    booster.fit(train[EIGHT], y)
    return {"recency": test["recency"].fillna(9999).to_numpy(),
            "RFM logistic": logistic.predict_proba(test[LOGISTIC].fillna(0))[:, 1],
            "LightGBM on RFM": booster.predict_proba(test[EIGHT])[:, 1]}


def bootstrap(y: np.ndarray, scores: dict[str, np.ndarray], best_peer: str,
              seed: int = 0) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    """95% intervals of each AUC and of (churnlens - best peer), resampling accounts."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in scores}
    diffs = []
    for _ in range(RESAMPLES):
        pick = rng.integers(0, len(y), len(y))
        if y[pick].min() == y[pick].max():
            continue
        aucs = {name: roc_auc_score(y[pick], s[pick]) for name, s in scores.items()}
        for name, value in aucs.items():
            draws[name].append(value)
        diffs.append(aucs["churnlens"] - aucs[best_peer])
    ci = {name: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5)))
          for name, v in draws.items()}
    return ci, (float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5)))


def _run_product(home: Path, truth_home: Path, raw: Path, common: list[str]) -> None:
    """The product as a user runs it on the history before the cut, and the truth after it."""
    churnlens(home, "validate", "--data", str(raw / "cut" / "raw"), "--churn-definition",
              "inactivity")
    churnlens(home, "features", "--data", str(raw / "cut" / "raw"), *common)
    churnlens(home, "train")
    churnlens(home, "score", "--top", "0")
    churnlens(truth_home, "features", "--data", str(raw / "full" / "raw"), *common)


def run_cut(work: Path, cut: str, reuse: bool = False) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    print(f"\n== cut {cut}", flush=True)
    raw = work / cut
    subprocess.run([sys.executable, str(DEVSET / "convert.py"), str(raw), cut], check=True,
                   stdout=subprocess.DEVNULL)
    home, truth_home = work / f"home-{cut}", work / f"truth-{cut}"
    common = ["--churn-definition", "inactivity", "--money-event", MONEY_EVENT]
    if reuse and (home / "scores" / f"{cut}.parquet").is_file() and truth_home.is_dir():
        print("  reusing the homes of an earlier run (--reuse)")
    else:
        _run_product(home, truth_home, raw, common)

    as_of = date.fromisoformat(cut)
    scores = pd.read_parquet(home / "scores" / f"{cut}.parquet")
    truth = read_snapshots(truth_home)
    truth = truth[(truth["as_of"] == as_of) & truth["labelled"]][["account_id", "churned"]]
    test = scores[["account_id", "churn_probability"]].merge(truth, on="account_id")
    print(f"  {len(test):,} scored accounts with a true label "
          f"(of {len(scores):,} scored, {len(truth):,} in the truth)")

    snapshots = read_snapshots(home)
    labelled = snapshots[snapshots["labelled"]][["account_id", "as_of", "churned"]]
    events = pd.read_parquet(raw / "cut" / "raw" / "usage_events.parquet")
    events["event_ts"] = pd.to_datetime(events["event_ts"], utc=True)
    accounts = pd.read_parquet(raw / "cut" / "raw" / "accounts.parquet")
    train = labelled.merge(rfm(events, accounts, labelled), on=["account_id", "as_of"])
    test_keys = test[["account_id"]].assign(as_of=as_of)
    test_rfm = test_keys.merge(rfm(events, accounts, test_keys), on=["account_id", "as_of"])
    assert (test_rfm["account_id"].to_numpy() == test["account_id"].to_numpy()).all()

    y = test["churned"].astype(int).to_numpy()
    predicted = {"churnlens": test["churn_probability"].to_numpy(),
                 **peers(train, test_rfm)}
    aucs = {name: roc_auc_score(y, s) for name, s in predicted.items()}
    best = max((n for n in aucs if n != "churnlens"), key=aucs.__getitem__)
    ci, diff = bootstrap(y, predicted, best)
    print(f"  churn rate {y.mean():.1%}; training snapshots {len(train):,} over "
          f"{train['as_of'].nunique()} dates")
    print(f"  {'model':<18} {'ROC AUC (95% CI)':>24} {'PR AUC':>8} {'mean predicted':>15}")
    for name, s in predicted.items():
        mean = f"{s.mean():.1%}" if name != "recency" else "-"
        print(f"  {name:<18} {aucs[name]:>8.3f} ({ci[name][0]:.3f}-{ci[name][1]:.3f})"
              f" {average_precision_score(y, s):>8.3f} {mean:>15}")
    gap = aucs["churnlens"] - aucs[best]
    print(f"  observed churn {y.mean():.1%}; churnlens - {best}: {gap:+.3f}"
          f" (paired 95% CI {diff[0]:+.3f} to {diff[1]:+.3f})")
    verdict = ("above the best peer" if diff[0] > 0 else "at or above the best peer"
               if aucs["churnlens"] >= aucs[best] else "BELOW the best peer")
    print(f"  churnlens is {verdict}; mean predicted {predicted['churnlens'].mean():.1%} against "
          f"{y.mean():.1%} observed ({predicted['churnlens'].mean() / y.mean() - 1:+.1%} relative)")
    return {"auc": aucs["churnlens"], "best_peer": aucs[best]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cut", action="append", help="cut date(s); default both of the README")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: reuse the trained homes an earlier run left there")
    args = parser.parse_args()
    if not DEVSET.is_dir():
        raise SystemExit(f"the development set is not here: {DEVSET} (it lives in ../shared)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="churnlens-realdata-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {cut: run_cut(work, cut, args.reuse) for cut in (args.cut or CUTS)}
    print("\nsummary: " + "; ".join(f"{cut}: churnlens {r['auc']:.3f}, best peer "
                                     f"{r['best_peer']:.3f}" for cut, r in results.items()))


if __name__ == "__main__":
    main()
