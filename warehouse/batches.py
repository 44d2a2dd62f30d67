"""Batched builds: a table model with `batch_traces: N` is built N traces at a time.

Its memory then depends on N, not on the corpus: at 228,557 traces a batched model
needs what it needs at 20,000 (warehouse.md, "Batched models"). The model's SQL is
unchanged. For each batch (consecutive source rows of one dataset, N traces) the
engine runs

    WITH <each relation the model reads> AS NOT MATERIALIZED (<its rows of the batch's traces>)
    SELECT * FROM (<the model's SELECT>)

and appends the rows to the new table: a CTE shadows the table of the same name
everywhere inside the query. `traces`, `segments` and `parse_issues` are the base
views over the Parquet of the batch's source rows only (DuckDB skips the other row
groups by their source_row statistics); a view model with trace_id in its grain is
inlined, its own inputs shadowed; any other relation with a trace_id column keeps
the rows of the batch's traces; a relation without one is read whole.

So a batched model must give each trace's rows from that trace's rows alone (no
statistic over all traces, no join between traces): then the union of the batches
is the table the unbatched SQL gives, which tests/test_batches.py checks for every
batched model.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from foundation import catalog
from foundation.layout import data_dir
from warehouse.models import Model

BATCH_TABLE = "__batch_traces"  # the trace_ids of the batch being built (a temp table)


def trace_batches(con: duckdb.DuckDBPyConnection, size: int) -> list[tuple[str, int, int]]:
    """(dataset, first source_row, last source_row) of each batch of `size` traces, in order."""
    return con.execute("""
        SELECT dataset, min(source_row), max(source_row)
        FROM (SELECT dataset, source_row,
                     (row_number() OVER (PARTITION BY dataset ORDER BY source_row) - 1) // ? AS batch
              FROM traces)
        GROUP BY dataset, batch
        ORDER BY dataset, batch""", [size]).fetchall()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _has_trace_id(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute(
        "SELECT 1 FROM duckdb_columns() WHERE schema_name = 'main' AND lower(table_name) = ? "
        "AND column_name = 'trace_id' AND NOT internal", [name]).fetchall())


def batch_sql(con: duckdb.DuckDBPyConnection, db: Path, model: Model, views: dict[str, Model],
              dataset: str, first_row: int, last_row: int) -> str:
    """`model`'s SELECT over the traces of `dataset` with source rows first_row..last_row; fills the
    temp table BATCH_TABLE with their trace_ids first. `views`: the project's view models, by name."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {BATCH_TABLE} AS SELECT trace_id FROM traces "
                f"WHERE dataset = ? AND source_row BETWEEN ? AND ?", [dataset, first_row, last_row])
    ranged = catalog.trace_range_views(con, data_dir(db), dataset, first_row, last_row)
    relations: dict[str, str] = {}
    _shadow(con, model.body_refs, views, ranged, relations)
    if not relations:
        return model.sql
    ctes = ",\n".join(f"{_quote(name)} AS NOT MATERIALIZED ({select})" for name, select in relations.items())
    return f"WITH {ctes}\nSELECT * FROM (\n{model.sql}\n)"


def _shadow(con: duckdb.DuckDBPyConnection, refs: set[str], views: dict[str, Model], ranged: dict[str, str],
            relations: dict[str, str]) -> None:
    """Add to `relations` (in order: a relation after those it reads) the batch's SELECT of each of `refs`.

    A view model with trace_id in its grain is inlined, its own inputs shadowed first, so that a
    batch does not read the whole corpus through it (block_pairs reads analysed_traces, which
    reads all_traces, which reads traces)."""
    for name in sorted(refs):
        if name in relations:
            continue
        if name in ranged:
            relations[name] = ranged[name]
        elif name in views and "trace_id" in views[name].grain:
            _shadow(con, views[name].body_refs, views, ranged, relations)
            relations[name] = views[name].sql
        elif "." not in name and _has_trace_id(con, name):
            relations[name] = (f"SELECT * FROM main.{_quote(name)} "
                                f"WHERE trace_id IN (SELECT trace_id FROM temp.{BATCH_TABLE})")
