"""What every command checks before it touches anything: the warehouse, the output, the disk.

* `require_warehouse(db)`: the file is a mementos warehouse (a DuckDB file holding
  the base tables ingest creates). Every command but `ingest` calls it first. It
  reads the file's first bytes, then opens it read-only: it never changes it.
  `open_warehouse(db)` checks the same and hands the reader that connection.
* `output_file(db, out)` / `output_dir(db, out, names)`: `--out` may not be, or be
  inside, a part of the warehouse (layout.own_parts), and must not sit below an existing
  file; a directory may not hold any of them either, at any depth (an export
  replaces it whole). They only check (call them before any work); `make_dir` then creates
  the directories, with a one-line error if it cannot.
* A full disk is one line (`foundation/disk.py`, which ingest uses too).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from mementos.foundation import layout, published, snapshots, storage
from mementos.foundation.disk import disk_full, is_disk_full
from mementos.foundation.errors import WarehouseError, no_warehouse, not_a_warehouse


def require_warehouse(db: str | Path, writing: bool = False) -> None:
    """Refuse anything that is not a mementos warehouse, leaving it byte-identical.

    A warehouse is a DuckDB file with every base table (storage.BASE_TABLES) as a
    table or a view, whose published snapshot is whole (published.verify: every file it
    names is there, with its size; `writing`: for a writer, which may re-point a renamed
    warehouse). The file is only ever opened read-only.
    """
    open_warehouse(db, writing).close()


def open_warehouse(db: str | Path, writing: bool = False) -> duckdb.DuckDBPyConnection:
    """require_warehouse's checks, and the read-only connection they ran on, for the caller to read with
    (and close): a reader checks and reads with one connection."""
    db = snapshots.resolve(db)
    if not db.exists():
        raise no_warehouse(db)
    if db.is_dir():
        raise not_a_warehouse(db, "it is a directory")
    try:
        why = storage.not_duckdb(db)
    except OSError as exc:
        raise WarehouseError(f"cannot read the warehouse {db}: {exc.strerror}") from None
    if why:
        raise not_a_warehouse(db, why)
    con = storage.connect(db, read_only=True)
    try:
        if why := storage.lacks_base_tables(con):
            raise not_a_warehouse(db, why)
        published.verify(con, db, writing=writing)
    except BaseException:
        con.close()
        raise
    return con


# ---------------------------------------------------------------------------
# Output paths


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_warehouse_paths(db: str | Path, paths: list[Path], option: str = "--out") -> None:
    """Raise if any of `paths` (files a command will write) is a part of the warehouse at `db`."""
    db = Path(db)
    for path in paths:
        resolved = path.resolve()
        for part in layout.own_parts(db):
            target = part.path.resolve()
            inside = part.tree and target in resolved.parents
            if resolved == target or inside or _same(path, part.path):
                where = f"the warehouse's {part.what} {part.path}"
                where = f"inside {where}" if inside else where
                raise WarehouseError(f"{option} {path} would write {where}; choose a path outside the warehouse")


def _check_parents(path: Path, option: str) -> None:
    """Every existing ancestor of `path` must be a directory, and the nearest one writable: said
    before any work, not after a build."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise WarehouseError(f"{option} {path}: {parent} is a file, not a directory; "
                                     f"choose a path whose parents are directories")
            if not os.access(parent, os.W_OK):
                read_only = os.statvfs(parent).f_flag & os.ST_RDONLY
                why = "is on a read-only file system" if read_only else "is not writable for you"
                raise WarehouseError(f"{option} {path}: {parent} {why}; choose a folder you can write")
            return


def make_dir(path: Path, option: str = "--out") -> None:
    """mkdir -p, with a one-line error."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(path, 0) from None
        raise WarehouseError(f"{option}: cannot create the directory {path}: {exc.strerror}") from None


def output_file(db: str | Path, out: str | Path, option: str = "--out") -> Path:
    """Check a file a command will write (its temp file goes in the same folder, so the same check covers it)."""
    out = Path(out)
    if out.is_dir():
        raise WarehouseError(f"{option} {out} is a directory; give a file name (e.g. {out / 'report.html'})")
    _check_parents(out, option)
    refuse_warehouse_paths(db, [out], option)
    return out


def output_dir(db: str | Path, out: str | Path, names: list[str], option: str = "--out") -> Path:
    """Check a directory a command will write the files `names` into. The export replaces the directory
    whole, so it may not hold any part of the warehouse either, at any depth."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise WarehouseError(f"{option} {out} is a file; give a directory (the export writes one file per split)")
    _check_parents(out, option)
    refuse_warehouse_paths(db, [out, *(out / n for n in names)], option)
    resolved = out.resolve()
    for part in layout.own_parts(db):
        if resolved in part.path.resolve().parents:
            raise WarehouseError(f"{option} {out} holds the warehouse's {part.what} {part.path}; export into a "
                                 f"directory that does not hold the warehouse (the export replaces the directory "
                                 f"whole)")
    return out
