"""One shard (source file) as the worker's tasks: read, cut into batches, adapted to trace records.

Both engines read a shard through `shard_tasks`: the local ingest in its own process, handing each
task to a worker; the Spark ingest inside the executor's task that owns the shard
(ingest/spark_executor.py), so that rows are numbered, adapted and rejected the same way in both.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pyarrow as pa

from mementos.ingest import adapters, parquet_writer, sources
from mementos.ingest.flatten import BatchOrigin
from mementos.ingest.worker import Task

Rejected = Callable[[str, list, int], None]  # (source file, [(source_row, reason)], source rows adapted)


def shard_tasks(source: sources.SourceFile, part: str, first_row: int, max_rows: int | None, batch_rows: int,
                origin: tuple[str, str], spec: adapters.InputSpec, on_rejected: Rejected, counted: list[int],
                seqs: Iterator[int], max_bytes: int | None = None) -> Iterator[Task]:
    """The tasks of one shard, the file `source` (`part`: its files' names, ingest.shards.ToRead.part):
    its source rows numbered from `first_row`, at most `max_rows` of them (None: all), in batches of at
    most `batch_rows` rows and, when given, `max_bytes` bytes (a single row larger than that is a batch
    of its own). `origin`: (dataset, run_id). Adds the source rows and the traces read to `counted`
    ([rows, traces]) and reports each batch's rejected rows to `on_rejected`."""
    config = source.config
    dataset, run_id = origin
    row = first_row
    for read in sources.read_batches(source, batch_rows, check=adapters.schema_check(spec, config)):
        if max_rows is not None and row - first_row + read.num_rows > max_rows:
            read = read.slice(0, max_rows - (row - first_row))
        for batch in _capped(read, batch_rows, max_bytes):
            batch_first, row = row, row + batch.num_rows
            counted[0] += batch.num_rows
            if config == "default" and batch.num_rows:
                adapted = adapters.adapt(batch, spec, batch_first)
                on_rejected(source.path, adapted.rejected, batch.num_rows)
                batch = adapted.table
            counted[1] += batch.num_rows
            if batch.num_rows:
                yield Task(config, next(seqs), batch, BatchOrigin(dataset, run_id, source.path, batch_first), part)
        if max_rows is not None and row - first_row >= max_rows:
            return


def _capped(table: pa.Table, batch_rows: int, max_bytes: int | None) -> list[pa.Table]:
    if max_bytes is None:
        return [table]
    return parquet_writer.slices_within(table, batch_rows, max_bytes)


def rows_per_read(sf: sources.SourceFile, max_bytes: int, most: int) -> int:
    """Rows to read at a time from `sf` so that a read holds about `max_bytes` of decoded Arrow data,
    from a Parquet file's own sizes (its row groups' uncompressed bytes per row); `most` for other files."""
    if sf.builder != "parquet":
        return most
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(sf.path).metadata
        decoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    except Exception:  # unreadable: its error comes when it is read
        return most
    per_row = decoded / max(meta.num_rows, 1)
    return max(1, min(most, int(max_bytes // max(per_row, 1))))
