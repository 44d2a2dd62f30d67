"""The executor's side of ingest on Spark (ingest/spark_executor.py): a task reads one shard.

Kept apart from the driver's side so that a task imports only what it runs (Arrow, the reader,
the parser, the flattener, the tokenizer), not DuckDB, as ingest/worker.py is.
"""

from __future__ import annotations

import itertools
import json
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from mementos.foundation import durable
from mementos.foundation.errors import WarehouseError
from mementos.foundation.faults import checkpoint
from mementos.ingest import adapters, parquet_writer, shard_reader, worker
from mementos.ingest.flatten import Flattened
from mementos.ingest.sources import SourceFile

# Decoded Arrow bytes a task reads at a time: a trace is tens of KB, so Spark's default Arrow batch of
# 10,000 rows would be hundreds of MB per Python worker; this keeps a read to a few hundred traces.
BATCH_BYTES = 8 << 20
BATCH_ROWS = 125  # and never more rows than the local ingest's batches


@dataclass(frozen=True)
class ShardJob:
    """What one Spark task ingests: a shard, where its rows start, and where its files go."""

    position: int  # in plan.read
    source: SourceFile
    part: str  # its files' names (ingest.shards.ToRead.part)
    first_row: int
    max_rows: int | None  # --limit: source rows of the shard to read (None: all)
    root: str  # the warehouse's data folder, as every executor sees it
    dataset: str
    run_id: str
    with_tokens: bool
    schemas: dict
    spec: adapters.InputSpec
    run_dirs: tuple[str, ...]  # the run's directory of each stored table: where its files go
    state: str | None  # the folder of the shard markers (None: the run is not resumable)


@dataclass
class ShardResult:
    """A shard's counters, as its task returns them and its marker keeps them."""

    position: int
    part: str
    flat: Flattened = field(default_factory=lambda: Flattened(tables={}))
    counted: list = field(default_factory=lambda: [0, 0])  # source rows, traces
    rejected: list = field(default_factory=list)  # [source_row, reason]
    adapted_rows: int = 0
    files: dict = field(default_factory=dict)  # path relative to the data folder -> bytes
    peak_bytes: int = 0  # the task's Python worker's peak RSS
    seconds: float = 0.0
    error: Exception | None = None  # a SourceError or other WarehouseError, re-raised by the driver

    def reject(self, source_file: str, rejected: list, rows: int) -> None:
        self.rejected.extend([r, reason] for r, reason in rejected)
        self.adapted_rows += rows

    def to_json(self) -> bytes:
        flat = {k: v for k, v in vars(self.flat).items() if k != "tables"}
        body = {k: v for k, v in vars(self).items() if k not in ("flat", "error")}
        return json.dumps({**body, "flat": flat}, default=dict).encode()

    @classmethod
    def from_json(cls, text: bytes) -> "ShardResult":
        body = json.loads(text)
        flat = body.pop("flat")
        flat.update(issue_counts=Counter(flat["issue_counts"]), counts=Counter(flat["counts"]))
        return cls(**body, flat=Flattened(tables={}, **flat))


def ingest_shard(job: ShardJob) -> ShardResult:
    """Read, parse, flatten and write one shard, then its marker; runs in a Spark task."""
    started = time.monotonic()
    _remove_files(job)  # an earlier attempt's, when there was one
    worker.init_worker(job.root, job.with_tokens, job.schemas, worker_id=0)
    result = ShardResult(job.position, job.part)
    batch_rows = shard_reader.rows_per_read(job.source, BATCH_BYTES, BATCH_ROWS)
    try:
        for task in shard_reader.shard_tasks(job.source, job.part, job.first_row, job.max_rows, batch_rows,
                                             (job.dataset, job.run_id), job.spec, result.reject, result.counted,
                                             itertools.count(), BATCH_BYTES):
            result.flat.add(worker.process(task))
            checkpoint(f"ingest.spark_shard.{job.part}")  # some of the shard's rows are written
        worker.finish()
    except WarehouseError as exc:  # the source's fault: said as the local ingest says it
        worker.finish(complete=False)
        _remove_files(job)
        result.error = exc
        return result
    except BaseException:
        worker.finish(complete=False)
        _remove_files(job)
        raise
    root, files = Path(job.root), _files(job)
    for f in files if job.state is not None else ():  # on the disk before the marker that vouches for them
        durable.fsync_file(f)
    result.files = {f.relative_to(root).as_posix(): f.stat().st_size for f in files}
    result.peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result.seconds = time.monotonic() - started
    pa.default_memory_pool().release_unused()
    if job.state is not None:  # only now: the files it names are complete
        durable.write_whole(Path(job.state) / f"{job.part}.json", result.to_json())
    return result


def _files(job: ShardJob) -> list[Path]:
    """The shard's Parquet files in the run's directories."""
    return [f for directory in job.run_dirs for f in parquet_writer.shard_files(Path(directory), job.part)]


def _remove_files(job: ShardJob) -> None:
    """The shard's marker and files, of an attempt that failed or did not finish."""
    if job.state is not None:
        (Path(job.state) / f"{job.part}.json").unlink(missing_ok=True)
    for f in _files(job):
        f.unlink(missing_ok=True)
