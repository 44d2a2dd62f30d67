"""Incremental models on Spark: DuckDB's incremental step (warehouse/materializations.py) on Parquet.

An incremental model's directory holds, beside its parts, `_processed/`: the (trace_id, run_id) of
the traces it holds (Spark and DuckDB skip names starting with _), written by every build of it. An
incremental step writes the model's new directory from its current one: its rows less those of the
pairs gone from `traces`, plus the rows of the pairs new since, which are the model's SQL kept to
their trace_ids (the trace-local contract makes them the rows a whole build gives those traces).
The build then audits the new directory and swaps it in like any other (warehouse/spark/build.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from mementos.warehouse.materializations import Increment
from mementos.warehouse.models import Model
from mementos.warehouse.spark.layout import FileSystem

PROCESSED = "_processed"
PAIR = ["trace_id", "run_id"]


@dataclass
class Frames:
    """What a build of a model writes: its rows and, for an incremental model, its processed pairs."""
    rows: object  # a DataFrame
    processed: object | None = None  # a DataFrame of (trace_id, run_id), or None for other kinds
    increment: Increment | None = None  # set when the step was incremental


def frames(spark, fs: FileSystem, model: Model, sql: str, current_dir: str, incremental: bool) -> Frames:
    """The frames to write for `model` (its Spark SQL `sql`): incremental from `current_dir` when the
    step is incremental and the directory has its processed pairs, whole otherwise."""
    if model.kind != "incremental":
        return Frames(spark.sql(sql))
    pairs = spark.sql("SELECT trace_id, run_id FROM traces")
    if not (incremental and fs.exists(f"{current_dir}/{PROCESSED}")):
        return Frames(spark.sql(sql), pairs)
    processed = spark.read.parquet(f"{current_dir}/{PROCESSED}")
    removed = processed.join(pairs, PAIR, "left_anti")
    added = pairs.join(processed, PAIR, "left_anti")
    whole, current = spark.sql(sql), spark.read.parquet(current_dir)
    # a join on a column name puts it first: select the columns back into the model's order
    new = whole.join(added.select("trace_id"), "trace_id", "left_semi").select(*whole.columns)
    kept = current.join(removed.select("trace_id"), "trace_id", "left_anti").select(*whole.columns)
    return Frames(kept.unionByName(new), processed.join(removed, PAIR, "left_anti").unionByName(added),
                  Increment(added.count(), removed.count()))


def write(frames: Frames, directory: str) -> None:
    """Write the model's parts to `directory` and its processed pairs beside them."""
    frames.rows.write.option("compression", "zstd").parquet(directory)
    if frames.processed is not None:
        frames.processed.write.option("compression", "zstd").parquet(f"{directory}/{PROCESSED}")
