"""Build the SQL models on Apache Spark: the same models/*.sql, transpiled, over the same Parquet.

`build(db, master="local[*]")` is `mementos build --engine spark`. It

1. transpiles every model (and every audit) from DuckDB SQL to Spark SQL with
   sqlglot (warehouse/spark/transpile.py); a model that does not transpile fails
   with a message naming the model and the function, and its downstream models
   are skipped;
2. registers the stored tables as Spark temp views over the Parquet files ingest
   wrote, `PATH.data/<table>/<dataset-slug>/<run_id>/part-*.parquet`, with the
   schemas of sql/schema.sql, and the six base tables as views over them from
   sql/views.spark.sql (warehouse/spark/layout.py says which directories,
   warehouse/spark/session.py registers them);
3. asks the planner (warehouse/planner.py) what to build, from the project, the
   selection and each model's `_build.json` (fingerprint, data version, time):
   fresh models are not rebuilt, as on DuckDB;
4. builds the plan's models through the executor (warehouse/executor.py) with
   the Spark adapter (warehouse/spark/build.py), each
   written aside to `PATH.data/models/.building-<model>-<id>/`, audited with the
   model's audits (the engine's audit SQL, transpiled), then renamed into place
   as `PATH.data/models/<model>/`, with `_build.json` beside its parts. A failing
   audit deletes the new files and keeps the old directory.

Every model, table or view, is materialised as Parquet on Spark (a temp view
would end with the session). File operations go through Hadoop's FileSystem API,
so the Parquet root can be a local path (made a file: URI) or any URI the cluster
reads (hdfs://, s3a://). warehouse.md (Spark) has the details.
"""

from __future__ import annotations

from mementos.warehouse.spark.build import SparkEngine, build, open_engine, spark_state
from mementos.warehouse.spark.layout import MANIFEST, MODELS_SUBDIR, PARQUET_TABLES, Layout, base_table_dirs, layout_for
from mementos.warehouse.spark.session import DEFAULT_CONF, register_base_tables, spark_session, write_function_list
from mementos.warehouse.spark.transpile import (SparkModel, TranspileError, spark_variant, transpile_model,
                                       transpile_project, transpile_report, transpile_sql)

__all__ = ["build", "open_engine", "SparkEngine", "spark_state", "MANIFEST", "MODELS_SUBDIR", "PARQUET_TABLES",
           "Layout", "base_table_dirs", "layout_for", "DEFAULT_CONF", "register_base_tables", "spark_session",
           "write_function_list", "SparkModel", "TranspileError", "spark_variant", "transpile_model",
           "transpile_project", "transpile_report", "transpile_sql"]

if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write-function-list"]:
        print(f"wrote {write_function_list()}")
    else:
        sys.exit("usage: python -m mementos.warehouse.spark.engine --write-function-list")
