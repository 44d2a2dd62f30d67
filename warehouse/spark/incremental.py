"""Incremental models on Spark: DuckDB's incremental step (warehouse/materializations.py) on Parquet.

An incremental model's directory holds, beside its parts, `_processed/`: the inputs of the traces it
holds (its trace_inputs, by default (trace_id, run_id); Spark and DuckDB skip names starting with _),
written by every build of it. An incremental step writes the model's new directory from its current
one: its rows less those of the traces whose inputs are gone or changed, plus the rows of the traces
whose inputs are new, which are the model's SQL kept to their trace_ids (the trace-local contract,
with the model's trace_inputs, makes them the rows a whole build gives those traces). Inputs are
compared as sets, NULLs equal, as DuckDB's EXCEPT does.
The build then audits the new directory and swaps it in like any other (warehouse/spark/build.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from mementos.warehouse.batches import side_of
from mementos.warehouse.materializations import Increment, trace_inputs
from mementos.warehouse.models import Model
from mementos.warehouse.spark.layout import FileSystem

PROCESSED = "_processed"


@dataclass
class Frames:
    """What a build of a model writes: its rows and, for an incremental model, its processed pairs."""
    rows: object  # a DataFrame
    processed: object | None = None  # a DataFrame of the trace_inputs, or None for other kinds
    increment: Increment | None = None  # set when the step was incremental


def frames(spark, fs: FileSystem, model: Model, sql: str, current_dir: str, incremental: bool,
           inputs_sql: str | None = None) -> Frames:
    """The frames to write for `model` (its Spark SQL `sql`, its trace_inputs in Spark SQL `inputs_sql`):
    incremental from `current_dir` when the step is incremental and the directory has its processed
    inputs, whole otherwise."""
    if model.kind != "incremental":
        return Frames(spark.sql(sql))
    current_inputs = spark.sql(inputs_sql or trace_inputs(model))
    if not (incremental and fs.exists(f"{current_dir}/{PROCESSED}")):
        return Frames(spark.sql(sql), current_inputs)
    processed = spark.read.parquet(f"{current_dir}/{PROCESSED}")
    removed = processed.subtract(current_inputs)
    added = current_inputs.subtract(processed)
    whole, current, key = spark.sql(sql), spark.read.parquet(current_dir), side_of(model).key
    # a join on a column name puts it first: select the columns back into the model's order
    new = whole.join(added.select(key), key, "left_semi").select(*whole.columns)
    kept = current.join(removed.select(key), key, "left_anti").select(*whole.columns)
    still = processed.join(removed.select(key), key, "left_anti").select(*current_inputs.columns)
    return Frames(kept.unionByName(new), still.unionByName(added), Increment(added.count(), removed.count()))


def write(frames: Frames, directory: str) -> None:
    """Write the model's parts to `directory` and its processed pairs beside them."""
    frames.rows.write.option("compression", "zstd").parquet(directory)
    if frames.processed is not None:
        frames.processed.write.option("compression", "zstd").parquet(f"{directory}/{PROCESSED}")
