"""What a warehouse holds, for tests that prove an operation changed nothing (or only what it should)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb

from mementos.foundation.catalog import live_files
from mementos.foundation import layout, storage


def snapshot(db: Path) -> dict:
    """Every table with its row count, plus which runs are committed and a digest of the traces."""
    with storage.connect(db, read_only=True) as con:
        tables = [t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY table_name").fetchall()]
        state = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables}
        state["_runs"] = con.execute("SELECT dataset, run_id FROM ingest_runs ORDER BY ALL").fetchall()
        state["_digest"] = con.execute("SELECT sum(hash(trace_id, content_hash, status)) FROM traces").fetchall()
    return state


def run_dirs(db: Path) -> set[tuple[str, str]]:
    """(dataset slug, run id) of every run directory under the Parquet tree."""
    root = layout.data_dir(db)
    return {(p.parent.name, p.name) for p in root.glob("*/*/*") if p.is_dir()}


def committed_dirs(db: Path) -> set[tuple[str, str]]:
    """(dataset slug, run id) of the run directories holding the live shards' files: those of the runs
    that read them (an unchanged shard keeps the files of the run that first read it)."""
    with storage.connect(db, read_only=True) as con:
        files = live_files(con, layout.data_dir(db))
    return {tuple(rel.split("/")[1:3]) for rels in files.values() for rel in rels}



def fingerprint(db: Path) -> dict:
    """Bytes of the DuckDB file, and which files sit beside it and in its Parquet directory."""
    beside = sorted(p.name for p in db.parent.iterdir() if p.name.startswith(db.name))
    data = layout.data_dir(db)
    tree = sorted((str(p.relative_to(data)), p.stat().st_size) for p in data.rglob("*")) if data.exists() else None
    return {"sha256": hashlib.sha256(db.read_bytes()).hexdigest(), "beside": beside, "data": tree}


def copy_warehouse(db: Path, to: Path) -> Path:
    """`to/<db's name>`: the DuckDB file and its Parquet directory (with the writer lock in it), copied;
    the base views name their Parquet directory by the file's name, so the name is kept."""
    shutil.copy2(db, to / db.name)
    shutil.copytree(layout.data_dir(db), layout.data_dir(to / db.name))
    return to / db.name


def duckdb_file(path: Path, *statements: str) -> Path:
    """A DuckDB file at `path` holding what `statements` create: a user's own file, or an old layout."""
    with duckdb.connect(str(path)) as con:
        for statement in statements:
            con.execute(statement)
    return path
