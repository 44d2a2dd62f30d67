"""Write flattened batches as Parquet, one directory per table and dataset and run.

    PATH.data/<table>/<dataset slug>/<run_id>/part-<config>-<worker>.parquet   (table: traces | full_traces)

(the paths are composed by foundation/layout.py).

Each ingest worker appends a row group per batch to its own file.

A run's directory is invisible to readers until the run is committed in DuckDB
(ingest_runs names the current run of each dataset); anything else found there
is a leftover of an interrupted run and is removed by `remove_stale_runs`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from foundation.layout import MODELS_SUBDIR, dataset_slug, run_dir

# Long texts: every value differs, so a dictionary never pays and min/max
# statistics never prune; skipping both makes the write ~20% cheaper.
LONG_TEXT = frozenset({"problem", "response", "sentences", "block_summaries"})


class RunFileWriter:
    """One Parquet file of a run's table, written a row group per batch and closed at the end."""

    def __init__(self, root: Path, table: str, dataset: str, run_id: str, name: str, schema: pa.Schema):
        directory = run_dir(root, table, dataset, run_id)
        directory.mkdir(parents=True, exist_ok=True)
        short = [f.name for f in schema if f.name not in LONG_TEXT]
        self.path = directory / f"part-{name}.parquet"
        self._writer = pq.ParquetWriter(self.path, schema, compression="zstd",
                                        use_dictionary=short, write_statistics=short)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table, row_group_size=table.num_rows)

    def close(self) -> None:
        self._writer.close()


def remove_run(root: Path, dataset: str, run_id: str) -> None:
    for table_dir in root.iterdir() if root.exists() else ():
        shutil.rmtree(table_dir / dataset_slug(dataset) / run_id, ignore_errors=True)


def remove_stale_runs(root: Path, current_runs: dict[str, str]) -> list[Path]:
    """Delete run directories that are not the committed run of their dataset."""
    keep = {(dataset_slug(d), r) for d, r in current_runs.items()}
    removed = []
    if not root.exists():
        return removed
    for table_dir in (p for p in root.iterdir() if p.is_dir() and p.name != MODELS_SUBDIR):
        for slug_dir in (p for p in table_dir.iterdir() if p.is_dir()):
            for rdir in (p for p in slug_dir.iterdir() if p.is_dir()):
                if (slug_dir.name, rdir.name) not in keep:
                    shutil.rmtree(rdir, ignore_errors=True)
                    removed.append(rdir)
            if not any(slug_dir.iterdir()):
                slug_dir.rmdir()
    return removed
