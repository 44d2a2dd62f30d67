"""Write flattened batches as Parquet, one directory per table and dataset and run.

    PATH.data/<table>/<dataset slug>/<run_id>/part-<batch>.parquet     (table: traces | full_traces)

A run's directory is invisible to readers until the run is committed in DuckDB
(ingest_runs names the current run of each dataset); anything else found there
is a leftover of an interrupted run and is removed by `remove_stale_runs`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Segment text dominates: a few tens of MB per row group keeps readers streaming
# without making files tiny (measured in bench/).
ROW_GROUP_BYTES = 64 * 1024 * 1024
# Long texts: every value differs, so a dictionary never pays and min/max
# statistics never prune; skipping both makes the write ~20% cheaper.
LONG_TEXT = frozenset({"problem", "response", "sentences", "block_summaries"})


def dataset_slug(dataset: str) -> str:
    """A directory name for any dataset name: readable part + hash, so distinct names never collide."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset).strip("._")[:60] or "dataset"
    return f"{readable}-{hashlib.blake2b(dataset.encode(), digest_size=4).hexdigest()}"


def run_dir(root: Path, table: str, dataset: str, run_id: str) -> Path:
    return root / table / dataset_slug(dataset) / run_id


def write_tables(root: Path, dataset: str, run_id: str, config: str, seq: int, tables: dict[str, pa.Table]) -> None:
    for table_name, table in tables.items():
        if table.num_rows == 0:
            continue
        directory = run_dir(root, table_name, dataset, run_id)
        directory.mkdir(parents=True, exist_ok=True)
        rows_per_group = max(1, int(table.num_rows * ROW_GROUP_BYTES / max(table.nbytes, 1)))
        short = [name for name in table.column_names if name not in LONG_TEXT]
        pq.write_table(table, directory / f"part-{seq:06d}.parquet",
                       compression="zstd", row_group_size=rows_per_group,
                       use_dictionary=short, write_statistics=short)


def remove_run(root: Path, dataset: str, run_id: str) -> None:
    for table_dir in root.iterdir() if root.exists() else ():
        shutil.rmtree(table_dir / dataset_slug(dataset) / run_id, ignore_errors=True)


def remove_stale_runs(root: Path, current_runs: dict[str, str]) -> list[Path]:
    """Delete run directories that are not the committed run of their dataset."""
    keep = {(dataset_slug(d), r) for d, r in current_runs.items()}
    removed = []
    if not root.exists():
        return removed
    for table_dir in (p for p in root.iterdir() if p.is_dir() and p.name != "models"):
        for slug_dir in (p for p in table_dir.iterdir() if p.is_dir()):
            for rdir in (p for p in slug_dir.iterdir() if p.is_dir()):
                if (slug_dir.name, rdir.name) not in keep:
                    shutil.rmtree(rdir, ignore_errors=True)
                    removed.append(rdir)
            if not any(slug_dir.iterdir()):
                slug_dir.rmdir()
    return removed
