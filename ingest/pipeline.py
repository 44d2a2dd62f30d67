"""`run_ingest`: sources -> parser -> flattener -> Parquet writer -> commit (views over the files).

The main process streams Arrow batches from the source and hands each to a
worker process, which parses, flattens, counts tokens and writes the batch's
Parquet files itself, so both cores work and only the input batch crosses a
process boundary. At most two batches per worker are in flight, which keeps
memory flat however large the corpus. The worker's side is `ingest.worker`.

The batch crosses as an Arrow IPC file in the run's `_spool` directory that the
worker memory-maps and deletes: one copy, where pickling it through the pool's
pipe cost four and was the main process's largest cost (bench/RESULTS.md).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
import uuid
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa

from mementos.foundation import catalog, disk, layout, published, snapshots, storage
from mementos.foundation.catalog import IngestRun, Shard
from mementos.foundation.faults import checkpoint
from mementos.ingest import adapters, loader, parquet_writer, shard_reader, shards, sources, spark_executor
from mementos.ingest.flatten import Flattened
from mementos.ingest.parser import PARSER_VERSION
from mementos.foundation.tokens import ENCODING
from mementos.ingest.worker import Spooled, Task
from mementos.ingest.worker_pool import InProcess, WorkerPool

BATCH_ROWS = 125
# Source rows (both configs) up to which an ingest with the default --workers runs the workers' code
# in its own process: starting worker processes (an interpreter each, Arrow, the tokenizer) costs more
# than parsing this many rows on one core, and a daily shard of a grown source is about this size.
IN_PROCESS_ROWS = 2_000
ENGINES = ("local", "spark")


@dataclass
class IngestSummary(IngestRun):
    """What an ingest did: its row of ingest_runs (the counters, by the same names), the warehouse it
    wrote, and what the workers counted. `seconds` is the whole command's, publishing included."""

    db: str = ""
    issue_counts: Counter = field(default_factory=Counter)
    flagged_by_config: Counter = field(default_factory=Counter)  # 'default' | 'full' -> flagged rows
    counts: Counter = field(default_factory=Counter)  # rows of the derived tables written (reconciliation)
    why_full: str = ""  # why every shard was read ('' when only new and changed ones were)
    rejected: list = field(default_factory=list)  # (source_file, source_row, reason) of every rejected row
    rejected_counts: Counter = field(default_factory=Counter)  # reason -> rejected rows
    adapted_rows: int = 0  # source rows of the default config (an adapted row gives any number of traces)
    engine: str = "local"  # 'local' | 'spark' (ingest/spark_executor.py)
    shards_resumed: int = 0  # shards an earlier, unfinished Spark run of the same plan had finished
    worker_peak_bytes: int = 0  # the largest peak RSS of a Spark task's Python worker

    def record_rejected(self, source_file: str, rejected: list[tuple[int, str]], rows: int) -> None:
        """An adapted batch of `rows` source rows, of which `rejected` (source_row, reason) became no trace."""
        self.rejected.extend((source_file, r, reason) for r, reason in rejected)
        self.rejected_counts.update(reason for _, reason in rejected)
        self.rows_rejected += len(rejected)
        self.adapted_rows += rows

    def add(self, config: str, flat: Flattened) -> None:
        """The counters of rows the workers flattened in `config`."""
        self.rows_read += flat.rows
        self.rows_ok += flat.ok
        self.rows_flagged += flat.flagged
        self.rows_unsegmented += flat.unsegmented
        self.input_bytes += flat.input_bytes
        self.issue_counts.update(flat.issue_counts)
        self.flagged_by_config[config] += flat.flagged
        self.counts.update(flat.counts)
        if config == "default":
            self.default_rows += flat.rows
        else:
            self.full_rows += flat.rows

    def finish_counts(self) -> None:
        """rows_read counts source rows (an adapted row may give several traces, or none), and the
        rejected rows per reason as ingest_runs keeps them."""
        if self.adapted_rows:
            self.rows_read = self.adapted_rows + self.full_rows
        self.rejected_reasons = json.dumps(dict(sorted(self.rejected_counts.items())))

    def to_dict(self) -> dict:
        """Every field by name, for --json (a Counter becomes a plain dict; dataclasses.asdict would
        count a Counter's items instead of copying it); the rejected rows by reason, not one by one."""
        return {f.name: dict(value) if isinstance(value := getattr(self, f.name), Counter) else value
                for f in fields(self) if f.name != "rejected"}


def _batches(plan: shards.ShardPlan, config: str, limit: int | None, first_row: int, dataset: str,
             run_id: str, read_rows: dict[int, list[int]], spec: adapters.InputSpec,
             summary: "IngestSummary") -> Iterator[Task]:
    """The batches of the shards `plan` reads in `config`, as trace records (ingest/adapters.py), numbered
    on from `first_row`; counts each shard's source rows and traces in `read_rows` (by its position in plan.read),
    and the rows that became no trace in `summary.rejected`. `limit`: source rows in all."""
    row = first_row
    seqs = itertools.count()
    for position, shard in enumerate(plan.read):
        if shard.source.config != config:
            continue
        counted = read_rows[position] = [0, 0]  # source rows, traces
        left = None if limit is None else limit - row
        yield from shard_reader.shard_tasks(shard.source, shard.part, row, left, BATCH_ROWS, (dataset, run_id), spec,
                                            summary.record_rejected, counted, seqs)
        row += counted[0]
        if limit is not None and row >= limit:
            return


def run_ingest(source: str, db: str | Path, config: str = "default", name: str | None = None,
               limit: int | None = None, with_tokens: bool = True, workers: int | None = None,
               progress: bool = True, on_event: Callable[[str], None] | None = None,
               full_refresh: bool = False, spec: adapters.InputSpec | None = None,
               engine: str = "local", spark_master: str | None = None) -> IngestSummary:
    """Ingest SOURCE into the warehouse at `db` as the dataset `name`, atomically: its shards already
    ingested and unchanged are kept, the others read (ingest.shards); `full_refresh` (and `limit`)
    read every shard and number the rows from 0. `spec` says the input shape (detected from the
    columns when None or its format is None). `engine`: 'local' (worker processes) or 'spark' (a task
    per shard on `spark_master`, ingest/spark_executor.py)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown ingest engine {engine!r}: use one of {', '.join(ENGINES)}")
    spec = spec or adapters.InputSpec()
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).replace(tzinfo=None)
    dataset = sources.dataset_name(name, source)
    files = sources.resolve(source, config)  # errors about the source come before anything is touched
    sources.check_db(files, db)
    run_id = started_at.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    with snapshots.writing(db, f"ingest {source} --name {dataset}", repairing=dataset) as writer:
        db, root = writer.db, writer.root
        summary = IngestSummary(run_id=run_id, dataset=dataset, source=source, config=config, started_at=started_at,
                                parser_version=PARSER_VERSION, token_encoding=ENCODING if with_tokens else None,
                                db=str(db), engine=engine)
        free_before = disk.free_bytes(root)
        reading = True  # a Spark run keeps the shards it finished until its reading is done (a rerun resumes)
        try:
            checkpoint("ingest.start")
            plan, first_rows = _plan(writer, dataset, files, full_refresh, limit)
            if engine == "spark":
                read_rows = spark_executor.read_shards(writer, plan, first_rows, summary, limit, spec, spark_master)
            else:
                spark_executor.drop_unfinished(root, dataset)
                read_rows = _read_local(writer, plan, first_rows, summary, limit, spec, workers, progress)
            reading = False
            live = _record(summary, plan, first_rows, read_rows, root)
            summary.finish_counts()
            checkpoint("ingest.before_load")
            with writer.stage() as stage:  # published when the block ends: readers see the run from then on
                loader.load_run(stage.con, root, summary, summary.counts, live)
            checkpoint("ingest.after_commit")
            if engine == "spark":
                spark_executor.forget_run(root, dataset, summary.run_id)
        except BaseException as exc:
            if engine == "local" or not reading:
                parquet_writer.remove_run(root, dataset, summary.run_id)  # _worker_pool removed its spool already
            disk.raise_if_full(exc, root, free_before,
                               done="the warehouse is unchanged (this run's files were removed)")
            raise
    summary.seconds = time.monotonic() - started
    return summary


def _read_local(writer: snapshots.Writer, plan: shards.ShardPlan, first_rows: dict[str, int],
                summary: IngestSummary, limit: int | None, spec: adapters.InputSpec, workers: int | None,
                progress: bool) -> dict[int, list[int]]:
    """Read the shards of `plan` with worker processes (or in this one); returns each shard's
    [source rows, traces] by its position in plan.read."""
    root, dataset, run_id = writer.root, summary.dataset, summary.run_id
    if plan.read:  # marked first: only what this warehouse wrote is ever reclaimed
        for table in catalog.STORES:
            snapshots.mark_run(layout.run_dir(root, table, dataset, run_id), writer.warehouse_id, run_id)
    read_rows: dict[int, list[int]] = {}
    with_tokens = summary.token_encoding is not None
    with _worker_pool(_workers_for(plan, workers), (str(root), with_tokens, catalog.store_schemas()),
                      layout.run_dir(root, layout.SPOOL, dataset, run_id)) as (pool, spool):
        for cfg in sources.configs_for(summary.config):
            if not any(r.source.config == cfg for r in plan.read):
                continue
            total = sum(r.source.rows or 0 for r in plan.read if r.source.config == cfg) or None
            if total is not None and limit is not None:
                total = min(total, limit)
            tasks = _batches(plan, cfg, limit, first_rows[cfg], dataset, run_id, read_rows, spec, summary)
            pool.what = f"the {cfg} config of {dataset!r}"
            _run_config(cfg, tasks, pool, spool, summary, progress, total)
    return read_rows


def _plan(writer: snapshots.Writer, dataset: str, files: list[sources.SourceFile], full_refresh: bool,
          limit: int | None) -> tuple[shards.ShardPlan, dict[str, int]]:
    """What to read, from the published catalog's state of `dataset`, and the first source row of
    each config's new shards."""
    published_files = (published.manifest(writer.db, writer.seq) or {}).get("files", {}) if writer.seq else {}

    def intact(shard: Shard) -> bool:
        return all((writer.root / f).is_file() and (writer.root / f).stat().st_size == published_files.get(f)
                   for f in shard.files)

    previous: list[Shard] = []
    if writer.db.exists():
        with storage.connect(writer.db, read_only=True) as con:
            run = catalog.current_runs(con).get(dataset)
            previous = catalog.shards_of_run(con, run) if run else []
            plan = shards.plan(files, previous, intact, full_refresh, limit)
            first_rows = {cfg: 0 if plan.full_refresh else catalog.next_row(con, dataset, cfg)
                          for cfg in sources.CONFIGS}
            return plan, first_rows
    return shards.plan(files, previous, intact, full_refresh, limit), dict.fromkeys(sources.CONFIGS, 0)


def _record(summary: IngestSummary, plan: shards.ShardPlan, first_rows: dict[str, int],
            read_rows: dict[int, list[int]], root: Path) -> list[Shard]:
    """The dataset's shards after this run (kept, then read, in order), its counters set on `summary`."""
    read: dict[str, list[Shard]] = {"added": [], "replaced": []}
    next_rows = dict(first_rows)
    for position, r in enumerate(plan.read):
        if position not in read_rows:  # --limit was reached before it
            continue
        (rows, traces), cfg = read_rows[position], r.source.config
        directory = layout.run_dir(root, "traces" if cfg == "default" else "full_traces", summary.dataset,
                                   summary.run_id)
        files = [f"{directory.relative_to(root).as_posix()}/{f.name}"
                 for f in parquet_writer.shard_files(directory, r.part)]
        read[r.kind].append(Shard(cfg, r.path, r.size, r.content_hash, rows, next_rows[cfg], summary.run_id, files,
                                   traces))
        next_rows[cfg] += rows
    summary.full_refresh, summary.why_full = plan.full_refresh, plan.why_full
    summary.shards_added, summary.rows_added = len(read["added"]), sum(s.rows for s in read["added"])
    summary.shards_replaced, summary.rows_replaced = len(read["replaced"]), sum(s.rows for s in read["replaced"])
    summary.shards_removed, summary.rows_removed = len(plan.removed), sum(s.rows for s in plan.removed)
    summary.shards_unchanged, summary.rows_unchanged = len(plan.unchanged), sum(s.rows for s in plan.unchanged)
    return plan.unchanged + sorted(read["added"] + read["replaced"], key=lambda s: (s.config, s.first_row))


def _workers_for(plan: shards.ShardPlan, workers: int | None) -> int:
    """Worker processes for reading `plan`: `workers` when given; by default one per core, or none (the
    ingest process itself) when the rows to read are known and few (IN_PROCESS_ROWS)."""
    if workers is not None:
        return workers
    rows = [r.source.rows for r in plan.read]
    if all(n is not None for n in rows) and sum(rows) <= IN_PROCESS_ROWS:
        return 0
    return os.cpu_count() or 1


@contextmanager
def _worker_pool(workers: int, initargs: tuple, spool: Path) -> Iterator[tuple[InProcess | WorkerPool, Path]]:
    """The workers of a run, started on first use and shared by its configs, with the spool directory the
    batches cross by; closed (every file complete) when the block ends, stopped and the spool removed when
    it fails."""
    pool = InProcess(initargs) if workers == 0 else WorkerPool(workers, initargs, "the source")
    if workers > 0:
        spool.mkdir(parents=True, exist_ok=True)
    try:
        yield pool, spool
        pool.close()
    except BaseException:
        # Stop the workers before the caller removes the run's directory: a worker still
        # writing after that would leave a part of it behind.
        pool.abort()
        shutil.rmtree(spool, ignore_errors=True)  # batches no worker took
        _remove_spool(spool)
        raise
    _remove_spool(spool)


def _run_config(cfg: str, tasks: Iterator[Task], pool: InProcess | WorkerPool, spool: Path,
                summary: IngestSummary, progress: bool, total: int | None) -> None:
    from tqdm import tqdm

    workers = 0 if isinstance(pool, InProcess) else pool.workers
    in_flight: deque[int] = deque()
    bar = tqdm(total=total, unit=" traces", unit_scale=True, disable=not progress, desc=f"ingest {cfg}",
               dynamic_ncols=True, leave=True)
    t0 = time.monotonic()
    config_bytes = 0

    def collect(seq: int) -> None:
        nonlocal config_bytes
        flat: Flattened = pool.result(seq)
        summary.add(cfg, flat)
        config_bytes += flat.input_bytes
        bar.update(flat.rows)
        bar.set_postfix_str(f"{config_bytes / 1e6 / max(time.monotonic() - t0, 1e-9):.1f} MB/s")
        checkpoint("ingest.mid_write")  # a batch's files are written, others are still in flight

    try:
        for task in tasks:
            if workers > 0:
                task = replace(task, batch=Spooled.write(task.batch, spool / f"{cfg}-{task.seq:06d}.arrow"))
            pool.submit(task)
            in_flight.append(task.seq)
            del task
            pa.default_memory_pool().release_unused()
            while len(in_flight) >= max(2 * workers, 1):
                collect(in_flight.popleft())
        while in_flight:
            collect(in_flight.popleft())
    finally:
        bar.close()


def _remove_spool(spool: Path) -> None:
    """The run's spool directory and its parents up to PATH.data, when empty (every worker deleted its file)."""
    for directory in (spool, spool.parent, spool.parent.parent):
        try:
            directory.rmdir()
        except FileNotFoundError:  # removed already (a failed run's directory goes first)
            continue
        except OSError:  # not empty: another dataset's run is spooling
            return
