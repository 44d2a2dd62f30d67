"""The savvy peer: the tutorial's per-domain medians as one DuckDB statement over the source Parquet.

What a user fluent in SQL would write instead of the tutorial's Python loop: split
every response on the literal markup strings (no regular expressions, which are an
order of magnitude slower in DuckDB), take the block and summary lengths from the
pieces, and the median summary/block character ratio per domain, all in one query.

    python bench/peer_savvy.py SAMPLE_DIR

Each piece after a `<|block_start|>` holds a block up to its `<|block_end|>`, then
that block's memento between `<|summary_start|>` and `<|summary_end|>`. A trace is
kept by the tutorial's rule: at least one block, and as many summaries as blocks;
texts are stripped, as the tutorial's are.

Prints one JSON line: traces seen, traces kept, seconds, and the medians, so the
harness can check that the query read every row.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time

SAVVY_SQL = """
WITH split AS (
    SELECT domain,
           string_split(response, '<|block_start|>')[2:] AS pieces,
           len(string_split(response, '<|summary_start|>')) - 1 AS n_summaries
    FROM read_parquet(?)
), ratios AS (
    SELECT domain,
           len(pieces) > 0 AND len(pieces) = n_summaries AS kept,
           list_sum(list_transform(pieces, lambda p: length(trim(split_part(
               split_part(p, '<|summary_start|>', 2), '<|summary_end|>', 1)))))
           / nullif(list_sum(list_transform(pieces, lambda p: length(trim(split_part(p, '<|block_end|>', 1))))), 0)
               AS char_ratio
    FROM split
)
SELECT domain, count(*) AS traces, count(*) FILTER (WHERE kept) AS kept,
       round(median(char_ratio) FILTER (WHERE kept), 4) AS char_ratio
FROM ratios
GROUP BY domain
ORDER BY domain
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sample", help="hub-layout directory: the default config's Parquet files under data/")
    args = ap.parse_args(argv)
    import duckdb

    files = sorted(glob.glob(args.sample + "/data/*.parquet"))
    t0 = time.monotonic()
    rows = duckdb.connect().execute(SAVVY_SQL, [files]).fetchall()
    print(json.dumps({"rows": sum(r[1] for r in rows), "kept": sum(r[2] for r in rows),
                      "seconds": round(time.monotonic() - t0, 2),
                      "medians": {str(domain): {"char_ratio": ratio} for domain, _, _, ratio in rows}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
