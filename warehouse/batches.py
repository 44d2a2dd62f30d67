"""Batched builds: a table model with `batch_traces: N` is built N traces at a time.

Its memory then depends on N, not on the corpus: at 228,557 traces a batched model
needs what it needs at 20,000 (warehouse.md, "Batched models"). The model's SQL is
unchanged. For each batch (consecutive source rows of one dataset, N traces) the
engine runs

    WITH <each relation the model reads> AS NOT MATERIALIZED (<its rows of the batch's traces>)
    SELECT * FROM (<the model's SELECT>)

and appends the rows to the new table (when every source row fits in one batch, the
model's SELECT runs once, unbatched): a CTE shadows the table of the same name
everywhere inside the query. `traces`, `segments` and `parse_issues` are the base
views over the Parquet of the batch's source rows only (DuckDB skips the other row
groups by their source_row statistics); a view model with trace_id in its grain is
inlined, its own inputs shadowed; any other relation with a trace_id column keeps
the rows of the batch's traces; a relation without one is read whole.

So a batched model must give each trace's rows from that trace's rows alone (no
statistic over all traces, no join between traces): then the union of the batches
is the table the unbatched SQL gives, which tests/test_batches.py checks for every
batched model.

A model whose grain has full_trace_id and no trace_id is batched over the full
config's rows the same way (`FULL_ROWS`): full_traces, sentences and full_blocks
over the batch's full rows, any other relation read whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mementos.foundation import catalog
from mementos.foundation.layout import data_dir
from mementos.warehouse.audits import quote
from mementos.warehouse.models import Model

BATCH_TABLE = "__batch_traces"  # the keys (trace_id or full_trace_id) of the batch being built (a temp table)
RANGED = None  # in a shadowing plan: the relation is a base view rendered over the batch's source rows


@dataclass(frozen=True)
class Side:
    """What a batched model's rows belong to: a default trace, or a full row."""
    key: str  # the column naming it
    rows: str  # the base view with one row per key, and its dataset and source_row
    ranged: tuple[str, ...]  # the base views rendered over a batch's source rows


TRACES = Side("trace_id", "traces", catalog.trace_range_view_names())
FULL_ROWS = Side("full_trace_id", "full_traces", catalog.FULL_RANGE_VIEW_NAMES)


def side_of(model: Model) -> Side:
    return FULL_ROWS if "full_trace_id" in model.grain and "trace_id" not in model.grain else TRACES


def source_rows(con: duckdb.DuckDBPyConnection, side: Side = TRACES) -> int:
    """How many (dataset, source_row) `side` has: the unit `batch_traces` counts."""
    [(n,)] = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT dataset, source_row FROM {side.rows})").fetchall()
    return n


def trace_batches(con: duckdb.DuckDBPyConnection, size: int, side: Side = TRACES) -> list[tuple[str, int, int]]:
    """(dataset, first source_row, last source_row) of each batch of `size` source rows of `side`, in order.
    dense_rank: the traces of one source row (a conversation's assistant turns) never straddle two batches."""
    return con.execute(f"""
        SELECT dataset, min(source_row), max(source_row)
        FROM (SELECT dataset, source_row,
                     (dense_rank() OVER (PARTITION BY dataset ORDER BY source_row) - 1) // ? AS batch
              FROM {side.rows})
        GROUP BY dataset, batch
        ORDER BY dataset, batch""", [size]).fetchall()


def run_batches(con: duckdb.DuckDBPyConnection, rows: str, size: int) -> list[tuple[str, int, int]]:
    """Batches of at most `size` traces covering exactly the (dataset, source_row) of the relation `rows`
    (the traces an incremental build adds): each a run of consecutive source rows, so that no batch takes
    in a trace that is not in `rows`."""
    return con.execute(f"""
        SELECT dataset, min(source_row), max(source_row)
        FROM (SELECT dataset, source_row, run,
                     (row_number() OVER (PARTITION BY dataset, run ORDER BY source_row) - 1) // ? AS batch
              FROM (SELECT dataset, source_row,
                           source_row - row_number() OVER (PARTITION BY dataset ORDER BY source_row) AS run
                    FROM {rows}))
        GROUP BY dataset, run, batch
        ORDER BY dataset, min(source_row)""", [size]).fetchall()


def batch_queries(con: duckdb.DuckDBPyConnection, db: Path, model: Model, views: dict[str, Model],
                  batches: list[tuple[str, int, int]]) -> Iterator[str]:
    """For each (dataset, first_row, last_row) of `batches`: fill the temp table BATCH_TABLE with the
    batch's keys (side_of(model)) and yield `model`'s SELECT over them. What shadows each relation the
    model reads is decided once; only the base views' source-row range changes from batch to batch.
    `views`: the project's view models, by name. The temp table is dropped after the last batch."""
    side = side_of(model)
    plan: dict[str, str | None] = {}
    if side is TRACES:
        _shadow(con, model.body_refs, views, plan)
    else:
        plan.update((name, RANGED) for name in sorted(model.body_refs) if name in side.ranged)
    src = catalog.committed_sources(con, data_dir(db))
    for dataset, first_row, last_row in batches:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {BATCH_TABLE} AS SELECT {side.key} FROM {side.rows} "
                    f"WHERE dataset = ? AND source_row BETWEEN ? AND ?", [dataset, first_row, last_row])
        if not plan:
            yield model.sql
            continue
        ranged = (catalog.trace_range_views if side is TRACES else catalog.full_range_views)(
            src, dataset, first_row, last_row)
        ctes = ",\n".join(f"{quote(name)} AS NOT MATERIALIZED ({ranged[name] if select is RANGED else select})"
                           for name, select in plan.items())
        yield f"WITH {ctes}\nSELECT * FROM (\n{model.sql}\n)"
    con.execute(f"DROP TABLE IF EXISTS temp.{BATCH_TABLE}")


def _has_trace_id(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute(
        "SELECT 1 FROM duckdb_columns() WHERE schema_name = 'main' AND lower(table_name) = ? "
        "AND column_name = 'trace_id' AND NOT internal", [name]).fetchall())


def _shadow(con: duckdb.DuckDBPyConnection, refs: set[str], views: dict[str, Model],
            plan: dict[str, str | None]) -> None:
    """Add to `plan` (in order: a relation after those it reads) what a batch reads for each of `refs`:
    RANGED for a base view rendered over the batch's source rows, else the SELECT.

    A view model with trace_id in its grain is inlined, its own inputs shadowed first, so that a
    batch does not read the whole corpus through it (block_pairs reads analysed_traces, which
    reads all_traces, which reads traces)."""
    for name in sorted(refs):
        if name in plan:
            continue
        if name in catalog.trace_range_view_names():
            plan[name] = RANGED
        elif name in views and "trace_id" in views[name].grain:
            _shadow(con, views[name].body_refs, views, plan)
            plan[name] = views[name].sql
        elif "." not in name and _has_trace_id(con, name):
            plan[name] = (f"SELECT * FROM main.{quote(name)} "
                          f"WHERE trace_id IN (SELECT trace_id FROM temp.{BATCH_TABLE})")
