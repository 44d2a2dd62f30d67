"""The tokenizer alone: cl100k counts of the texts an ingest counted, on every core, nothing else timed.

    python bench/tokenizer_only.py WAREHOUSE [--workers N] [--batch-rows R]

WAREHOUSE is a finished `ingest` with tokens (the bench's ingest+tokens step).
The texts are those its ingest counted, read back from the warehouse: every
segment's text (`segments`: blocks, summaries, reasoning and answers, cut out
of the response by the parser's offsets) and every trace's problem (`traces`).
Each worker process reads its share of the traces (by a hash of trace_id) with a
one-thread DuckDB connection, a batch of R texts at a time, and counts them with
`foundation.tokens.count_tokens`, the fast counter ingest uses; only those calls
are timed. The tokenizer's own time is the slowest worker's counting time: what
the cores would take if the texts were already in memory.

Prints one JSON line: traces, texts, tokens counted, tokens the warehouse stored
(the two must agree: then these were the same texts), the counting seconds and
the wall seconds of the whole run (reads included).
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

# `{share}` keeps a worker's traces: a hash of trace_id splits the warehouse into the workers' shares.
TEXTS_SQL = """
SELECT text FROM segments WHERE {share}
UNION ALL
SELECT coalesce(problem, '') FROM traces WHERE {share}
"""
STORED_SQL = """
SELECT (SELECT count(*) FROM traces),
       (SELECT coalesce(sum(n_tokens), 0) FROM segments) + (SELECT coalesce(sum(problem_tokens), 0) FROM traces)
"""


def _share(worker: int, workers: int) -> str:
    return f"hash(trace_id) % {workers} = {worker}"


def _count(args: tuple[str, int, int, int]) -> tuple[int, int, float]:
    """(texts, tokens, seconds spent counting) of one worker's share."""
    db, worker, workers, batch_rows = args
    from mementos.foundation.storage import connect
    from mementos.foundation.tokens import count_tokens

    con = connect(db)
    con.execute("SET threads = 1")  # the other cores count
    reader = con.sql(TEXTS_SQL.format(share=_share(worker, workers))).to_arrow_reader(batch_rows)
    texts = tokens = 0
    seconds = 0.0
    for batch in reader:
        values = batch.column(0).to_pylist()
        t0 = time.perf_counter()
        counts = count_tokens(values)
        seconds += time.perf_counter() - t0
        texts += len(counts)
        tokens += sum(n for n in counts if n is not None)
    con.close()
    return texts, tokens, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("warehouse", help="a warehouse written by `ingest` with tokens")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes [one per core]")
    ap.add_argument("--batch-rows", type=int, default=10_000, help="texts per batch [10,000]")
    args = ap.parse_args(argv)
    from mementos.foundation.storage import connect

    workers = max(args.workers, 1)
    t0 = time.monotonic()
    jobs = [(args.warehouse, w, workers, args.batch_rows) for w in range(workers)]
    if workers == 1:
        results = [_count(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_count, jobs)
    wall = time.monotonic() - t0
    con = connect(args.warehouse)
    [(traces, stored)] = con.execute(STORED_SQL).fetchall()
    print(json.dumps({"rows": traces, "texts": sum(r[0] for r in results), "tokens": sum(r[1] for r in results),
                      "stored_tokens": int(stored), "count_seconds": round(max(r[2] for r in results), 2),
                      "seconds": round(wall, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
