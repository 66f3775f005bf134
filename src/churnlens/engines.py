"""The engines churnlens runs its Ibis expressions on, opened one way from the settings.

Every feature, label and validation rule is one Ibis expression; which engine executes it is
a setting. DuckDB is embedded and the default. Spark runs the same expressions on a cluster
(or in local mode), PostgreSQL inside the warehouse that already holds the tables.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import ibis

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from churnlens.settings import Settings

Engine = Literal["duckdb", "spark", "postgres"]
URL_ENGINES: dict[str, Engine] = {"postgres": "postgres", "postgresql": "postgres",
                                  "duckdb": "duckdb"}
"""Database URL schemes and the engine that reads them in place."""


SPARK_LOGGING = Path(__file__).with_name("spark-log4j2.properties")


class EngineError(ValueError):
    """The settings ask for an engine that cannot read the data where it is."""


def engine_for(settings: Settings) -> Engine:
    """The engine a run uses: a database URL decides by its scheme, otherwise the setting."""
    data = settings.data
    if data and "://" in data:
        scheme = data.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme in URL_ENGINES:
            engine = URL_ENGINES[scheme]
            explicit = "backend" in settings.model_fields_set
            if explicit and settings.backend != engine:
                raise EngineError(
                    f"--backend {settings.backend} cannot read {scheme}:// tables in place; "
                    f"use --backend {engine} (or leave --backend out)")
            return engine
        if settings.backend != "spark":
            raise EngineError(
                f"cannot open {data!r}: database URLs must start with postgresql:// or "
                f"duckdb://; paths such as hdfs:// or s3a:// need --backend spark")
    elif settings.backend == "postgres":
        raise EngineError("the postgres backend reads tables from a database: pass "
                          "--data postgresql://user:password@host:port/database")
    return settings.backend


def duckdb_backend(scratch: Path | None = None, memory_limit: str | None = None,
                   threads: int | None = None) -> ibis.BaseBackend:
    """An embedded DuckDB that works in UTC and spills to ``scratch`` when memory runs out."""
    config: dict[str, object] = {}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = threads
    con = ibis.duckdb.connect(**config)
    con.raw_sql("SET TimeZone = 'UTC'")
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
        con.raw_sql(f"SET temp_directory = '{scratch.as_posix()}'")
    return con


def postgres_backend(url: str) -> ibis.BaseBackend:
    """The warehouse at ``url``, with a UTC session so timestamps mean what they say."""
    try:
        con = ibis.connect(url)
    except Exception as error:  # the driver says why: refused, no such database, bad password
        raise EngineError(f"cannot connect to {_redacted(url)}: {error}") from error
    con.raw_sql("SET TIME ZONE 'UTC'")  # type: ignore[attr-defined]
    return con


def _redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, _, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def spark_defaults(settings: Settings) -> dict[str, str]:
    """Spark settings churnlens needs, before the user's own ``spark_conf``.

    UTC sessions (features compare dates), Arrow transfers, quiet logs, scratch under HOME,
    and in local mode a shuffle width that fits the machine instead of Spark's 200.
    """
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        "spark.local.dir": str((settings.layout.scratch / "spark").resolve()),
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{SPARK_LOGGING}",
    }
    if settings.spark_master.startswith("local"):
        # one JVM does everything: give it half the machine, and shuffles small enough that
        # a task's share fits in it (Spark's 200 partitions cost more than they save here)
        cores = settings.cores
        conf["spark.sql.shuffle.partitions"] = str(max(16, 4 * cores))
        conf["spark.driver.memory"] = f"{_half_the_memory_gb()}g"
    return conf


def _half_the_memory_gb() -> int:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not a POSIX system
        return 4
    return max(1, min(32, total // 2 // 2**30))


def spark_session(settings: Settings) -> SparkSession:
    """The Spark session for this process (Spark allows one), started on first use."""
    from pyspark.sql import SparkSession

    conf = {**spark_defaults(settings), **settings.spark_conf}
    # PySpark picks the workers' Python from the environment, not from the conf
    os.environ.setdefault("PYSPARK_PYTHON", conf["spark.pyspark.python"])
    Path(conf["spark.local.dir"]).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.master(settings.spark_master).appName("churnlens")
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as error:  # no Java, a wrong master URL, a cluster that refuses us
        raise EngineError(f"cannot start Spark (master {settings.spark_master!r}): "
                          f"{str(error).strip().splitlines()[0][:300]}. Spark needs Java 17 "
                          "or newer (`make engines` installs it)") from error
    session.sparkContext.setLogLevel("ERROR")
    return session


def spark_backend(settings: Settings) -> ibis.BaseBackend:
    return ibis.pyspark.connect(spark_session(settings))


def open_engine(settings: Settings) -> tuple[Engine, ibis.BaseBackend]:
    """The engine named by the settings, connected."""
    engine = engine_for(settings)
    if engine == "spark":
        return engine, spark_backend(settings)
    if engine == "postgres":
        return engine, postgres_backend(settings.data or "")
    if settings.data and settings.data.startswith("duckdb://"):
        return engine, ibis.connect(settings.data)
    home = settings.layout
    return engine, duckdb_backend(home.scratch, settings.duckdb_memory_limit, settings.threads)
