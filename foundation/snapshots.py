"""Snapshots: readers never wait for a writer (warehouse.md, "Snapshots").

A write never changes a file that a reader may have open. The one writer (under the
writer lock) copies the published catalog PATH to PATH.data/_snapshots/<seq>.duckdb,
changes the copy (views over new run directories, new model tables), checkpoints and
closes it, writes <seq>.json (every file the snapshot names, with its size), and
publishes it with one rename: a hard link to it, made beside PATH, replaces PATH.
A reader opens PATH and keeps the catalog it opened (on Linux an open file outlives its
replacement); DuckDB's lock on that file, which every connection takes, read-only ones
too, tells a later writer the reader is still there.

Reclamation, at the start and the end of every write: a superseded snapshot goes when no
process holds a lock on its catalog and it was superseded at least GRACE seconds ago (a
reader between opening PATH and locking it is not seen); then, of the run directories this
warehouse provably wrote (a deleted snapshot named it, or its marker carries this warehouse's
id), every one that no kept snapshot names is deleted, and in the others every Parquet file no
kept snapshot names (a shard replaced or removed since). Nothing else is ever deleted.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import json
import os
import shutil
import struct
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb

from mementos.foundation import catalog, durable, layout, published, storage
from mementos.foundation.errors import WarehouseError, not_a_warehouse
from mementos.foundation.faults import checkpoint

FORMAT = 2  # 1: the DuckDB file written in place, before snapshots
GRACE_ENV = "MEMENTOS_RECLAIM_GRACE"
DEFAULT_GRACE = 10.0  # seconds


def grace_seconds() -> float:
    raw = os.environ.get(GRACE_ENV, "").strip()
    if not raw:
        return DEFAULT_GRACE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise WarehouseError(f"{GRACE_ENV}={raw!r} is not a number of seconds; unset it or give e.g. {GRACE_ENV}=10")
    return value


def resolve(db: str | Path) -> Path:
    """The warehouse's path with a symlinked file resolved, once: the data directory, the lock
    and the views are all composed from the real file's name and folder."""
    db = Path(db)
    return db.resolve() if db.is_symlink() else db


# ---------------------------------------------------------------------------
# The writer


def check_writable(db: Path, repairing: str | None = None) -> tuple[published.Info | None, bool]:
    """Refuse, before anything is written, a PATH or PATH.data that is not this warehouse's, or a
    damaged snapshot (verify; `repairing`: the dataset an ingest replaces).
    Returns the published snapshot's Info (None: none yet, or written in place) and whether
    the data directory must be created."""
    root = layout.data_dir(db)
    storage.refuse_backslash(db)
    if db.is_dir():
        raise WarehouseError(f"{db} is a directory; give the warehouse's file name, e.g. --db {db / 'warehouse.duckdb'}")
    if root.is_symlink():  # its runs and marker may be another warehouse's; hard links need one file system
        raise WarehouseError(f"{root} is a symbolic link; nothing was written: a warehouse's data folder must be a "
                             f"real folder beside {db.name} (move the folder there instead of linking it)")
    if db.exists():
        info = _published_info(db, repairing)
        marker = published.marker_id(layout.warehouse_marker(db))
        if info is None:  # written in place by an earlier mementos: its folder is adopted
            return None, not root.exists()
        if root.exists() and marker != info.warehouse_id:
            raise WarehouseError(
                f"{root} is not {db.name}'s data folder (it belongs to another warehouse, or is a link to one); "
                f"nothing was written: give {db.name} its own folder, or use --db with the warehouse that owns it")
        if not root.exists():  # a catalog without runs (verify has refused one with runs)
            raise published.no_data_folder(db)
        return info, False
    if root.exists() and not root.is_dir():
        raise WarehouseError(f"{root} exists and is not a folder this warehouse made; nothing was written: "
                             f"move it away or choose another --db")
    if root.is_dir() and any(root.iterdir()):
        marker = published.marker_id(layout.warehouse_marker(db))
        if marker is None:
            raise WarehouseError(f"{root} exists and was not made by mementos (it has no {layout.WAREHOUSE_MARKER}); "
                                 f"nothing was written: move it away or choose another --db")
        if any(layout.snapshot_dir(db).glob("*.json")):
            raise WarehouseError(
                f"{root} holds a warehouse whose file {db.name} is gone (moved or deleted?); nothing was written: "
                f"put the file back, move the folder with it, or choose another --db")
        # else: the leftover of a first write that never published: ours to reuse
    return None, not root.exists()


def _published_info(db: Path, repairing: str | None) -> published.Info | None:
    """Open the published catalog read-only for its snapshot_info, refusing a file that is not a warehouse."""
    if why := storage.not_duckdb(db):
        raise not_a_warehouse(db, why, "nothing was written: choose another --db")
    with storage.connect(db, read_only=True) as con:
        catalog.check_not_legacy(con, db)
        if why := storage.lacks_base_tables(con):
            raise not_a_warehouse(db, why, f"nothing was written: ingest into a new file, "
                                           f"e.g. --db {db.with_name('warehouse.duckdb')}")
        return published.verify(con, db, writing=True, repairing=repairing)


@dataclass
class Stage:
    """The staged copy of the catalog that a write changes; `publish = False` drops it."""

    con: duckdb.DuckDBPyConnection
    publish: bool = True


@dataclass
class Writer:
    db: Path
    warehouse_id: str
    seq: int  # the published snapshot (0: none yet, or a catalog written in place)

    @property
    def root(self) -> Path:
        return layout.data_dir(self.db)

    @contextmanager
    def stage(self) -> Iterator[Stage]:
        """A writable copy of the published catalog; published when the block ends without an
        error (and `publish` is still true), removed otherwise. The caller commits its own work."""
        seq = self.seq + 1
        staged = layout.snapshot_file(self.db, seq)
        _remove_snapshot(self.db, seq)  # a leftover of a write that never published
        staged.parent.mkdir(exist_ok=True)
        try:
            if self.db.exists():
                shutil.copyfile(self.db, staged)
            con = storage.connect(staged, read_only=False, warehouse=self.db)
        except BaseException:
            _remove_snapshot(self.db, seq)
            raise
        stage = Stage(con)
        try:
            created = storage.ensure_schema(con, self.db)  # the views, when missing
            info = published.read_info(con)
            if not created and (info is None or info.data_dir != self.root.name):  # first snapshot, or renamed
                catalog.create_views(con, self.root, catalog.live_files(con, self.root))
            yield stage
            if stage.publish:
                con.execute(published.INFO_DDL)
                con.execute(f"DELETE FROM {published.INFO_TABLE}")
                con.execute(f"INSERT INTO {published.INFO_TABLE} VALUES (?, ?, ?, ?)",
                            [self.warehouse_id, seq, self.root.name, _utcnow()])
                live = catalog.live_files(con, self.root)
                con.execute("CHECKPOINT")
        except BaseException:
            con.close()
            _remove_snapshot(self.db, seq)
            raise
        con.close()
        if not stage.publish:
            _remove_snapshot(self.db, seq)
            return
        try:
            self._publish(seq, staged, live)
        except BaseException:
            if not _is_published(self.db, staged):
                _remove_snapshot(self.db, seq)
            raise
        self.seq = seq

    def _publish(self, seq: int, staged: Path, live: dict[str, list[str]]) -> None:
        files = {rel: (self.root / rel).stat().st_size for rels in live.values() for rel in rels}
        runs = sorted({rel.rsplit("/", 1)[0] for rel in files})  # '<table>/<slug>/<run_id>' holding a live file
        manifest = {"format": FORMAT, "warehouse_id": self.warehouse_id, "seq": seq,
                    "published_at": _utcnow().isoformat(), "runs": runs, "files": files}
        _write_json(layout.snapshot_manifest(self.db, seq), manifest)
        durable.fsync_file(staged)
        checkpoint("snapshot.before_publish")
        # the publish: readers opening PATH from now on see `seq`
        _replace_by_link(staged, self.db, self.db.with_name(f".{self.db.name}.publish-{uuid.uuid4().hex[:12]}"))
        durable.fsync_dir(self.db.parent)
        checkpoint("snapshot.after_publish")


def _replace_by_link(source: Path, target: Path, link: Path) -> None:
    """Make `target` another name of `source`'s file in one step: a hard link named `link`, renamed onto it."""
    try:
        os.link(source, link)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise WarehouseError(f"{source.parent} is on another file system than {target.parent}; the catalog is "
                                 f"published with a hard link: keep the warehouse's file and its data folder "
                                 f"in one folder on one disk") from None
        raise
    try:
        os.replace(link, target)
    except BaseException:
        link.unlink(missing_ok=True)
        raise


def _is_published(db: Path, staged: Path) -> bool:
    try:
        return os.path.samefile(db, staged)
    except OSError:
        return False


@contextmanager
def writing(db: str | Path, command: str, repairing: str | None = None) -> Iterator[Writer]:
    """Hold the writer lock on the warehouse `db` (created when missing) for a write; reclaim
    what no snapshot needs before and after. A first write that fails removes the folder it made (but
    for an unfinished Spark ingest's).
    `repairing`: the dataset an ingest replaces (its damaged files do not stop it)."""
    db = resolve(db)
    info, create = check_writable(db, repairing)
    root = layout.data_dir(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    if create:
        try:
            root.mkdir()
        except FileExistsError:  # another first write made it a moment ago: it owns it, and the lock says so
            create = False
    try:
        with storage.write_lock(db, command):
            marker = published.marker_id(layout.warehouse_marker(db))
            warehouse_id = info.warehouse_id if info else (marker or uuid.uuid4().hex)
            if marker != warehouse_id:
                _write_json(layout.warehouse_marker(db), {"format": FORMAT, "warehouse_id": warehouse_id})
            writer = Writer(db, warehouse_id, info.seq if info else 0)
            if info is not None:
                _relink_published(db, info.seq)
            elif db.exists():
                _adopt_runs(db, warehouse_id)
            shutil.rmtree(layout.temp_dir(db), ignore_errors=True)  # spill files of a killed writer
            reclaim(writer)
            yield writer
            reclaim(writer)
            shutil.rmtree(layout.temp_dir(db), ignore_errors=True)
    except BaseException:
        # Nothing was ever published: the folder this write made goes, unless it holds the shards an
        # unfinished Spark ingest finished (ingest/spark_executor.py), which its rerun takes over.
        if create and not db.exists() and not (root / layout.SPARK_STATE).is_dir():
            shutil.rmtree(root, ignore_errors=True)
        raise


def _relink_published(db: Path, seq: int) -> None:
    """Make the published snapshot's file the catalog's own inode again, where a copy of the folder
    (cp -r, copytree) made them two files: readers lock PATH's inode, and reclamation probes it there."""
    snap = layout.snapshot_file(db, seq)
    if _is_published(db, snap):
        return
    snap.parent.mkdir(exist_ok=True)
    _replace_by_link(db, snap, snap.with_name(f".{snap.name}.{uuid.uuid4().hex[:12]}"))


def _adopt_runs(db: Path, warehouse_id: str) -> None:
    """A catalog written in place by an earlier mementos names its committed runs: mark them, so that
    they can be reclaimed once a later snapshot no longer names them."""
    with storage.connect(db, read_only=True) as con:
        runs = catalog.current_runs(con)
    root = layout.data_dir(db)
    for dataset, run_id in runs.items():
        for table in catalog.STORES:
            directory = layout.run_dir(root, table, dataset, run_id)
            if directory.is_dir() and not (directory / layout.RUN_MARKER).exists():
                mark_run(directory, warehouse_id, run_id)


def mark_run(directory: Path, warehouse_id: str, run_id: str) -> None:
    """Create a run directory with the marker that lets this warehouse delete it later."""
    directory.mkdir(parents=True, exist_ok=True)
    _write_json(directory / layout.RUN_MARKER, {"warehouse_id": warehouse_id, "run_id": run_id})


# ---------------------------------------------------------------------------
# Reclamation


def reclaim(writer: Writer, grace: float | None = None) -> list[Path]:
    """Delete the snapshots nothing can read any more and the run directories no kept snapshot
    names (see the module docstring); under the writer lock. Returns what was deleted."""
    grace = grace_seconds() if grace is None else grace
    db, root = writer.db, writer.root
    sdir = layout.snapshot_dir(db)
    seqs = sorted(int(p.stem) for p in sdir.glob("*.*") if p.stem.isdigit()) if sdir.is_dir() else []
    manifests = {s: published.manifest(db, s) for s in seqs}
    published_at = {s: m.get("published_at") for s, m in manifests.items() if m}
    kept, dropped = {writer.seq}, []
    open_here = _inodes_open_here()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for seq in sorted(set(seqs) - {writer.seq}):
        path = layout.snapshot_file(db, seq)
        if seq > writer.seq or not path.exists():
            dropped.append(seq)  # staged and never published, or a manifest without its catalog
            continue
        later = [published_at[s] for s in published_at if seq < s <= writer.seq and published_at[s]]
        superseded = datetime.fromisoformat(min(later)) if later else now
        if _in_use(path, open_here) or (now - superseded).total_seconds() < grace:
            kept.add(seq)
        else:
            dropped.append(seq)
    if writer.seq and manifests.get(writer.seq) is None:
        return []  # the published catalog's manifest is missing: what it names is unknown, keep all
    keep = {r for s in kept if manifests.get(s) for r in manifests[s]["runs"]}
    keep_files = {f for s in kept if manifests.get(s) for f in manifests[s]["files"]}
    named_by_dropped = {r for s in dropped if manifests.get(s) for r in manifests[s]["runs"]}
    removed = []
    for table in catalog.STORES:
        for slug_dir in _subdirs(root / table):
            for run in _subdirs(slug_dir):
                key = f"{table}/{slug_dir.name}/{run.name}"
                ours = key in named_by_dropped or published.marker_id(run / layout.RUN_MARKER) == writer.warehouse_id
                if key in keep:
                    removed += _reclaim_files(run, key, keep_files, ours)
                elif ours:
                    shutil.rmtree(run, ignore_errors=True)
                    removed.append(run)
            if slug_dir.is_dir() and not any(slug_dir.iterdir()):
                slug_dir.rmdir()
    spool = root / layout.SPOOL
    if spool.is_dir() and not spool.is_symlink():  # batches of a killed ingest; only the writer spools
        shutil.rmtree(spool, ignore_errors=True)
    for seq in dropped:
        _remove_snapshot(db, seq)
    for link in db.parent.glob(f".{glob.escape(db.name)}.publish-*"):  # a writer killed between link and rename
        link.unlink(missing_ok=True)
    return removed


def _reclaim_files(run: Path, key: str, keep_files: set[str], ours: bool) -> list[Path]:
    """In a run directory a kept snapshot names, the Parquet files no kept snapshot names: those of
    shards replaced or removed since, when the directory is provably this warehouse's (`ours`)."""
    if not ours:
        return []
    removed = []
    for f in sorted(run.glob("*.parquet")):
        if f"{key}/{f.name}" not in keep_files and not f.is_symlink():
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


def _subdirs(path: Path) -> list[Path]:
    if not path.is_dir() or path.is_symlink():
        return []
    return [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]


def _in_use(path: Path, open_here: set[tuple[int, int]]) -> bool:
    """Does any process hold a lock on this catalog (every DuckDB connection does)? An open file
    description lock is refused while any other lock is held, this process's included; a
    connection of this process is looked up first, as closing our probe would drop its lock."""
    try:
        st = path.stat()
        if (st.st_dev, st.st_ino) in open_here:
            return True
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return True  # cannot tell: keep it
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _inodes_open_here() -> set[tuple[int, int]]:
    out = set()
    for fd in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        try:
            st = os.stat(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        out.add((st.st_dev, st.st_ino))
    return out


def _remove_snapshot(db: Path, seq: int) -> None:
    staged = layout.snapshot_file(db, seq)
    for path in (staged, layout.wal_path(staged), layout.snapshot_manifest(db, seq)):
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _write_json(path: Path, value: dict) -> None:
    """Write a small JSON file whole or not at all."""
    durable.write_whole(path, json.dumps(value, indent=1).encode(), mode=0o644)
