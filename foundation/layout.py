"""Every path of a warehouse, composed in one place (warehouse.md, "On disk").

A warehouse `PATH` (any file name, e.g. om.duckdb) is, side by side in one folder:

    PATH                     the DuckDB file: base views, ingest_runs, models, model_builds
    PATH.wal                 DuckDB's write-ahead log
    PATH.tmp/                DuckDB's temp (spill) directory
    PATH.lock                the writer lock (an flock; the JSON inside says who holds it)
    PATH.data/               the Parquet files:
      <table>/<dataset slug>/<run_id>/part-<config>-<worker>.parquet   (table: traces | full_traces)
      _spool/<dataset slug>/<run_id>/   batches on their way to an ingest worker
      models/<model>/                   Spark-built models (`build --engine spark`)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SPOOL = "_spool"  # PATH.data/_spool/<dataset slug>/<run_id>/
MODELS_SUBDIR = "models"  # PATH.data/models/<model>/ (ingest's remove_stale_runs leaves it alone)


def data_dir(db: str | Path) -> Path:
    """The Parquet directory beside the DuckDB file: warehouse.duckdb -> warehouse.duckdb.data/.

    Named after the whole file name, so `w.duckdb` and `w.db` in one folder never share one.
    """
    db = Path(db)
    return db.with_name(db.name + ".data")


def lock_path(db: str | Path) -> Path:
    return Path(str(db) + ".lock")


def wal_path(db: str | Path) -> Path:
    return Path(str(db) + ".wal")


def temp_dir(db: str | Path) -> Path:
    """Where DuckDB spills for a writer of this warehouse (and where a file database spills anyway)."""
    return Path(str(db) + ".tmp")


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
