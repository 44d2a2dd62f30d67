"""The Spark engine, by job: `transpile` (DuckDB SQL to Spark SQL), `layout` (where Spark reads and
writes), `session` (the SparkSession and the base tables it sees), `build` (the executor's Spark
adapter: one model written aside, audited, swapped in), `functions` (Spark's built-in functions).
`engine` is the engine's entry point and names its public API."""
