"""Parse and flatten alone: ingest's CPU step without the Parquet write or the DuckDB load.

    python bench/flatten_only.py SAMPLE_DIR [--workers N] [--tokens] [--batch-rows R]

Every worker process reads its share of the default config's Parquet files
(pyarrow, batches of R rows, as ingest streams them) and runs
`ingest.flatten.flatten_default` on each batch; the tables it returns are
dropped. With N workers the row groups are dealt round-robin, so both cores
work as they do in ingest, and nothing crosses a process boundary but counts.
Prints one JSON line: rows, response bytes, segments, seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _files(sample: Path) -> list[str]:
    return sorted(str(p) for p in (sample / "data").glob("*.parquet"))


def _work(args: tuple[list[str], int, int, int, bool]) -> tuple[int, int, int]:
    files, worker, workers, batch_rows, with_tokens = args
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mementos.foundation.catalog import store_schemas
    from mementos.ingest.flatten import BatchOrigin, flatten_default
    from mementos.ingest.worker import reuse_freed_memory

    reuse_freed_memory()  # as ingest's workers do
    schemas = store_schemas()
    rows = nbytes = segs = 0
    seq = 0
    first_row = 0
    for path in files:
        pf = pq.ParquetFile(path)
        # Row groups are dealt round-robin, so no worker decodes another's data.
        mine = [g for g in range(pf.num_row_groups) if (seq + g) % workers == worker]
        seq += pf.num_row_groups
        for batch in pf.iter_batches(batch_size=batch_rows, row_groups=mine) if mine else ():
            flat = flatten_default(pa.Table.from_batches([batch]), BatchOrigin("bench", "run", path, first_row),
                                   schemas, with_tokens)
            rows += flat.rows
            nbytes += flat.input_bytes
            segs += flat.counts["segments"]
            first_row += batch.num_rows
    return rows, nbytes, segs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sample", type=Path)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    from mementos.ingest.pipeline import BATCH_ROWS

    ap.add_argument("--batch-rows", type=int, default=BATCH_ROWS, help=f"rows per batch [ingest's: {BATCH_ROWS}]")
    ap.add_argument("--tokens", action="store_true")
    args = ap.parse_args(argv)
    files = _files(args.sample)
    t0 = time.monotonic()
    jobs = [(files, w, max(args.workers, 1), args.batch_rows, args.tokens) for w in range(max(args.workers, 1))]
    if args.workers <= 1:
        results = [_work(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            results = pool.map(_work, jobs)
    rows, nbytes, segs = (sum(r[i] for r in results) for i in range(3))
    print(json.dumps({"rows": rows, "response_bytes": nbytes, "segments": segs,
                      "seconds": round(time.monotonic() - t0, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
