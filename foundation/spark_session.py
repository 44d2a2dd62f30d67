"""Starting a SparkSession, for the engines that run on Spark (`build --engine spark`, `ingest --engine spark`).

Engine-neutral: it knows how to start Spark and word the failures, not what runs on it.
"""

from __future__ import annotations

import logging
import warnings

from mementos.foundation.errors import WarehouseError, first_line

DEFAULT_CONF = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
}


def spark_session(master: str | None = "local[*]", conf: dict[str, str] | None = None,
                  app_name: str = "mementos build"):
    """A SparkSession on `master` (local[*], local[2], spark://host:7077, yarn, k8s://...); None: the
    master spark-submit set (a master given here would override it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            from pyspark.sql import SparkSession
    except ImportError:
        raise WarehouseError("the Spark engine needs pyspark: pip install '.[spark]' (and Java 17 or newer)") from None
    # pyspark logs every analysis error with a stack trace before raising it; the build reports it itself
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            spark = builder.getOrCreate()
    except Exception as exc:
        text = first_line(exc)
        raise WarehouseError(f"cannot start Spark on {master or 'the master spark-submit set'}: {text} "
                             f"(pyspark {installed_pyspark()} needs Java 17 or newer: `java -version`)") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def installed_pyspark() -> str:
    try:
        import pyspark
        return pyspark.__version__
    except ImportError:
        return "?"
