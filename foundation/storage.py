"""Who may write a warehouse, and how to open it.

A warehouse is two things side by side (warehouse.md, "On disk"):
  PATH               the published catalog: a DuckDB file of views over the Parquet files,
                     ingest_runs, models (foundation/snapshots.py publishes it)
  PATH.data/         the Parquet files, the snapshots, and the writer lock (held, with flock,
                     by the one process writing the warehouse)
Every path is composed by foundation/layout.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import resource  # at start-up: under `ulimit -v` the out-of-memory message could not load it later
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import errno

import duckdb

from mementos.foundation import catalog
from mementos.foundation.errors import WarehouseBusy, WarehouseError, first_line, no_warehouse
from mementos.foundation.faults import checkpoint
from mementos.foundation.layout import data_dir, lock_path, temp_dir

BASE_TABLES = catalog.VIEW_NAMES + ("ingest_runs",)
DUCKDB_MAGIC, MAGIC_OFFSET = b"DUCK", 8  # bytes 8-11 of every DuckDB database file


def not_duckdb(db: Path) -> str | None:
    """Why the file `db` is no DuckDB database ('an empty file', 'not a DuckDB file'), or None: its first
    bytes only, so a file of any size is judged without opening it in DuckDB. OSError if it cannot be read."""
    with open(db, "rb") as f:
        head = f.read(MAGIC_OFFSET + len(DUCKDB_MAGIC))
    if head[MAGIC_OFFSET:] == DUCKDB_MAGIC:
        return None
    return "not a DuckDB file" if head else "an empty file"


def main_relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables and views of the database's main schema, lower case: is it a warehouse (BASE_TABLES)?"""
    return {name for (name,) in con.execute(
        "SELECT lower(table_name) FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_catalog = current_database()").fetchall()}


def lacks_base_tables(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why the DuckDB database `con` is no warehouse, naming the base tables (BASE_TABLES) its main
    schema lacks and those of theirs it has; None when it has them all."""
    found = main_relations(con)
    missing = [t for t in BASE_TABLES if t not in found]
    if not missing:
        return None
    listed = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    own = [t for t in BASE_TABLES if t in found]
    return f"a DuckDB file without the tables {listed}" + (f"; it has its own {', '.join(own)}" if own else "")


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
    try:
        # O_NOFOLLOW: a planted symlink must not make the writer truncate the file it points to
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise WarehouseError(f"{path} is a symbolic link, not the warehouse's lock file; remove it "
                                 f"(`rm {path}`) and run the command again") from None
        raise WarehouseError(f"cannot write the warehouse {db}: {exc.strerror} ({path}); "
                             f"{_what_to_do(exc)}") from None
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


def _what_to_do(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system: copy the warehouse folder somewhere writable"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "you may read it but not write it: ask its owner, or copy the warehouse folder"
    if exc.errno == errno.ENOSPC:
        return "the disk is full: free some space and run the command again"
    return "check the folder and run the command again"


def is_locked(db: str | Path) -> bool:
    path = lock_path(db)
    if not path.is_file() or path.is_symlink():
        return False
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


MEMORY_LIMIT = os.environ.get("MEMENTOS_MEMORY_LIMIT", "600MB")  # DuckDB's buffer pool, per connection


def check_memory_limit(value: str | None = None) -> None:
    """Refuse a MEMENTOS_MEMORY_LIMIT DuckDB cannot take (`abc`, `0`, `0MB`), in one line, before a command
    opens the warehouse: DuckDB itself judges it, on a throwaway in-memory database."""
    value = MEMORY_LIMIT if value is None else value
    if not value:  # set but empty: DuckDB's own default, as connect does
        return
    with duckdb.connect() as con:
        try:
            con.execute("SET memory_limit = ?", [value])
            con.execute("SELECT sum(i) FROM range(100000) AS t(i)").fetchall()  # a limit too small to run a query fails here
            return
        except duckdb.OutOfMemoryException:
            why = "is too small for DuckDB to run any query"
        except duckdb.Error as exc:
            why = f"is not a size DuckDB accepts ({first_line(exc).split(': ', 1)[-1]})"
    raise WarehouseError(f"MEMENTOS_MEMORY_LIMIT={value!r} {why}: set it to a size such as 600MB or 2GB "
                         f"(DuckDB's buffer pool; 600MB when unset), or unset it")


def address_space_cap() -> int | None:
    """The cap on this process's address space or data segment in bytes (`ulimit -v`, `ulimit -d`), if any."""
    caps = [resource.getrlimit(which)[0] for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA)]
    caps = [cap for cap in caps if cap != resource.RLIM_INFINITY]
    return min(caps) if caps else None


# DuckDB's own pool is full: "failed to allocate data of size 32.0 KiB (8.0 KiB/0 bytes used)"; any other
# out-of-memory error of DuckDB's is the system refusing it memory ("Allocation failure", "bad allocation").
_POOL_FULL = re.compile(r"\([^()]*/[^()]* used\)")
# A shared library that cannot be mapped, or a thread that cannot start, for want of memory.
_NO_MEMORY = re.compile(r"failed to map segment|cannot allocate memory|can't start new thread", re.IGNORECASE)


def out_of_memory(exc: BaseException, limit: str | None = None) -> WarehouseError | None:
    """An out-of-memory error (DuckDB's, Python's MemoryError, a library or thread that cannot be loaded or
    started for want of memory) as one line saying what to change, or None for other errors.
    `limit`: the pool the failed query had, when the command set another than MEMORY_LIMIT."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, duckdb.OutOfMemoryException):
        first = text
    elif isinstance(exc, MemoryError):
        first = f"out of memory ({text})" if text else "out of memory"
    elif isinstance(exc, (ImportError, OSError, RuntimeError)) and _NO_MEMORY.search(text):
        first = f"out of memory ({text})"
    elif isinstance(exc, SystemError) and address_space_cap() is not None:
        # a C extension whose allocation failed without saying so (sqlglot's parser, under `ulimit -v`)
        first = f"out of memory, most likely ({type(exc).__name__}: {text})"
    else:
        return None
    pool = limit or MEMORY_LIMIT or "80% of RAM"
    cap = address_space_cap()
    if cap is not None and not _POOL_FULL.search(text):
        # The cap counts address space reserved, not memory used: DuckDB's threads, glibc's arenas and the
        # libraries reserve several times what is resident.
        return WarehouseError(f"{first}; this process may reserve only {cap / 2**30:.1f} GiB of address space "
                              f"(`ulimit -v` or `ulimit -d`), and DuckDB, Python and their threads reserve several "
                              f"times what they use: raise or remove that limit (to bound memory, use "
                              f"MEMENTOS_MEMORY_LIMIT, DuckDB's pool: {pool} here), and run the command again")
    if not isinstance(exc, duckdb.OutOfMemoryException):
        return WarehouseError(f"{first}; the machine has no memory to spare: free some (or ingest with fewer "
                              f"--workers; MEMENTOS_MEMORY_LIMIT lowers DuckDB's pool, {pool} here), and run "
                              f"the command again")
    return WarehouseError(f"{first}; DuckDB may use {pool} here (MEMENTOS_MEMORY_LIMIT): set it "
                          f"higher, e.g. MEMENTOS_MEMORY_LIMIT=2GB, and run the command again")


def refuse_backslash(db: Path) -> None:
    """DuckDB reads a backslash in a file path as a folder separator (as on Windows), so it would
    open another file than the one named."""
    if "\\" in str(db):
        raise WarehouseError(f"{db}: DuckDB reads the backslash in this path as a folder separator; "
                             f"choose a path without one")


def reader_temp_dir() -> Path:
    """Where a reader spills: outside the warehouse folder, one directory per process, since a read
    must leave the folder unchanged and two DuckDB instances must not share temp files."""
    return Path(tempfile.gettempdir()) / f"mementos-{os.getuid()}" / str(os.getpid())


def connect(db: str | Path, read_only: bool = True, warehouse: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file, turning lock and missing-file errors into plain messages.

    Every connection looks for the base views' Parquet files in the warehouse's
    folder first (see catalog), so the warehouse works from any working directory.
    `warehouse`: the warehouse PATH whose folder that is, when `db` is another file
    (the writer's staged snapshot, foundation/snapshots.py); it spills to the warehouse's
    temp directory. A reader spills outside the folder (reader_temp_dir).
    """
    db = Path(db)
    warehouse = Path(warehouse) if warehouse is not None else db
    refuse_backslash(warehouse)
    if read_only and not db.exists():
        raise no_warehouse(db)
    try:
        spill = reader_temp_dir() if read_only else temp_dir(warehouse)
        # DuckDB creates the spill directory when it first spills, but not its parents
        spill.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(db), read_only=read_only, config={"temp_directory": str(spill)})
    except duckdb.ConnectionException:  # open in this process with another configuration: share it
        con = duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseBusy(_lock_conflict(db, str(exc), read_only)) from None
        raise WarehouseError(f"cannot open the warehouse {db}: {exc}") from None
    # Insertion order is never relied on (every table has its ordering columns), and
    # keeping it costs memory and time on big results.
    con.execute("SET preserve_insertion_order = false")
    # DuckDB estimates the base views at a fifth of their traces (it cannot see through the
    # unnest of each trace's segments), so its build-side optimizer turned joins around to hash
    # the segment texts, which made outlier_traces hold several times the memory it needs.
    con.execute("SET disabled_optimizers = 'build_side_probe_side'")
    # The base views span every live shard's files, so every query that reads them opened every file's
    # footer again; DuckDB keeps the footers it read instead (a file is never changed in place: a run
    # writes new ones), so that a build or an append pays for them once per process.
    con.execute("SET parquet_metadata_cache = true")
    # DuckDB's buffer pool defaults to most of the machine, and a full-scale build then takes
    # what it is given. Beyond the limit DuckDB spills; the models are written so that what cannot
    # spill (quantile states) stays small. The default keeps a margin over the smallest limit the
    # full-scale build has passed under, once (bench/RESULTS.md). With the batched models
    # (warehouse/batches.py) and the pool emptied between them (release_memory) the build's memory
    # barely grows with the corpus; DuckDB's vectors and Python sit outside the pool.
    # MEMENTOS_MEMORY_LIMIT sets it.
    if MEMORY_LIMIT:
        con.execute("SET memory_limit = ?", [MEMORY_LIMIT])
    # The base views name their Parquet files relative to the warehouse's folder
    # (so it can be moved): look there first, then where relative paths usually resolve.
    search = [str(warehouse.resolve().parent), os.getcwd()]
    con.execute("SET file_search_path = ?", [",".join(dict.fromkeys(search))])
    return con


EVICT_TO = "1MB"  # the limit release_memory sets for a moment, to evict all it can


class Transaction:
    """An open transaction of `transaction`; `roll_back` ends it early (nothing is committed then)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con, self.open = con, True

    def roll_back(self) -> None:
        self.con.execute("ROLLBACK")
        self.open = False


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, before_commit: str):
    """BEGIN; the block; the crash point `before_commit` (foundation/faults.py); COMMIT. Any exception,
    an interrupt too, rolls the transaction back and goes on."""
    con.execute("BEGIN TRANSACTION")
    tx = Transaction(con)
    try:
        yield tx
        if tx.open:
            checkpoint(before_commit)
            con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # no transaction left: rolled back already, or a COMMIT that failed (a full disk) ended it
        raise


def release_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Empty DuckDB's buffer pool of what no query holds and give it back to the system, on a
    connection with the pool every command has (connect); between the steps of a long job.

    Lowering the pool's limit makes DuckDB evict every unpinned block: a table's blocks it
    read (dropped, as they are on disk) and the blocks of tables written in an open
    transaction (spilled to PATH.tmp, read back when needed). Otherwise they stay until the
    pool is full, so a later query starts from a fuller pool the larger the corpus: in the
    build, after memento_retention's batches, 258-283 MiB at 228,557 traces against 192 at
    20,000; 150-181 and 143 with the eviction. Setting the limit back, even to the
    value it had, makes DuckDB flush its allocator too (jemalloc keeps the pages a query
    freed for the next one: after the export's plan at full scale RSS 294 -> 223 MiB)."""
    value = MEMORY_LIMIT or con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    # The limit is the database's, so another connection to it can set it. A limit below what
    # is pinned fails (after evicting the rest), and a failed statement aborts the open
    # transaction of its connection: the build's, were it set on `con`.
    with con.cursor() as other:
        try:
            other.execute("SET memory_limit = ?", [EVICT_TO])
        except duckdb.OutOfMemoryException:
            pass  # a little is pinned at times between the build's statements; the rest is evicted
        other.execute("SET memory_limit = ?", [value])


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


def ensure_schema(con: duckdb.DuckDBPyConnection, db: str | Path) -> bool:
    """`ingest_runs` (with its run_seq and shard counters), `ingest_shards`, and the base views (over the
    live shards' files: none until a run is committed) when they are missing; on the writer's staged
    snapshot of the warehouse `db`. Whether it created the views."""
    catalog.check_not_legacy(con, Path(db))
    catalog.ensure_ingest_runs(con)
    catalog.ensure_ingest_shards(con)
    [(views,)] = con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal AND view_name = 'traces' "
                             "AND database_name = current_database()").fetchall()
    if not views:
        root = data_dir(db)
        catalog.create_views(con, root, catalog.live_files(con, root))
    return not views
