"""The Spark engine, by job: `transpile` (DuckDB SQL to Spark SQL), `layout` (where Spark reads and
writes), `session` (the SparkSession and the base tables it sees), `build` (execute the planner's
plan). warehouse/spark_engine.py is the engine's entry point and names its public API."""
