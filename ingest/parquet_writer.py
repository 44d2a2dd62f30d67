"""Write flattened batches as Parquet, one directory per table and dataset and run.

    PATH.data/<table>/<dataset slug>/<run_id>/part-<config>-<shard>-<source name>-<worker>.parquet
    (table: traces | full_traces; the paths are composed by foundation/layout.py)

Each ingest worker appends its batches of a shard (source file) to its own file, gathered into
row groups of at most ROW_GROUP_ROWS rows and ROW_GROUP_BYTES bytes of Arrow data: a worker's
batches arrive in order, so a row group holds consecutive batches of that worker, with ascending
source rows and min/max statistics on `source_row` (readers prune on them).

A run's files are invisible to readers until the run is committed in DuckDB (ingest_shards names
the files of every live shard); anything else found there is a leftover of an interrupted run, or
a shard replaced since, reclaimed by a later write (foundation/snapshots.py).
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mementos.foundation.layout import dataset_slug, run_dir

# Long texts: every value differs, so a dictionary never pays and min/max
# statistics never prune; skipping both makes the write cheaper.
LONG_TEXT = frozenset({"problem", "response", "sentences", "block_summaries"})


# DuckDB's memory for a scan grows with the number of row groups, so a row group per batch made a
# query's memory grow with the corpus; of the sizes measured (bench/RESULTS.md, "Row groups of 500
# traces") 500 rows kept it flattest. A worker holds a row group's rows until it writes them, so
# the bytes bound keeps that bounded whatever the traces' lengths.
ROW_GROUP_ROWS = 500
ROW_GROUP_BYTES = 32 << 20


class RunFileWriter:
    """One Parquet file of a run's table: batches appended in order, gathered into row groups
    of at most `max_rows` rows and `max_bytes` bytes (a single row larger than `max_bytes` is a
    row group of its own), the last one written by `close`."""

    def __init__(self, root: Path, table: str, dataset: str, run_id: str, name: str, schema: pa.Schema,
                 max_rows: int = ROW_GROUP_ROWS, max_bytes: int = ROW_GROUP_BYTES):
        directory = run_dir(root, table, dataset, run_id)
        directory.mkdir(parents=True, exist_ok=True)
        short = [f.name for f in schema if f.name not in LONG_TEXT]
        self.path = directory / f"part-{name}.parquet"
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self._pending: list[pa.Table] = []
        self._pending_rows = self._pending_bytes = 0
        self._sink = pa.OSFile(str(self.path), "wb")
        self._writer = pq.ParquetWriter(self._sink, schema, compression="zstd",
                                        use_dictionary=short, write_statistics=short)

    def write(self, table: pa.Table) -> None:
        """Append the rows; they reach the file when their row group is full, or at `close`."""
        for part in slices_within(table, self.max_rows, self.max_bytes):
            size = part.nbytes
            if self._pending and (self._pending_rows + part.num_rows > self.max_rows
                                  or self._pending_bytes + size > self.max_bytes):
                self._flush()
            self._pending.append(part)
            self._pending_rows += part.num_rows
            self._pending_bytes += size
        if self._pending_rows >= self.max_rows:
            self._flush()

    def close(self) -> None:
        """Write the last row group and the footer (the file is readable from then on)."""
        try:
            self._flush()
            self._writer.close()
        except BaseException:
            self.abandon()  # a full disk: don't keep the file open (nor the mount busy)
            raise
        self._sink.close()

    def abandon(self) -> None:
        """Close the file without writing what is pending: the run failed and its files are
        being removed (a footer that cannot be written, on a full disk, is let go)."""
        self._pending.clear()
        try:
            self._writer.close()
        except Exception:
            self._writer.is_open = False  # pyarrow's flag: else its __del__ tries the footer again
        finally:
            self._sink.close()

    def _flush(self) -> None:
        if self._pending_rows:
            group = pa.concat_tables(self._pending)
            self._writer.write_table(group, row_group_size=group.num_rows)
        self._pending.clear()
        self._pending_rows = self._pending_bytes = 0


def shard_files(directory: Path, part: str) -> list[Path]:
    """The files a shard wrote in a run's directory of one table: every worker's `part-<part>-<worker>.parquet`
    (RunFileWriter names them from the shard's part, ingest.shards.ToRead.part), sorted."""
    return sorted(directory.glob(f"part-{glob.escape(part)}-*.parquet"))


def slices_within(table: pa.Table, max_rows: int, max_bytes: int) -> list[pa.Table]:
    """The table as consecutive slices of at most max_rows rows and max_bytes bytes each
    (halved until they fit; a single row stays whole whatever its size)."""
    if not table.num_rows:
        return []
    if table.num_rows == 1 or (table.num_rows <= max_rows and table.nbytes <= max_bytes):
        return [table]
    half = max_rows if table.num_rows > max_rows else table.num_rows // 2
    return (slices_within(table.slice(0, half), max_rows, max_bytes)
            + slices_within(table.slice(half), max_rows, max_bytes))


def remove_run(root: Path, dataset: str, run_id: str) -> None:
    """A failed run's directories (and its dataset's, when that was all they held)."""
    for table_dir in root.iterdir() if root.exists() else ():
        slug_dir = table_dir / dataset_slug(dataset)
        shutil.rmtree(slug_dir / run_id, ignore_errors=True)
        try:
            slug_dir.rmdir()
        except OSError:  # missing, or another run of the dataset is there
            pass
