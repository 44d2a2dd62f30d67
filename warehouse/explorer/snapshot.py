"""Which snapshot the explorer reads, and the connection its requests share.

Every request asks `Warehouse.reading()` for a connection. It looks at the published catalog PATH
(one stat): while PATH is the file the explorer opened, the request gets a cursor of the open
snapshot, with its caches warm; once a write has published a new snapshot, the next request opens
that one. A request under way keeps reading the snapshot it started on (on Linux an open file
outlives its replacement), so an ingest or build running meanwhile never breaks a page.

The snapshot is opened by its own name, PATH.data/_snapshots/<seq>.duckdb (PATH is a hard link
to it): DuckDB shares one database instance among the connections of a process to one path, so a
second `connect(PATH)` while the first is open would return the snapshot the first one saw.
Every snapshot is locked down as `mementos sql` is (warehouse/query.py, `lock_down`): no file
outside the warehouse's data directory can be read or written, and no statement can undo that.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import duckdb

from mementos.foundation import layout, published, snapshots, storage
from mementos.foundation.errors import WarehouseError
from mementos.warehouse.query import lock_down

REMEMBERED = 8  # text searches, and orders of lists, remembered per snapshot
# DuckDB's pool for the pages' queries and the console's (MEMENTOS_MEMORY_LIMIT, when set, decides): a page reads one
# trace's row group, or streams a column for a text search, so the pool is mostly a cache of what was read.
POOL = "300MB"
INDEX_POOL = "200MB"  # the trace index's in-memory database


@dataclass
class Snapshot:
    """One published snapshot, open: `con` is only a parent for the requests' cursors."""
    db: Path  # the warehouse PATH
    key: tuple[int, int]  # (device, inode) of its catalog
    con: duckdb.DuckDBPyConnection
    seq: int | None  # None for a catalog written in place (before snapshots)
    users: int = 0
    superseded: bool = False
    cache: dict = field(default_factory=dict)  # what the explorer computed once for this snapshot
    recent: dict = field(default_factory=dict)  # kind -> OrderedDict of the last results of that kind
    lock: threading.Lock = field(default_factory=threading.Lock)
    locks: dict = field(default_factory=dict)  # name -> the lock its computation holds

    @property
    def root(self) -> Path:
        return layout.data_dir(self.db)

    def cached(self, name: str, compute):
        """`compute()` once per snapshot: one request computes it, the others asking for it wait."""
        with self.lock:
            lock = self.locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self.cache:
                self.cache[name] = compute()
            return self.cache[name]

    def remembered(self, kind: str, key, compute, keep: int = REMEMBERED):
        """`compute()`, or its result for the same `key` if it is among the last `keep` of its `kind` (a text
        search, a list's order), so that paging or stepping through a list does not compute it again."""
        with self.lock:
            recent = self.recent.setdefault(kind, OrderedDict())
            if key in recent:
                recent.move_to_end(key)
                return recent[key]
        value = compute()
        with self.lock:
            recent[key] = value
            while len(recent) > keep:
                recent.popitem(last=False)
        return value


def _catalog_key(db: Path) -> tuple[int, int]:
    try:
        st = os.stat(db)
    except FileNotFoundError:
        raise WarehouseError(f"no warehouse at {db} any more (was it moved or deleted?)") from None
    return st.st_dev, st.st_ino


def _snapshot_file(db: Path, key: tuple[int, int]) -> Path:
    """The name under PATH.data/_snapshots/ of the catalog file whose (device, inode) is `key`; PATH itself
    for a catalog written in place."""
    folder = layout.snapshot_dir(db)
    try:
        names = sorted(folder.glob("*.duckdb"), reverse=True)  # the newest first: the published one, usually
    except OSError:
        names = []
    for path in names:
        try:
            st = path.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == key:
            return path
    return db


def open_snapshot(db: Path) -> Snapshot:
    """The snapshot published now, opened read-only, checked whole (published.verify) and locked down."""
    key = _catalog_key(db)
    path = _snapshot_file(db, key)
    con = storage.connect(path, read_only=True, warehouse=db)
    try:
        info = published.verify(con, db)
        # Options of the connection's own session, made the database's, so that the requests' cursors have
        # them too: once locked down, no connection can set any (the views' relative file names need the
        # search path).
        if "MEMENTOS_MEMORY_LIMIT" not in os.environ:
            con.execute("SET memory_limit = ?", [POOL])
        [(search,)] = con.execute("SELECT current_setting('file_search_path')").fetchall()
        con.execute("SET GLOBAL file_search_path = ?", [search])
        con.execute("SET enable_progress_bar = false")
        lock_down(con, db)
    except BaseException:
        con.close()
        raise
    return Snapshot(db, key, con, info.seq if info is not None else None)


class Warehouse:
    """The warehouse the explorer serves, at its last published snapshot."""

    def __init__(self, db: str | Path):
        self.db = snapshots.resolve(Path(db))
        self._current: Snapshot | None = None
        self._lock = threading.Lock()

    def current(self) -> Snapshot:
        """The published snapshot, opened anew when a write has published another since the last request."""
        key = _catalog_key(self.db)
        with self._lock:
            if self._current is None or self._current.key != key:
                previous, self._current = self._current, open_snapshot(self.db)
                if previous is not None:
                    previous.superseded = True
                    self._close_if_unused(previous)
            self._current.users += 1
            return self._current

    @contextmanager
    def reading(self) -> Iterator[tuple[Snapshot, duckdb.DuckDBPyConnection]]:
        """(snapshot, a cursor of it) for one request; the cursor is closed after."""
        snap = self.current()
        try:
            cursor = snap.con.cursor()
            try:
                yield snap, cursor
            finally:
                cursor.close()
        finally:
            with self._lock:
                snap.users -= 1
                self._close_if_unused(snap)

    def _close_if_unused(self, snap: Snapshot) -> None:
        # closing a connection closes its cursors: a superseded snapshot waits for its last request
        if snap.superseded and snap.users == 0:
            snap.con.close()
            for value in snap.cache.values():
                if hasattr(value, "close"):  # the trace index's in-memory database
                    value.close()

    def close(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current.superseded = True
                self._close_if_unused(self._current)
                self._current = None
