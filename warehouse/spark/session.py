"""The SparkSession (started by foundation/spark_session.py), and the base tables it sees (temp views over ingest's Parquet).

Also regenerates warehouse/spark/functions.py (`python -m mementos.warehouse.spark.engine --write-function-list`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from mementos.foundation import catalog, storage
from mementos.foundation.spark_session import DEFAULT_CONF, spark_session  # noqa: F401 (re-exported)
from mementos.warehouse.spark.layout import Layout


def _arrow_to_spark_schema(schema):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pyspark.sql.pandas.types import from_arrow_schema
        return from_arrow_schema(schema)



def register_base_tables(spark, layout: Layout, table_dirs: dict[str, list[str]]) -> dict[str, int]:
    """Temp views over the stored tables' run directories (`base_table_dirs`), with sql/schema.sql's
    types, and the base views over them (sql/views.spark.sql); returns the directories read per table."""
    schemas = catalog.store_schemas()
    registered = {}
    for directory, dirs in table_dirs.items():
        schema = _arrow_to_spark_schema(schemas[directory])
        if dirs:
            df = spark.read.schema(schema).parquet(*dirs)
        else:
            df = spark.createDataFrame([], schema)
        df.createOrReplaceTempView(catalog.STORES[directory])
        registered[directory] = len(dirs)
    linked = catalog.LINKED_FULL_TRACES.format(min_by="min_by", stored_traces="stored_traces",
                                               stored_full_traces="stored_full_traces")
    spark.sql(f"SELECT * FROM {linked}").createOrReplaceTempView("linked_full_traces")
    for name, sql in catalog.view_templates("spark").items():
        spark.sql(sql).createOrReplaceTempView(name)
    if layout.db is not None:  # ingest_runs is small and lives only in DuckDB: copy it in for models that read it
        with storage.connect(layout.db, read_only=True) as con:
            table = con.sql("SELECT * FROM ingest_runs").to_arrow_table()
        spark.createDataFrame(table.to_pylist(), _arrow_to_spark_schema(table.schema)).createOrReplaceTempView(
            "ingest_runs")
    return registered



def write_function_list(path: str | Path | None = None) -> Path:
    """Regenerate warehouse/spark/functions.py from the installed pyspark's SHOW FUNCTIONS."""
    import textwrap

    path = Path(path) if path else Path(__file__).parent / "functions.py"
    spark = spark_session("local[1]", app_name="mementos function list")
    try:
        names = sorted({r[0] for r in spark.sql("SHOW FUNCTIONS").collect()})
        version = spark.version
    finally:
        spark.stop()
    body = textwrap.fill(" ".join(names), width=100, break_long_words=False, break_on_hyphens=False)
    path.write_text(
        f'"""Built-in functions of Apache Spark {version}, as `SHOW FUNCTIONS` lists them ({len(names)} names).\n\n'
        "warehouse/spark/transpile.py checks every function call of a transpiled model against\n"
        "this list, so `mementos models --engine spark` can say which models run on Spark\n"
        "without starting it. Regenerate with `python -m mementos.warehouse.spark.engine --write-function-list`\n"
        'when the pinned pyspark changes.\n"""\n\n'
        f'SPARK_VERSION = "{version}"\n\nSPARK_FUNCTIONS = frozenset("""\n{body}\n""".split())\n'
    )
