"""Where a warehouse lives on disk, who may write it, and how to open it.

A warehouse is three things side by side:
  PATH               the DuckDB file (tables users query)
  PATH_data/ (stem)  Parquet files, one directory per table (see warehouse.md)
  PATH.lock          held (flock) by the one process writing the warehouse
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb

from warehouse.errors import WarehouseBusy, WarehouseError  # noqa: F401  (re-exported)

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_SQL = REPO_ROOT / "sql" / "schema.sql"
BASE_TABLES = ("traces", "segments", "parse_issues", "full_traces", "sentences", "full_blocks", "ingest_runs")


def data_dir(db: str | Path) -> Path:
    """The Parquet directory beside the DuckDB file: warehouse.duckdb -> warehouse_data/."""
    db = Path(db)
    return db.with_name(db.stem + "_data")


def lock_path(db: str | Path) -> Path:
    return Path(str(db) + ".lock")


def _holder(db: str | Path) -> str:
    try:
        info = json.loads(lock_path(db).read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return f"`{info.get('command', '?')}` (pid {info.get('pid', '?')}, since {since})"


def busy_message(db: str | Path) -> str:
    return f"the warehouse {db} is being written by {_holder(db)}; retry when it finishes"


@contextmanager
def write_lock(db: str | Path, command: str):
    """Hold the warehouse's writer lock for the whole of a write command.

    The lock is an flock, so a process killed with SIGKILL releases it; the
    JSON inside only tells others who holds it.
    """
    path = lock_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WarehouseBusy(busy_message(db)) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"command": command, "pid": os.getpid(), "since": time.time()}).encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_locked(db: str | Path) -> bool:
    path = lock_path(db)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# Bulk loads (ingest's one big transaction). Defaults keep a whole uncommitted
# `traces` row group (122,880 rows of ~40 KB responses) and every written block
# in memory: RSS grew with the corpus (2.6 GB for 20,000 traces). Row groups of
# 16,384 rows are written to the file as they fill (optimistic writes), one at a
# time, and a memory limit lets DuckDB drop what is written: ~500 MB whatever the
# corpus, for the same CPU (bench/RESULTS.md). Layout only: the rows are the same.
# (8,192 made the inserts 2 s faster at 20,000 traces and the checkpoint at
# close 2 s slower: the same load time.)
#
# Every writer attaches with the same row group size: a checkpoint under the
# default size merges the small row groups into big ones, rewriting every base
# table. That was the first `build` after each ingest: 2 s and 2.3 GB at 20,000
# traces, 10 GB at 100,000 (bench/RESULTS.md).
ROW_GROUP_ROWS = 16384
BULK_MEMORY_LIMIT = "384MB"


def connect(db: str | Path, read_only: bool = True, bulk: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, turning lock and missing-file errors into plain messages.

    Writers attach the file with the row group size ingest writes (see
    ROW_GROUP_ROWS); `bulk=True` (loading a lot at once) also bounds memory.
    """
    db = Path(db)
    if read_only and not db.exists():
        raise WarehouseError(f"no warehouse at {db}; create one with `mementos ingest SOURCE --db {db}`")
    try:
        con = None if read_only else _connect_writer(db, bulk)
        if con is None:
            con = duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseBusy(_lock_conflict(db, str(exc), read_only)) from None
        raise WarehouseError(f"cannot open the warehouse {db}: {exc}") from None
    # Segment text is large: insertion order is never relied on (every table has
    # its ordering columns), and keeping it costs memory and time on big loads.
    con.execute("SET preserve_insertion_order = false")
    return con


def _connect_writer(db: Path, bulk: bool) -> duckdb.DuckDBPyConnection | None:
    """A writer attached with ROW_GROUP_ROWS; None if this process has the file open already."""
    config = {"temp_directory": str(db) + ".tmp"}  # where a file database spills anyway
    if bulk:
        config["memory_limit"] = BULK_MEMORY_LIMIT
    con = duckdb.connect(config=config)
    try:
        quoted = str(db).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS warehouse (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
    except duckdb.IOException:  # another process holds the file: the caller reports it
        con.close()
        raise
    except duckdb.Error:  # attached by another connection of this process: share it, with defaults
        con.close()
        return None
    con.execute("USE warehouse")
    if bulk:
        con.execute("SET write_buffer_row_group_count = 1")
        con.execute("SET write_buffer_row_group_memory_limit = '64MB'")
    return con


def _lock_conflict(db: Path, error: str, read_only: bool) -> str:
    """Who holds DuckDB's file lock, in words: a mementos writer by name, else the pid DuckDB reports."""
    pid = re.search(r"\(PID (\d+)\)", error)
    other = f"another process (pid {pid.group(1)})" if pid else "another process"
    if read_only and is_locked(db):
        return busy_message(db)
    if read_only:
        return f"the warehouse {db} is being written by {other}; retry when it finishes"
    # A writer holds the writer lock itself, so the conflict is a process that has the file
    # open (a query, report or export, or a DuckDB shell): never name ourselves as the writer.
    return (f"the warehouse {db} is open in {other}, e.g. a query, report or export still reading it; "
            f"retry when it finishes")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA_SQL.read_text())


def base_schemas() -> dict[str, "pyarrow.Schema"]:
    """Arrow schemas of the base tables, read from sql/schema.sql (the one definition)."""
    con = duckdb.connect()
    try:
        ensure_schema(con)
        return {t: con.sql(f"SELECT * FROM {t} LIMIT 0").to_arrow_table().schema for t in BASE_TABLES}
    finally:
        con.close()
