"""How a model becomes a relation in DuckDB: one named unit per way of building, and the swap they share.

Each unit creates the model's new relation aside, under `aside_name(model)`, inside the
build's transaction; the engine (warehouse/engine.py) audits it there, then `swap_in`
drops the old relation and renames the new one into its place, as dbt-duckdb's table
materialisation does. A model picks its unit by its header (`for_model`): a view, a
table, a table built a batch of traces at a time (warehouse/batches.py), or an
incremental model: built whole as a batched table, it keeps beside it the inputs of the
traces it holds (its `trace_inputs`: by default each trace's (trace_id, run_id)),
`processed_name(model)`; `apply_increment` then brings it up to date in place (dbt's
delete+insert on the unique key trace_id): the rows of the traces whose inputs are gone or
changed are deleted, the traces with inputs new since are computed and inserted. A
new kind of model is one more unit here and one more line in `for_model`.

The names of the working relations live here only: Spark's build uses `aside_name` for
its temporary view too, and models.py reserves the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb

from mementos.foundation import storage
from mementos.warehouse.audits import quote
from mementos.warehouse import batches
from mementos.warehouse.batches import batch_queries, side_of, trace_batches
from mementos.warehouse.models import Model

ASIDE_PREFIX = "__build_"  # NAME is built as __build_NAME, then renamed to NAME
PROCESSED_PREFIX = "__mementos_processed_"  # the (trace_id, run_id) an incremental model holds
# temp tables of an incremental step: the inputs of the traces now, and those added and removed since
CURRENT, ADDED, REMOVED = "__increment_current", "__increment_added", "__increment_removed"


def aside_name(model: str) -> str:
    """The relation a model is built into before it is swapped in."""
    return ASIDE_PREFIX + model


def processed_name(model: str) -> str:
    """The table of the inputs (trace_id, run_id, ...) of the traces an incremental model holds."""
    return PROCESSED_PREFIX + model


def trace_inputs(model: Model) -> str:
    """The SELECT of the inputs of each trace (or full row) the model holds: Model.trace_inputs, by
    default its key and run, which name the rows it is computed from."""
    side = side_of(model)
    return model.trace_inputs or f"SELECT {side.key}, run_id FROM {side.rows}"


@dataclass(frozen=True)
class Increment:
    """What an incremental step did: traces (trace_id, run_id) added and removed."""
    added: int
    removed: int

    def describe(self) -> str:
        return f"incremental: {self.added:,} new traces, {self.removed:,} removed"


@dataclass(frozen=True)
class Materialization:
    name: str  # as messages and docs say it
    relation: str  # what it leaves in the warehouse: 'VIEW' | 'TABLE'
    create: Callable[[duckdb.DuckDBPyConnection, Path, Model, dict[str, Model], str], None]
    """create(con, db, model, views, aside): make the new relation `aside` from the model's SELECT;
    `views` are the project's views (a batched model inlines them)."""


def _create_view(con: duckdb.DuckDBPyConnection, db: Path, model: Model, views: dict[str, Model], aside: str) -> None:
    con.execute(f"CREATE VIEW {quote(aside)} AS\n{model.sql}")


def _create_table(con: duckdb.DuckDBPyConnection, db: Path, model: Model, views: dict[str, Model], aside: str) -> None:
    con.execute(f"CREATE TABLE {quote(aside)} AS\n{model.sql}")


def _create_batched_table(con: duckdb.DuckDBPyConnection, db: Path, model: Model, views: dict[str, Model],
                          aside: str) -> None:
    """The table a batch of traces at a time, each batch's memory released before the next; in one query
    when every trace fits in one batch (what one batch may hold, and the same rows: the model is trace-local),
    which spares a small warehouse a batch per dataset."""
    side = side_of(model)
    if batches.source_rows(con, side) <= model.batch_traces:
        _create_table(con, db, model, views, aside)
        return
    for i, sql in enumerate(batch_queries(con, db, model, views, trace_batches(con, model.batch_traces, side))):
        con.execute(f"CREATE TABLE {quote(aside)} AS\n{sql}" if i == 0 else f"INSERT INTO {quote(aside)}\n{sql}")
        storage.release_memory(con)


def _create_incremental_table(con: duckdb.DuckDBPyConnection, db: Path, model: Model, views: dict[str, Model],
                              aside: str) -> None:
    """An incremental model built whole: the batched table, and the record of every trace it now holds."""
    _create_batched_table(con, db, model, views, aside)
    con.execute(f"CREATE OR REPLACE TABLE {quote(processed_name(model.name))} AS {trace_inputs(model)}")


VIEW = Materialization("view", "VIEW", _create_view)
TABLE = Materialization("table", "TABLE", _create_table)
BATCHED_TABLE = Materialization("batched table", "TABLE", _create_batched_table)
INCREMENTAL = Materialization("incremental table", "TABLE", _create_incremental_table)


def for_model(model: Model) -> Materialization:
    if model.kind == "view":
        return VIEW
    if model.kind == "incremental":
        return INCREMENTAL
    return BATCHED_TABLE if model.batch_traces else TABLE


def can_increment(con: duckdb.DuckDBPyConnection, model: str) -> bool:
    """Whether the model has its record of processed traces (a full build writes it)."""
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
                            [processed_name(model)]).fetchall())


def apply_increment(con: duckdb.DuckDBPyConnection, db: Path, model: Model, views: dict[str, Model]) -> Increment:
    """Bring the incremental model's table up to date in place, inside the build's transaction: delete the
    rows of the traces whose inputs (`trace_inputs`: their (trace_id, run_id) and what else the model
    names) are no longer there (removed, replaced or relinked), compute the traces whose inputs are new
    batch by batch (warehouse/batches.py) and insert them, and update the record of processed inputs.
    A changed trace is removed and added. Inputs are compared as sets (EXCEPT), NULLs equal."""
    table, processed = quote(model.name), quote(processed_name(model.name))
    side = side_of(model)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {CURRENT} AS {trace_inputs(model)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {REMOVED} AS "
                f"SELECT * FROM {processed} EXCEPT SELECT * FROM temp.{CURRENT}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {ADDED} AS "
                f"SELECT * FROM temp.{CURRENT} EXCEPT SELECT * FROM {processed}")
    removed_keys = f"(SELECT {side.key} FROM temp.{REMOVED})"
    con.execute(f"DELETE FROM {table} WHERE {side.key} IN {removed_keys}")
    added_rows = (f"(SELECT DISTINCT dataset, source_row FROM {side.rows} AS r "
                  f"SEMI JOIN temp.{ADDED} AS a ON a.{side.key} = r.{side.key})")
    added = batches.run_batches(con, added_rows, model.batch_traces or 1)
    for sql in batches.batch_queries(con, db, model, views, added):
        # only the batch's added keys, whatever the SQL reads besides (a source row's other traces
        # may have kept their inputs)
        con.execute(f"INSERT INTO {table}\nSELECT * FROM (\n{sql}\n) "
                    f"WHERE {side.key} IN (SELECT {side.key} FROM temp.{batches.BATCH_TABLE}) "
                    f"AND {side.key} IN (SELECT {side.key} FROM temp.{ADDED})")
        storage.release_memory(con)
    con.execute(f"DELETE FROM {processed} WHERE {side.key} IN {removed_keys}")
    con.execute(f"INSERT INTO {processed} SELECT * FROM temp.{ADDED}")
    [(n_added, n_removed)] = con.execute(f"SELECT (SELECT count(*) FROM temp.{ADDED}), "
                                         f"(SELECT count(*) FROM temp.{REMOVED})").fetchall()
    for temp in (ADDED, REMOVED, CURRENT):
        con.execute(f"DROP TABLE temp.{temp}")
    return Increment(n_added, n_removed)


def clear_aside(con: duckdb.DuckDBPyConnection, model: str) -> str:
    """Drop whatever a failed build left aside for `model`; the aside name."""
    aside = aside_name(model)
    con.execute(f"DROP VIEW IF EXISTS {quote(aside)}")
    con.execute(f"DROP TABLE IF EXISTS {quote(aside)}")
    return aside


def swap_in(con: duckdb.DuckDBPyConnection, model: str, unit: Materialization, existing: str | None) -> None:
    """Replace the relation `model` (`existing`: 'table' | 'view' | None) with the one built aside."""
    if existing:
        con.execute(f"DROP {existing.upper()} {quote(model)}")
    con.execute(f"ALTER {unit.relation} {quote(aside_name(model))} RENAME TO {quote(model)}")
