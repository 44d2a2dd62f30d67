"""The DuckDB → Spark SQL rewrites that need no Spark session (sqlglot only)."""

from __future__ import annotations

from mementos.warehouse.spark import engine as spark_engine


def test_an_indexed_list_of_quantiles_counts_from_zero_on_spark():
    # DuckDB's lists count from 1 and Spark's arrays from 0: the median of [0.1, 0.5, 0.9] is [2] and [1]
    sql = spark_engine.transpile_sql("SELECT quantile_cont(x, [0.1, 0.5, 0.9])[2] AS median FROM t", "m", "test")
    assert sql == "SELECT PERCENTILE(x, ARRAY(0.1, 0.5, 0.9))[1] AS median FROM t"
