"""How a model becomes a relation in DuckDB: one named unit per way of building, and the swap they share.

Each unit creates the model's new relation aside, under `aside_name(model)`, inside the
build's transaction; the engine (warehouse/engine.py) audits it there, then `swap_in`
drops the old relation and renames the new one into its place, as dbt-duckdb's table
materialisation does. A model picks its unit by its header (`for_model`): a view, a
table, or a table built a batch of traces at a time (warehouse/batches.py). A new kind
of model is one more unit here and one more line in `for_model`.

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
from mementos.warehouse.batches import batch_queries, trace_batches
from mementos.warehouse.models import Model

ASIDE_PREFIX = "__build_"  # NAME is built as __build_NAME, then renamed to NAME


def aside_name(model: str) -> str:
    """The relation a model is built into before it is swapped in."""
    return ASIDE_PREFIX + model


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
    """The table a batch of traces at a time, each batch's memory released before the next."""
    batches = trace_batches(con, model.batch_traces)
    if not batches:
        _create_table(con, db, model, views, aside)
        return
    for i, sql in enumerate(batch_queries(con, db, model, views, batches)):
        con.execute(f"CREATE TABLE {quote(aside)} AS\n{sql}" if i == 0 else f"INSERT INTO {quote(aside)}\n{sql}")
        storage.release_memory(con)


VIEW = Materialization("view", "VIEW", _create_view)
TABLE = Materialization("table", "TABLE", _create_table)
BATCHED_TABLE = Materialization("batched table", "TABLE", _create_batched_table)


def for_model(model: Model) -> Materialization:
    if model.kind == "view":
        return VIEW
    return BATCHED_TABLE if model.batch_traces else TABLE


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
