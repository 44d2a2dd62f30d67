"""What a warehouse holds, for tests that prove an operation changed nothing (or only what it should)."""

from __future__ import annotations

from pathlib import Path

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
