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
from pathlib import Path

import pandas as pd
import pyarrow as pa

from churnlens.engines import spark_session
from churnlens.serving.playbooks import Playbooks, load_playbooks
from churnlens.serving.score import (
    ScoreRun,
    _score_chunk,
    champion,
    drift_state,
    score_probabilities,
    sort_riskiest,
    table_schema,
    write_table,
)
from churnlens.settings import Settings
from churnlens.training.bundle import load_bundle
from churnlens.training.matrix import latest_partition

DRIFT_SAMPLE_ROWS = 200_000
"""Snapshot rows the driver reads to compute drift: all of them up to this, a sample beyond."""


def _scorer(bundle_name: str, settings: Settings, playbooks: Playbooks, explained: bool,
            schema: pa.Schema) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function each Spark task runs over its batches of snapshot rows."""

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import SparkFiles
        from threadpoolctl import threadpool_limits

        bundle = load_bundle(Path(SparkFiles.get(bundle_name)))
        # one OpenMP thread per task: Spark already runs a task per core
        with threadpool_limits(limits=1):
            for batch in batches:
                batch = batch.reset_index(drop=True)
                batch["as_of"] = pd.to_datetime(batch["as_of"]).dt.date
                scored = (_score_chunk(bundle, batch, settings, playbooks) if explained
                          else score_probabilities(bundle, batch, settings))
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
    scored = snapshot.mapInPandas(
        _scorer(bundle.path.name, settings, playbooks, explained, schema),  # type: ignore[arg-type]
        from_arrow_schema(schema))
    table = scored.toArrow().cast(schema).to_pandas()
    table["as_of"] = pd.to_datetime(table["as_of"]).dt.date
    sample = snapshot.limit(DRIFT_SAMPLE_ROWS) if snapshot.count() <= DRIFT_SAMPLE_ROWS else (
        snapshot.sample(fraction=DRIFT_SAMPLE_ROWS / snapshot.count(), seed=7))
    table["drift_flag"] = drift_state(bundle, sample.toPandas()).flag
    table = sort_riskiest(table)
    parquet, csv = write_table(table, settings.layout.scores, as_of)
    return ScoreRun(table=table, parquet=parquet, csv=csv, as_of=as_of,
                    model_version=bundle.version, seconds=time.perf_counter() - started)
