"""The worker side of ingest: batches in, rows appended to the worker's Parquet files, counts out.

Each worker writes one file per stored table and shard (source file) it was given batches of
(`part-<config>-<shard number>-<source name>-<worker>.parquet`): a batch of the next shard closes
the files of the last one, as a worker's batches arrive in order. A file holds one shard's rows
so that a later ingest can keep, replace or drop a shard by its files (ingest.shards). Batches
are gathered into row groups of up to 500 rows (ingest.parquet_writer); `finish` writes the last
row groups and closes the files (their footers make them readable).

Kept apart from `ingest.pipeline` so that a spawned worker imports only what it
runs (Arrow, the parser, the flattener, the tokenizer), not DuckDB or `datasets`:
~40 MB less per worker (bench/RESULTS.md).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc

from mementos.foundation.faults import checkpoint
from mementos.ingest import parquet_writer
from mementos.ingest.flatten import BatchOrigin, Flattened, flatten_default, flatten_full


@dataclass(frozen=True)
class Spooled:
    """A batch written as an Arrow IPC file, for a worker to map instead of unpickling it."""

    path: str

    @classmethod
    def write(cls, table: pa.Table, path: Path) -> "Spooled":
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        return cls(str(path))

    def read(self) -> pa.Table:
        table = pa.ipc.open_file(pa.memory_map(self.path)).read_all()  # zero-copy: buffers keep the map
        os.unlink(self.path)  # the mapping outlives the name
        return table


@dataclass(frozen=True)
class Task:
    config: str
    seq: int
    batch: pa.Table | Spooled
    origin: BatchOrigin
    part: str  # the shard's part of its files' names (ingest.shards.ToRead.part)


# Per-process state of the workers, set once by init_worker.
_WORKER: dict = {}


def init_worker(root: str, with_tokens: bool, schemas: dict[str, pa.Schema] | None = None, worker_id: int = 0) -> None:
    _exit_with_parent()
    reuse_freed_memory()
    # Schemas come from the ingest process: a worker that opens no DuckDB is smaller.
    _WORKER.clear()
    _WORKER.update(root=Path(root), with_tokens=with_tokens,
                   schemas=schemas or _base_schemas(), worker_id=worker_id, writers={}, part=None)


# glibc's malloc hands each batch's NumPy arrays back to the kernel when they are freed and faults
# the pages in again for the next batch, so a worker spent much of its time in the kernel. Keeping
# up to this much freed memory for reuse roughly halves that with the same peak RSS
# (bench/flatten_only.py --workers 1).
_MALLOC_KEEP_BYTES = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def reuse_freed_memory() -> None:
    """Ask glibc to keep freed memory for the next batch (a no-op where there is no glibc)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, _MALLOC_KEEP_BYTES)
    except (OSError, AttributeError):
        pass


def _exit_with_parent() -> None:
    """In a worker: exit as soon as the ingest process dies, even by SIGKILL.

    Without this, a killed ingest leaves its workers blocked forever on the task
    queue (each holds the queue's write end, so they never see EOF), holding the
    batches in memory and the terminal's pipes open.
    """
    parent = multiprocessing.parent_process()
    if parent is None:  # workers=0: this is the ingest process itself
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def process(task: Task) -> Flattened:
    w = _WORKER
    batch = task.batch.read() if isinstance(task.batch, Spooled) else task.batch
    if task.config == "default":
        flat = flatten_default(batch, task.origin, w["schemas"], w["with_tokens"])
    else:
        flat = flatten_full(batch, task.origin, w["schemas"])
    if w["part"] != task.part:  # a batch of the next shard: the last shard's files are complete
        finish()
        w["part"] = task.part
    for table_name, table in flat.tables.items():
        writer = w["writers"].get(table_name)
        if writer is None:
            writer = w["writers"][table_name] = parquet_writer.RunFileWriter(
                w["root"], table_name, task.origin.dataset, task.origin.run_id, f"{task.part}-{w['worker_id']}",
                table.schema)
        writer.write(table)
    checkpoint("ingest.worker_write")  # in a worker process: the worker dies, the ingest must fail cleanly
    flat.tables = {}  # the files are written; don't ship the data back
    del batch
    pa.default_memory_pool().release_unused()  # give the batch's memory back: RSS stays one batch high
    return flat


def finish(complete: bool = True) -> None:
    """Close the worker's files: with their last row groups, or (complete=False, the run failed)
    without writing what is still pending."""
    writers = _WORKER.get("writers") or {}
    while writers:
        writer = writers.popitem()[1]
        if complete:
            writer.close()
        else:
            writer.abandon()


def worker_main(worker_id: int, initargs: tuple, tasks, results) -> None:
    """A worker process's loop: a Task at a time until None, then close the files and say so."""
    init_worker(*initargs, worker_id=worker_id)
    while True:
        task = tasks.get()
        if task is None:
            try:
                finish()  # writes the last row groups: a full disk can fail here too
            except BaseException as exc:
                _put_error(results, -1, exc)
                return
            results.put(("closed", worker_id, None))
            return
        try:
            results.put(("done", task.seq, process(task)))
        except BaseException as exc:
            _put_error(results, task.seq, exc)


def _put_error(results, seq: int, exc: BaseException) -> None:
    """Hand the exception to the ingest process, which re-raises it."""
    try:
        results.put(("error", seq, exc))
    except Exception:  # not picklable: keep its words
        results.put(("error", seq, RuntimeError(f"{type(exc).__name__}: {exc}")))


def _base_schemas() -> dict[str, pa.Schema]:
    from mementos.foundation.catalog import store_schemas  # DuckDB: only when the ingest process did not pass them

    return store_schemas()
