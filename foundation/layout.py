"""Every path of a warehouse, composed in one place (warehouse.md, "On disk").

A warehouse `PATH` (any file name, e.g. om.duckdb) is, side by side in one folder:

    PATH                     the published catalog (a DuckDB file: base views, ingest_runs, models,
                             model_builds): a hard link to the newest snapshot below
    PATH.data/               everything else, written only by the one writer:
      _warehouse.json                   whose folder this is (the warehouse id), written first
      _writer.lock                      the writer lock (an flock; the JSON inside says who holds it)
      _snapshots/<seq>.duckdb, .json    the catalogs published so far and still kept, and what each names
      _tmp/                             the writer's DuckDB spill directory
      <table>/<dataset slug>/<run_id>/part-<config>-<worker>.parquet   (table: traces | full_traces)
      <table>/<dataset slug>/<run_id>/_mementos_run.json   the marker: written by this warehouse
      _spool/<dataset slug>/<run_id>/   batches on their way to an ingest worker
      _spark_ingest/<dataset slug>/<run_id>/   a Spark ingest's plan and its finished shards' markers
      models/<model>/                   Spark-built models (`build --engine spark`)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

SPOOL = "_spool"  # PATH.data/_spool/<dataset slug>/<run_id>/
SPARK_STATE = "_spark_ingest"  # PATH.data/_spark_ingest/<dataset slug>/<run_id>/ (ingest/spark_executor.py)
MODELS_SUBDIR = "models"  # PATH.data/models/<model>/


def data_dir(db: str | Path) -> Path:
    """The Parquet directory beside the DuckDB file: warehouse.duckdb -> warehouse.duckdb.data/.

    Named after the whole file name, so `w.duckdb` and `w.db` in one folder never share one.
    A symlinked DuckDB file is resolved here, so every path composed from it (the lock, the
    spill directory, the snapshots, the views' file names) is the real warehouse's.
    """
    db = Path(db)
    if db.is_symlink():
        db = db.resolve()
    return db.with_name(db.name + ".data")


WAREHOUSE_MARKER = "_warehouse.json"  # PATH.data/_warehouse.json
RUN_MARKER = "_mementos_run.json"  # in every run directory ingest creates
SNAPSHOTS = "_snapshots"


def lock_path(db: str | Path) -> Path:
    """The writer lock, inside the data directory: readers never create it."""
    return data_dir(db) / "_writer.lock"


def wal_path(db: str | Path) -> Path:
    """DuckDB's write-ahead log of a database file (readers and the snapshot writer leave none)."""
    return Path(str(db) + ".wal")


def temp_dir(db: str | Path) -> Path:
    """Where DuckDB spills for the writer of this warehouse; emptied when a write starts."""
    return data_dir(db) / "_tmp"


def warehouse_marker(db: str | Path) -> Path:
    return data_dir(db) / WAREHOUSE_MARKER


def snapshot_dir(db: str | Path) -> Path:
    return data_dir(db) / SNAPSHOTS


def snapshot_file(db: str | Path, seq: int) -> Path:
    """The catalog of snapshot `seq` (PATH is a hard link to the published one)."""
    return snapshot_dir(db) / f"{seq:08d}.duckdb"


def snapshot_manifest(db: str | Path, seq: int) -> Path:
    """What snapshot `seq` names: its run directories and their files with sizes."""
    return snapshot_dir(db) / f"{seq:08d}.json"


@dataclass(frozen=True)
class OwnPart:
    """A file or folder of a warehouse, which no command may write over or into."""

    path: Path
    what: str  # as a message names it: "the warehouse's writer lock"
    tree: bool  # everything below it is the warehouse's too


def own_parts(db: str | Path) -> list[OwnPart]:
    """Every file and folder the warehouse `db` owns: the catalog and its write-ahead log beside it, and
    the data folder with all it holds (the lock and the spill folder are named apart, for messages)."""
    db = Path(db)
    return [
        OwnPart(db, "DuckDB file", False),
        OwnPart(wal_path(db), "write-ahead log", False),
        OwnPart(lock_path(db), "writer lock", False),
        OwnPart(temp_dir(db), "DuckDB temp directory", True),
        OwnPart(data_dir(db), "Parquet directory", True),
    ]


def dataset_slug(dataset: str) -> str:
    """A directory name for any dataset name: readable part + hash, so distinct names never collide."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset).strip("._")[:60] or "dataset"
    return f"{readable}-{hashlib.blake2b(dataset.encode(), digest_size=4).hexdigest()}"


def run_key(dataset: str, run_id: str) -> str:
    """'<dataset slug>/<run_id>': a run's directory below its table's directory."""
    return f"{dataset_slug(dataset)}/{run_id}"


def run_dir(root: Path, table: str, dataset: str, run_id: str) -> Path:
    """root/<table>/<dataset slug>/<run_id>, `root` being the data directory."""
    return root / table / dataset_slug(dataset) / run_id
