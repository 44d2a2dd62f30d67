"""What a published snapshot is and names, and the check every command makes that it is whole.

A snapshot's catalog (a DuckDB file) carries one row of `snapshot_info`: the warehouse's id, its
number, and the name of its data folder; `PATH.data/_snapshots/<seq>.json` lists every Parquet
file it names with its size. Readers and writers both check a snapshot with `verify` before they
use it (names and sizes only); foundation/snapshots.py writes and publishes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mementos.foundation import catalog, layout
from mementos.foundation.errors import WarehouseError

INFO_TABLE = "snapshot_info"
INFO_DDL = f"""CREATE TABLE IF NOT EXISTS {INFO_TABLE} (
    warehouse_id VARCHAR NOT NULL,   -- the id in PATH.data/_warehouse.json
    seq          BIGINT NOT NULL,    -- this snapshot's number: PATH.data/_snapshots/<seq>.duckdb
    data_dir     VARCHAR NOT NULL,   -- the data directory's name when it was published
    published_at TIMESTAMP NOT NULL  -- UTC
)"""


@dataclass
class Info:
    warehouse_id: str
    seq: int
    data_dir: str


def read_info(con: duckdb.DuckDBPyConnection) -> Info | None:
    """The published snapshot's row of snapshot_info; None for a catalog written in place (format 1)."""
    [(exists,)] = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                              f"AND schema_name = 'main' AND table_name = '{INFO_TABLE}'").fetchall()
    if not exists:
        return None
    rows = con.execute(f"SELECT warehouse_id, seq, data_dir FROM {INFO_TABLE}").fetchall()
    return Info(*rows[0]) if rows else None


def marker_id(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("warehouse_id")
    except (OSError, ValueError, AttributeError):
        return None


# ---------------------------------------------------------------------------
# What a reader checks: the snapshot is whole


def verify(con: duckdb.DuckDBPyConnection, db: str | Path, writing: bool = False,
           repairing: str | None = None) -> Info | None:
    """Refuse, in one line, a snapshot whose data is not all there: the data directory missing or
    renamed, or a file the snapshot names missing or of another size (names and sizes only).
    Returns the snapshot's Info (read_info).
    `writing`: a writer, which re-points a renamed warehouse's views itself; `repairing`: the
    dataset an ingest replaces, whose damaged files are what it repairs."""
    db = Path(db)
    root = layout.data_dir(db)
    info = read_info(con)
    if info is not None and info.data_dir != root.name and not (writing and root.is_dir()):
        if (db.parent / info.data_dir).is_dir() and not root.exists():
            raise WarehouseError(
                f"{db} keeps its data in {info.data_dir}/, but a warehouse's data folder is named after its file "
                f"({root.name}/): rename {db.parent / info.data_dir} to {root} too (move or rename the two together)")
        if marker_id(layout.warehouse_marker(db)) == info.warehouse_id:
            raise WarehouseError(
                f"{db} was renamed from {info.data_dir.removesuffix('.data')}; run one write to point it at "
                f"{root.name}/, e.g. `mementos build --db {db}`, then read it again")
    runs = catalog.current_runs(con)
    if not root.is_dir():
        if runs:
            raise no_data_folder(db)
        return info
    listed = manifest(db, info.seq) if info is not None else None
    problems = []
    if listed is not None:
        for rel, size in listed["files"].items():
            path = root / rel
            try:
                actual = path.stat().st_size
            except OSError:
                problems.append((rel, "missing"))
                continue
            if actual != size:
                problems.append((rel, f"{actual:,} bytes where {size:,} were written"))
    else:  # a catalog written in place: every committed run must still have its directory
        for dataset, run_id in runs.items():
            if not any(any(layout.run_dir(root, t, dataset, run_id).glob("*.parquet")) for t in catalog.STORES):
                problems.append((f"traces/{layout.run_key(dataset, run_id)}/", "missing"))
    if repairing is not None:
        problems = [(rel, what) for rel, what in problems if _dataset_of(runs, rel) != repairing]
    if problems:
        rel, what = problems[0]
        dataset = _dataset_of(runs, rel)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise WarehouseError(
            f"{db} is damaged: {root.name}/{rel} is {what}{more}; nothing was read. Repair it by ingesting "
            f"dataset {dataset!r} again: `mementos ingest SOURCE --db {db} --name {dataset}`")
    return info


def no_data_folder(db: Path) -> WarehouseError:
    root = layout.data_dir(db)
    return WarehouseError(f"{db} has no data folder {root.name}/ beside it (was the file copied without it?): "
                          f"copy {root.name}/ from where {db.name} came from, or ingest again into a new warehouse")


def _dataset_of(runs: dict[str, str], rel: str) -> str:
    """The dataset (of the committed `runs`) whose folder holds the file `rel` (table/slug/run/file): its
    live files may lie in the folders of several of its runs."""
    parts = rel.split("/")
    for dataset in runs:
        if len(parts) >= 3 and parts[1] == layout.dataset_slug(dataset):
            return dataset
    return parts[1] if len(parts) > 1 else rel


def manifest(db: Path, seq: int) -> dict | None:
    try:
        return json.loads(layout.snapshot_manifest(db, seq).read_text())
    except (OSError, ValueError):
        return None
