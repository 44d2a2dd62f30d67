"""Build time of all models on Spark local mode against DuckDB, on the same generated sample.

    python bench/spark_vs_duckdb.py                          # 3,000 traces, local[*], 2 Spark builds
    python bench/spark_vs_duckdb.py --traces 20000 --master local[4] --spark-builds 3

One warehouse per size under bench/.cache/ (sample written with write_sample,
seed 7, ingested with --config all and cl100k tokens, so every model has
numbers). Then, in this process:

    duckdb build      engine.build(full_refresh=True), every model, three times (the best is reported)
    spark session     SparkSession start on --master (JVM launch included)
    spark build       spark_engine.build, every model, --spark-builds times in the same session:
                      the first is cold (JIT, class loading), later ones warm

Spark runs with its own defaults (what `build --engine spark` gets), except the
console progress bar, plus any --conf KEY=VALUE. Prints one line per measurement and the per-model seconds
of the last Spark build and the DuckDB build.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mementos.warehouse import engine  # noqa: E402
from mementos.warehouse.spark import engine as spark_engine  # noqa: E402
from mementos.sample import write_sample  # noqa: E402


def warehouse(traces: int) -> Path:
    cache = REPO / "bench" / ".cache" / f"spark-{traces}-seed7"
    db = cache / "w.duckdb"
    if not db.exists():
        write_sample(cache / "sample", traces, seed=7, overwrite=True)
        subprocess.run([sys.executable, str(REPO / "cli.py"), "ingest", str(cache / "sample"), "--db", str(db),
                        "--config", "all", "--name", "sample", "--no-progress"], check=True,
                       stdout=subprocess.DEVNULL)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=3000)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--spark-builds", type=int, default=2)
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="Spark setting, repeatable (e.g. spark.sql.codegen.wholeStage=false)")
    args = parser.parse_args()
    conf = dict(item.split("=", 1) for item in args.conf)

    db = warehouse(args.traces)
    print(f"{args.traces:,} traces, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    duck = []
    for _ in range(3):
        report = engine.build(db, full_refresh=True)
        assert report.ok, report.format()
        duck.append(report)
    best = min(duck, key=lambda r: r.seconds)
    print(f"duckdb build       {best.seconds:7.1f} s  (best of 3: {', '.join(f'{r.seconds:.1f}' for r in duck)})",
          flush=True)

    t0 = time.monotonic()
    spark = spark_engine.spark_session(args.master, conf)
    print(f"spark session      {time.monotonic() - t0:7.1f} s  ({spark.sparkContext.master}, Spark {spark.version}"
          f"{', ' + ', '.join(args.conf) if args.conf else ''})", flush=True)
    try:
        for i in range(args.spark_builds):
            report = spark_engine.build(db, spark=spark, full_refresh=True)
            assert report.ok, report.format()
            print(f"spark build {i + 1}      {report.seconds:7.1f} s  ({'cold' if i == 0 else 'warm'}, "
                  f"load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        spark.stop()
    print("\nper model, seconds (duckdb best build | last spark build):")
    spark_seconds = {r.name: r.seconds for r in report.results}
    for r in best.results:
        print(f"  {r.name:<28} {r.seconds:7.2f} | {spark_seconds.get(r.name, float('nan')):7.2f}")


if __name__ == "__main__":
    main()
