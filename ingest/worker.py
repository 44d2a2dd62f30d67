"""The worker side of ingest: one batch in, its Parquet files written, counts out.

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

from ingest import parquet_writer
from ingest.flatten import BatchOrigin, Flattened, flatten_default, flatten_full
from warehouse.faults import checkpoint


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


# Per-process state of the workers, set once by init_worker.
_WORKER: dict = {}


def init_worker(root: str, with_tokens: bool, trace_by_hash: dict[str, str],
                schemas: dict[str, pa.Schema] | None = None) -> None:
    _exit_with_parent()
    # Schemas come from the ingest process: a worker that opens no DuckDB is ~30 MB smaller.
    _WORKER.update(root=Path(root), with_tokens=with_tokens, trace_by_hash=trace_by_hash,
                   schemas=schemas or _base_schemas())


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
        flat = flatten_default(batch, task.origin, w["schemas"], w["with_tokens"],
                               keep_hashes=w["trace_by_hash"] is not None)
    else:
        flat = flatten_full(batch, task.origin, w["schemas"], w["trace_by_hash"] or {})
    parquet_writer.write_tables(w["root"], task.origin.dataset, task.origin.run_id, task.config, task.seq, flat.tables)
    checkpoint("ingest.worker_write")  # in a worker process: the worker dies, the ingest must fail cleanly
    flat.tables = {}  # the files are written; don't ship the data back
    del batch
    pa.default_memory_pool().release_unused()  # give the batch's memory back: RSS stays one batch high
    return flat


def _base_schemas() -> dict[str, pa.Schema]:
    from warehouse.catalog import store_schemas  # DuckDB: only when the ingest process did not pass them

    return store_schemas()
