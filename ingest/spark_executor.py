"""Ingest on Spark: a task per shard (source file) on the executors, the driver records and publishes.

Each task reads its shard itself with the local ingest's reader (ingest/shard_reader.py), in
batches capped in bytes (BATCH_BYTES of decoded Arrow data, whatever the traces' lengths), and
runs the local ingest's worker code (ingest/worker.py) on them: the same parser, its fast path,
the token counts and the same Parquet files, written straight into the run's directories. Only
shard descriptors go to the executors and counters come back: no trace crosses the JVM, so
Spark's Arrow batch sizes never apply. The warehouse folder must therefore be on a filesystem
every executor and the driver share.

A task's memory is bounded by what it holds at once, not by its shard's size: one read of
BATCH_BYTES, its flattened rows, and the row groups its Parquet writers gather
(ingest/parquet_writer.py bounds those in bytes too); an executor runs as many tasks at once as
it has cores. Each task returns its Python worker's peak RSS, and the run the largest.

Resuming. The run's directories get their reclaim marker (foundation/snapshots.py) only once
every shard is read, so a killed run leaves them for a rerun rather than for reclamation. A task
writes its shard's marker, PATH.data/_spark_ingest/<dataset slug>/<run_id>/<part>.json with its
counters and files, only after those files are closed; beside them, plan.json says what the run
reads. A rerun whose plan is the same (same shards, content hashes, first rows and options)
takes over the unfinished run, its run id included, and runs only the shards without a marker
(their partial files are removed first); a rerun with another plan removes the unfinished run.
Remote sources and --limit have no content hashes: such a run is not resumable, and a failure
removes its files as the local ingest does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path

from mementos.foundation import catalog, durable, layout, snapshots
from mementos.foundation.errors import WarehouseError
from mementos.foundation.tokens import ENCODING
from mementos.ingest import adapters, parquet_writer
from mementos.ingest.parser import PARSER_VERSION
from mementos.ingest.shards import ShardPlan, ToRead
from mementos.ingest.spark_task import BATCH_ROWS, ShardJob, ShardResult, ingest_shard

PLAN_FILE = "plan.json"
STATE_FORMAT = 1
CONF = {"spark.speculation": "false"}  # two attempts of one shard would write the same files


def read_shards(writer: snapshots.Writer, plan: ShardPlan, first_rows: dict[str, int], summary,
                limit: int | None, spec: adapters.InputSpec, master: str | None) -> dict[int, list[int]]:
    """Ingest the shards of `plan` on Spark (`master`; None: spark-submit's, else local[*]), resuming an
    unfinished run of the same plan; sets the counters on `summary` (pipeline.IngestSummary) as the local
    ingest does, and its run_id to the run taken over. Returns each shard's [source rows, traces] by position."""
    root, dataset = writer.root, summary.dataset
    jobs = _jobs(plan, first_rows, limit, summary, spec, root)
    resumable = bool(jobs) and all(plan.read[j.position].content_hash for j in jobs)
    state = None
    if resumable:
        summary.run_id, state = _take_over(root, dataset, summary.run_id, _fingerprint(plan, jobs, summary, spec))
        jobs = [replace(j, run_id=summary.run_id, state=str(state), run_dirs=_run_dirs(root, dataset, summary.run_id))
                for j in jobs]
    else:
        drop_unfinished(root, dataset)
    done = _finished(root, state, jobs)
    try:
        results = list(done.values()) + _run(master, [j for j in jobs if j.position not in done], dataset)
    except BaseException:
        if not resumable:
            parquet_writer.remove_run(root, dataset, summary.run_id)
        raise
    for table in catalog.STORES if jobs else ():  # every shard is read: reclamation owns the run's directories now
        snapshots.mark_run(layout.run_dir(root, table, dataset, summary.run_id), writer.warehouse_id,
                           summary.run_id)
    return _summed(results, plan, summary, len(done))


def _jobs(plan: ShardPlan, first_rows: dict[str, int], limit: int | None, summary, spec: adapters.InputSpec,
          root: Path) -> list[ShardJob]:
    """A job per shard to read, its first row numbered on from the config's earlier shards (as the local
    ingest numbers them); with --limit, the shards it reaches, the last one cut."""
    with_tokens, schemas = summary.token_encoding is not None, catalog.store_schemas()
    next_row, jobs = dict(first_rows), []
    for position, shard in enumerate(plan.read):
        cfg = shard.source.config
        rows = shard.source.rows if shard.source.rows is not None else _count_rows(shard, spec)
        left = None if limit is None else limit - (next_row[cfg] - first_rows[cfg])
        if left is not None and left <= 0:
            continue
        jobs.append(ShardJob(position, shard.source, shard.part, next_row[cfg], left, str(root), summary.dataset,
                             summary.run_id, with_tokens, schemas, spec,
                             _run_dirs(root, summary.dataset, summary.run_id), None))
        next_row[cfg] += rows if left is None else min(rows, left)
    return jobs


def _run_dirs(root: Path, dataset: str, run_id: str) -> tuple[str, ...]:
    return tuple(str(layout.run_dir(root, table, dataset, run_id)) for table in catalog.STORES)


def _count_rows(shard: ToRead, spec: adapters.InputSpec) -> int:
    """A shard's source rows, where its file does not say (JSON Lines): read once on the driver, since
    the next shard's rows are numbered on from them."""
    from mementos.ingest import sources

    check = adapters.schema_check(spec, shard.source.config)
    return sum(t.num_rows for t in sources.read_batches(shard.source, BATCH_ROWS, check=check))


def _fingerprint(plan: ShardPlan, jobs: list[ShardJob], summary, spec: adapters.InputSpec) -> dict:
    """What decides a run's files: a rerun with the same fingerprint may keep the shards it finished."""
    shards = [[j.part, s.path, s.size, s.content_hash, j.first_row, j.max_rows]
              for j in jobs for s in [plan.read[j.position]]]
    return json.loads(json.dumps({"format": STATE_FORMAT, "dataset": summary.dataset, "parser": PARSER_VERSION,
                                  "tokens": ENCODING if summary.token_encoding else None, "spec": asdict(spec),
                                  "shards": shards}))


def _state_base(root: Path, dataset: str) -> Path:
    return root / layout.SPARK_STATE / layout.dataset_slug(dataset)


def _take_over(root: Path, dataset: str, run_id: str, fingerprint: dict) -> tuple[str, Path]:
    """The unfinished run of the same plan (its id and marker folder), or a new one; unfinished runs
    of other plans are removed."""
    base = _state_base(root, dataset)
    for state in sorted(base.iterdir()) if base.is_dir() else ():
        try:
            same = json.loads((state / PLAN_FILE).read_bytes()) == fingerprint
        except (OSError, ValueError):
            same = False
        if same and not _reclaimable(root, dataset, state.name):
            return state.name, state
        _drop(root, dataset, state)
    state = base / run_id
    state.mkdir(parents=True, exist_ok=True)
    durable.write_whole(state / PLAN_FILE, json.dumps(fingerprint, indent=1).encode())
    return run_id, state


def _reclaimable(root: Path, dataset: str, run_id: str) -> bool:
    """Does a run directory of `run_id` have the reclaim marker (its reading finished: it is reclamation's)?"""
    return any((layout.run_dir(root, t, dataset, run_id) / layout.RUN_MARKER).exists() for t in catalog.STORES)


def _drop(root: Path, dataset: str, state: Path) -> None:
    """An unfinished run's files and markers (a finished run's files are left to reclamation)."""
    if not _reclaimable(root, dataset, state.name):
        for table in catalog.STORES:
            shutil.rmtree(layout.run_dir(root, table, dataset, state.name), ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)


def drop_unfinished(root: Path, dataset: str) -> None:
    """The unfinished Spark runs of `dataset` (an ingest that does not take one over leaves none behind)."""
    base = _state_base(root, dataset)
    for state in sorted(base.iterdir()) if base.is_dir() else ():
        _drop(root, dataset, state)


def forget_run(root: Path, dataset: str, run_id: str) -> None:
    """After the run is published: its markers are no longer needed."""
    shutil.rmtree(_state_base(root, dataset) / run_id, ignore_errors=True)
    for directory in (_state_base(root, dataset), root / layout.SPARK_STATE):
        try:
            directory.rmdir()
        except OSError:  # missing, or holds another dataset's unfinished run
            return


def _finished(root: Path, state: Path | None, jobs: list[ShardJob]) -> dict[int, ShardResult]:
    """The shards of `jobs` an earlier attempt of this run finished: a marker, and its files as it says."""
    done = {}
    for job in jobs if state is not None else ():
        try:
            result = ShardResult.from_json((state / f"{job.part}.json").read_bytes())
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if result.position == job.position and all(
                (root / f).is_file() and (root / f).stat().st_size == size for f, size in result.files.items()):
            done[job.position] = result
    return done


def _summed(results: list[ShardResult], plan: ShardPlan, summary, resumed: int) -> dict[int, list[int]]:
    """Add every shard's counters to `summary` in the shards' order (the rejected rows keep SOURCE's order)."""
    read_rows = {}
    for result in sorted(results, key=lambda r: r.position):
        source = plan.read[result.position].source
        summary.add(source.config, result.flat)
        if source.config == "default":
            summary.record_rejected(source.path, [tuple(r) for r in result.rejected], result.adapted_rows)
        read_rows[result.position] = list(result.counted)
        summary.worker_peak_bytes = max(summary.worker_peak_bytes, result.peak_bytes)
    summary.shards_resumed = resumed
    return read_rows


# ---------------------------------------------------------------------------
# The driver's side of Spark


def _run(master: str | None, jobs: list[ShardJob], dataset: str) -> list[ShardResult]:
    """Run `jobs` as one Spark job, a task each; re-raises the first error a task reported."""
    if not jobs:
        return []
    spark, started_here = _session(master)
    try:
        sc = spark.sparkContext
        sc.setJobDescription(f"mementos ingest {dataset}: {len(jobs)} shards")
        results = sc.parallelize(jobs, len(jobs)).map(ingest_shard).collect()
    except Exception as exc:
        if type(exc).__name__ not in ("Py4JJavaError", "PythonException", "SparkRuntimeException"):
            raise
        raise WarehouseError(
            f"Spark could not ingest {dataset!r} ({_task_error(exc)}); the warehouse is unchanged. Run the same "
            f"command again: the shards that finished are kept and only the others are read") from None
    finally:
        if started_here:
            spark.stop()
    for result in results:
        if result.error is not None:
            raise result.error
    return results


def _session(master: str | None):
    """The active SparkSession (a test's), else a new one on `master` (None: the master spark-submit
    set, else local[*]); and whether it was started here (then it is stopped after the ingest)."""
    from pyspark.sql import SparkSession

    from mementos.foundation.spark_session import spark_session

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit started the JVM and says so
    if master is None and not under_spark_submit:
        master = "local[*]"
    # Local executors run this interpreter, where mementos is installed; a cluster's say theirs.
    if master is not None and master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return spark_session(master, CONF, app_name="mementos ingest"), True


def _task_error(exc: Exception) -> str:
    """Why the job failed, in a line: the failing task's Python error (the last line of its traceback),
    else the task's failure as Spark words it ("Python worker exited unexpectedly (crashed)")."""
    text = str(exc)
    python = re.findall(r"^(\w+(?:Error|Exception|Interrupt): .+)$", text, re.M)
    if python:
        return python[-1].strip()
    failure = re.search(r"most recent failure: .*?\): (?:[\w.$]+: )?(.+?)(?: Consider |$)", text, re.M)
    if failure:
        return failure.group(1).strip().rstrip(".")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
