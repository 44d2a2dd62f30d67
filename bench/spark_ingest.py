"""Ingest on Spark (local mode) against the local ingest, on one generated sample: wall time,
throughput, the whole process tree's peak memory, and the largest peak RSS of a Spark task's
Python worker (what one executor core holds). Prints a Markdown table for bench/RESULTS.md.

    .venv/bin/python bench/spark_ingest.py --traces 20000 --master 'local[2]'
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CACHE, PY, corpus_bytes, ensure_sample, measure, warm_cache  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    sample = ensure_sample(args.traces, args.seed)
    text_bytes, _ = corpus_bytes(sample)
    work = CACHE / f"spark-ingest-{args.traces}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    warm_cache(sample)
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    common = ["ingest", str(sample), "--config", "all", "--no-progress", "--json"]
    runs = {"local (worker processes)": [PY, "cli.py", *common, "--db", str(work / "local.duckdb")],
            f"spark {args.master}": [PY, "cli.py", *common, "--db", str(work / "spark.duckdb"),
                                     "--engine", "spark", "--spark-master", args.master]}
    print(f"{args.traces:,} traces, both configs, with tokens; {text_bytes / 1e6:,.0f} MB of response text\n")
    print("| engine | wall s | traces/s | MB/s (response text) | peak RSS of the process tree | "
          "peak RSS of a task's Python worker |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, cmd in runs.items():
        res, err = measure(cmd, env=env)
        if not res.ok:
            sys.exit(f"{name} failed: {res.note}\n{err[-2000:]}")
        summary = json.loads(res.output)
        worker = summary.get("worker_peak_bytes") or 0
        mbps = text_bytes / 1e6 / res.seconds
        print(f"| {name} | {res.seconds:.1f} | {args.traces / res.seconds:,.0f} | {mbps:.1f} | "
              f"{res.peak_memory / 2**20:,.0f} MiB | {f'{worker / 2**20:,.0f} MiB' if worker else '-'} |",
              flush=True)


if __name__ == "__main__":
    main()
