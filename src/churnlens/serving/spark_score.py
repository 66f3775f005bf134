"""``churnlens score --backend spark``: the score table computed by Spark executors.

Each executor runs the very functions the API and ``churnlens score`` run (``score_rows``
through ``_score_chunk``, or ``score_probabilities``) on its share of the snapshot, inside
``mapInPandas``; the champion bundle travels to the executors with ``SparkContext.addFile``.
The driver collects the scored rows and writes the same Parquet and CSV files as local
scoring, so the two agree row for row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa

from churnlens.engines import spark_session
from churnlens.serving.changes import Previous, align, previous_partition
from churnlens.serving.improve import Targets
from churnlens.serving.playbooks import Playbooks, load_playbooks
from churnlens.serving.score import (
    ScoreRun,
    _score_chunk,
    champion,
    drift_state,
    run_targets,
    score_probabilities,
    sort_riskiest,
    table_schema,
    with_directory,
    write_table,
)
from churnlens.settings import Settings
from churnlens.training.bundle import load_bundle
from churnlens.training.matrix import latest_partition

DRIFT_SAMPLE_ROWS = 200_000
"""Snapshot rows the driver reads to compute drift and the improvements' targets: all of them
up to this, a sample beyond."""


BEFORE = "before__"
"""Prefix of the previous snapshot's columns joined beside each account's row."""


def _split(batch: pd.DataFrame, previous_as_of: date | None
           ) -> tuple[pd.DataFrame, Previous | None]:
    """A joined batch back into the snapshot rows and the previous snapshot's rows."""
    mine = [c for c in batch.columns if not c.startswith(BEFORE)]
    now = batch[mine].reset_index(drop=True)
    now["as_of"] = pd.to_datetime(now["as_of"]).dt.date
    if previous_as_of is None:
        return now, None
    before = batch[[c for c in batch.columns if c.startswith(BEFORE)]].reset_index(drop=True)
    before.columns = [c[len(BEFORE):] for c in before.columns]
    present = before["account_id"].notna().to_numpy()
    return now, align(before[present], previous_as_of, now["account_id"])


def _scorer(bundle_name: str, settings: Settings, playbooks: Playbooks, explained: bool,
            schema: pa.Schema, previous_as_of: date | None, targets: Targets | None
            ) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function each Spark task runs over its batches of snapshot rows."""

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import SparkFiles
        from threadpoolctl import threadpool_limits

        bundle = load_bundle(Path(SparkFiles.get(bundle_name)))
        # one OpenMP thread per task: Spark already runs a task per core
        with threadpool_limits(limits=1):
            for batch in batches:
                now, previous = _split(batch, previous_as_of)
                scored = (_score_chunk(bundle, now, settings, playbooks, previous, targets)
                          if explained
                          else score_probabilities(bundle, now, settings))
                yield pa.Table.from_pandas(scored, schema=schema,
                                           preserve_index=False).to_pandas()

    return score_batches


def score_on_spark(settings: Settings, *, explained: bool = True) -> ScoreRun:
    """Score every account of the latest snapshot on Spark and write the table atomically."""
    from pyspark.sql.pandas.types import from_arrow_schema

    started = time.perf_counter()
    bundle = champion(settings)
    playbooks = load_playbooks(settings.playbooks)
    path, as_of = latest_partition(settings.layout.features)
    spark = spark_session(settings)
    spark.sparkContext.addFile(str(bundle.path.resolve()), recursive=True)
    schema = table_schema(explained)
    snapshot = spark.read.parquet(str(path.resolve()))
    joined, earlier = snapshot, previous_partition(settings.layout.features, as_of)
    if earlier is not None and explained:  # what changed needs last month's row beside this one
        before = spark.read.parquet(str(earlier[0].resolve()))
        before = before.select(*[before[c].alias(BEFORE + c) for c in before.columns])
        joined = snapshot.join(before, snapshot["account_id"] == before[BEFORE + "account_id"],
                               "left")
    sample = snapshot.limit(DRIFT_SAMPLE_ROWS) if snapshot.count() <= DRIFT_SAMPLE_ROWS else (
        snapshot.sample(fraction=DRIFT_SAMPLE_ROWS / snapshot.count(), seed=7))
    sampled = sample.toPandas()
    # the improvements' targets (each lever's median among low-tier accounts) from the same
    # sample: every account of a snapshot up to its size, as local scoring takes them
    targets = run_targets(bundle, sampled, settings) if explained else None
    scored = joined.mapInPandas(
        _scorer(bundle.path.name, settings, playbooks, explained, schema,  # type: ignore[arg-type]
                earlier[1] if earlier is not None and explained else None, targets),
        from_arrow_schema(schema))
    table = scored.toArrow().cast(schema).to_pandas()
    table["as_of"] = pd.to_datetime(table["as_of"]).dt.date
    table["drift_flag"] = drift_state(bundle, sampled).flag
    table = sort_riskiest(with_directory(table, settings.layout.features))
    parquet, csv = write_table(table, settings.layout.scores, as_of)
    return ScoreRun(table=table, parquet=parquet, csv=csv, as_of=as_of,
                    model_version=bundle.version, seconds=time.perf_counter() - started)
