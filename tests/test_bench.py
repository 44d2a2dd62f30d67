"""bench/run.py: the tables, the target checks and RESULTS.md handling; no timing assertions.

The end-to-end run (a 200-trace corpus through floor, peer, ingest and build)
is marked slow: each step is a fresh Python process with heavy imports.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_run"] = bench
_spec.loader.exec_module(bench)


def _run(traces: int, seconds: dict[str, float], rss_mb: dict[str, float]) -> "bench.SizeRun":
    run = bench.SizeRun(traces, response_bytes=traces * 40_000, parquet_bytes=traces * 5_000)
    for step, s in seconds.items():
        run.results[step] = bench.Result(step, s, s * 1.5, int(rss_mb[step] * 2**20))
    return run


SECONDS = {"floor": 2.0, "peer": 60.0, "peer_tokens": 180.0, "flatten": 4.0, "ingest": 15.0,
           "ingest_tokens": 90.0, "ingest_all": 120.0, "build": 10.0, "report": 5.0, "export": 8.0, "sql": 6.0}
RSS = {"floor": 100, "peer": 300, "peer_tokens": 400, "flatten": 500, "ingest": 900, "ingest_tokens": 950,
       "ingest_all": 960, "build": 400, "report": 300, "export": 300, "sql": 200}


def test_table_has_every_step_and_the_ratios():
    text = bench.table(_run(20_000, SECONDS, RSS))
    assert text.count("\n") == 1 + len(SECONDS)
    assert "| 4.00× peer |" in text  # ingest: 60 s / 15 s
    assert "| 2.00× peer+tokens |" in text  # ingest with tokens: 180 s / 90 s
    assert "| 50% |" in text  # parse + flatten: 2 s / 4 s of the floor's time


def test_targets_met_and_missed():
    small = _run(20_000, SECONDS, RSS)
    large = _run(100_000, {k: v * 5 for k, v in SECONDS.items()}, {**RSS, "ingest_tokens": 1200})
    text = bench.targets([small, large])
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[2:]}
    assert "met: 4.00× peer" in lines["ingest --no-tokens ≥ 3× peer throughput (5× the goal)"]
    assert "**missed**: 2.00× peer+tokens" in lines["ingest with tokens ≥ 2.5× peer+tokens"]
    assert "met: 50% of floor MB/s" in lines["parse + flatten ≥ 25% of the floor's MB/s"]
    assert "**missed**: 1,200 MiB" in lines["ingest (with tokens): peak memory ≤ 1 GiB"]
    assert "**missed**" in lines["peak memory within ±10% from 20,000 to 100,000"]  # 950 -> 1200 MiB
    assert "**missed**: 25.0 s" in lines["report < 10 s at 100,000 traces and more"]
    assert "met: 8% of ingest time" in lines["build < 1/4 of ingest-all time"]
    assert "met: 7% of ingest time" in lines["export memento ≤ 1/4 of ingest-all time"]  # 8 s of 120 s


def test_export_over_a_quarter_of_the_ingest_misses_its_target():
    run = _run(20_000, {**SECONDS, "export": 31.0}, RSS)  # 31 s of 120 s: 26%
    lines = {line.split(" | ")[0].strip("| "): line for line in bench.targets([run]).splitlines()[2:]}
    assert "**missed**: 26% of ingest time" in lines["export memento ≤ 1/4 of ingest-all time"]


def test_memory_targets_count_file_pages_once():
    """Three ingest processes each map duckdb and pyarrow: their summed RSS counts those pages three times."""
    run = _run(20_000, SECONDS, RSS)
    run.results["ingest_all"] = bench.Result("ingest_all", 120.0, 180.0, peak_rss=1100 * 2**20,
                                             peak_files_once=900 * 2**20)
    lines = {line.split(" | ")[0].strip("| "): line for line in bench.targets([run]).splitlines()[2:]}
    assert "met: 900 MiB (1,100 summed RSS)" in lines["ingest --config all (with tokens): peak memory ≤ 1 GiB"]
    assert "| 1,100 | 900 |" in bench.table(run)


def test_size_target_compares_the_warehouse_with_both_configs():
    run = _run(20_000, SECONDS, RSS)
    run.source_bytes_all, run.warehouse_bytes = 400_000_000, 300_000_000
    assert "met: 0.75× (300 of 400 MB)" in bench.targets([run])


def test_skipped_steps_are_reported_not_counted():
    run = _run(20_000, SECONDS, RSS)
    run.results["report"] = bench.Result("report", note="skipped: `cli.py report` does not exist yet", ok=False)
    assert "skipped: `cli.py report` does not exist yet" in bench.table(run)
    assert "n/a: skipped" in bench.targets([run])


def test_results_file_keeps_the_notes_outside_the_markers(tmp_path):
    path = tmp_path / "RESULTS.md"
    bench.write_results(f"{bench.BEGIN}\nfirst\n{bench.END}", path)
    path.write_text(path.read_text() + "\n## Notes\nwhere the time goes\n")
    bench.write_results(f"{bench.BEGIN}\nsecond\n{bench.END}", path)
    text = path.read_text()
    assert "second" in text and "first" not in text
    assert text.count(bench.BEGIN) == 1 and text.rstrip().endswith("where the time goes")


def test_scaling_table_compares_the_two_sizes():
    small = _run(20_000, SECONDS, RSS)
    large = _run(100_000, {k: v * 5.5 for k, v in SECONDS.items()}, RSS)
    text = bench.scaling(small, large)
    assert "| +0% |" in text and "| +10% |" in text


def test_the_append_target_compares_append_with_full_ingest_and_build():
    run = _run(20_000, SECONDS, RSS)
    run.append = {step: bench.Result(step, seconds) for step, seconds in
                  (("full_ingest", 100.0), ("full_build", 60.0), ("append_ingest", 3.0), ("append_build", 3.0))}
    assert "met: 3.8% (6.0 of 160.0 s)" in bench.targets([run])
    run.append["append_build"] = bench.Result("append_build", 60.0)
    assert "**missed**: 39.4% (63.0 of 160.0 s)" in bench.targets([run])


@pytest.mark.slow
def test_end_to_end_on_a_small_corpus(tmp_path):
    proc = subprocess.run(
        [sys.executable, "bench/run.py", "--traces", "200", "--steps", "floor,peer,flatten,ingest,ingest_all,build,append",
         "--append-shards", "4", "--results", str(tmp_path / "RESULTS.md")],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "RESULTS.md").read_text()
    for label in ("floor:", "peer:", "parse + flatten", "ingest --no-tokens", "build",
                  "Append (the corpus as 4 shards, then one more): ingest"):
        assert label in text
