"""bench/run.py: the tables, the target checks and RESULTS.md handling; no timing assertions.

The end-to-end run (a 200-trace corpus through floor, peer, ingest and build)
is marked slow: each step is a fresh Python process with heavy imports.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_run"] = bench
_spec.loader.exec_module(bench)


def _tokenizer_output(traces: int, count_seconds: float, tokens: int = 5_000, stored: int = 5_000) -> str:
    return json.dumps({"rows": traces, "texts": 1_000, "tokens": tokens, "stored_tokens": stored,
                       "count_seconds": count_seconds, "seconds": count_seconds + 5})


def _run(traces: int, seconds: dict[str, float], rss_mb: dict[str, float]) -> "bench.SizeRun":
    run = bench.SizeRun(traces, response_bytes=traces * 40_000, parquet_bytes=traces * 5_000)
    for step, s in seconds.items():
        run.results[step] = bench.Result(step, s, s * 1.5, int(rss_mb[step] * 2**20))
    if "tokenizer" in seconds:  # of its wall seconds, 15 in 16 counting: the rest read the texts
        run.results["tokenizer"].output = _tokenizer_output(traces, seconds["tokenizer"] * 15 / 16)
    return run


def _target_lines(runs: list) -> dict[str, str]:
    """The targets table's rows by their first cell."""
    return {line.split(" | ")[0].strip("| "): line for line in bench.targets(runs).splitlines()[2:]}


SECONDS = {"floor": 2.0, "peer": 60.0, "peer_tokens": 180.0, "savvy": 12.0, "flatten": 4.0, "ingest": 15.0,
           "ingest_tokens": 90.0, "tokenizer": 80.0, "ingest_all": 120.0, "build": 10.0, "report": 5.0, "export": 8.0,
           "sql": 6.0}
RSS = {"floor": 100, "peer": 300, "peer_tokens": 400, "savvy": 250, "flatten": 500, "ingest": 900,
       "ingest_tokens": 950, "tokenizer": 450, "ingest_all": 960, "build": 400, "report": 300, "export": 300, "sql": 200}
NO_TOKENS = "ingest --no-tokens ≥ 8× peer throughput and ≤ 1.5× the savvy query's time"
TOKENIZER = "ingest with tokens ≤ 1.25× the tokenizer's own time, same texts, all cores"
START_TO_REPORT = "ingest start → report written (ingest all + build + report) ≤ 5 min at 228,557 traces"


def test_table_has_every_step_and_the_ratios():
    text = bench.table(_run(20_000, SECONDS, RSS))
    assert text.count("\n") == 1 + len(SECONDS)
    assert "| 4.00× peer |" in text  # ingest: 60 s / 15 s
    assert "| 2.00× peer+tokens |" in text  # ingest with tokens: 180 s / 90 s
    assert "| 50% |" in text  # parse + flatten: 2 s / 4 s of the floor's time


def test_targets_met_and_missed():
    small = _run(20_000, SECONDS, RSS)
    large = _run(100_000, {k: v * 5 for k, v in SECONDS.items()}, {**RSS, "ingest_tokens": 1200})
    lines = _target_lines([small, large])
    assert "**missed**: 4.00× peer, 1.25× savvy's time" in lines[NO_TOKENS]  # 60 s / 15 s: under 8×
    assert "**missed**: 2.00× peer+tokens" in lines["ingest with tokens ≥ 2.5× peer+tokens"]
    assert "met: 1.20× (90.0 s against counting's 75.0 s)" in lines[TOKENIZER]
    assert "met: 50% of floor MB/s" in lines["parse + flatten ≥ 40% of the floor's MB/s"]
    assert "**missed**: 1,200 MiB" in lines["ingest (with tokens): peak memory ≤ 1 GiB"]
    assert "**missed**" in lines["peak memory within ±10% from 20,000 to 100,000"]  # 950 -> 1200 MiB
    assert "**missed**: 25.0 s" in lines["report < 10 s at 100,000 traces and more"]
    assert "met: 8% of ingest time" in lines["build ≤ 1/4 of ingest-all time"]
    assert "met: 7% of ingest time" in lines["export memento ≤ 1/4 of ingest-all time"]  # 8 s of 120 s


def test_export_over_a_quarter_of_the_ingest_misses_its_target():
    run = _run(20_000, {**SECONDS, "export": 31.0}, RSS)  # 31 s of 120 s: 26%
    lines = _target_lines([run])
    assert "**missed**: 26% of ingest time" in lines["export memento ≤ 1/4 of ingest-all time"]


def test_no_tokens_target_needs_both_the_peer_speedup_and_the_savvy_time():
    fast = _run(20_000, {**SECONDS, "peer": 150.0}, RSS)  # 150 s / 15 s: 10× the peer; 15 s / 12 s of savvy's
    assert "met: 10.00× peer, 1.25× savvy's time" in _target_lines([fast])[NO_TOKENS]
    slow_beside_savvy = _run(20_000, {**SECONDS, "peer": 150.0, "savvy": 8.0}, RSS)  # 15 s / 8 s
    assert "**missed**: 10.00× peer, 1.88× savvy's time" in _target_lines([slow_beside_savvy])[NO_TOKENS]
    no_savvy = _run(20_000, {k: v for k, v in SECONDS.items() if k != "savvy"}, RSS)
    assert f"| {NO_TOKENS} | n/a |" in bench.targets([no_savvy])


def test_tokenizer_target_judges_the_counting_seconds_not_the_wall():
    run = _run(20_000, SECONDS, RSS)
    run.results["tokenizer"].output = _tokenizer_output(20_000, 60.0)  # its wall stays 80 s
    assert "**missed**: 1.50× (90.0 s against counting's 60.0 s)" in _target_lines([run])[TOKENIZER]


def test_tokenizer_that_counted_other_texts_is_no_result():
    run = _run(20_000, SECONDS, RSS)
    run.results["tokenizer"].output = _tokenizer_output(20_000, 75.0, tokens=4_999, stored=5_000)
    bench._check_outputs(run)
    assert not run.results["tokenizer"].ok
    assert run.results["tokenizer"].note == "counted 4999 tokens where ingest stored 5000"
    assert f"| {TOKENIZER} | n/a |" in bench.targets([run])


def test_parse_and_flatten_under_40_percent_of_the_floor_misses():
    run = _run(20_000, {**SECONDS, "flatten": 6.0}, RSS)  # 2 s of the floor's against 6 s
    assert "**missed**: 33% of floor MB/s" in _target_lines([run])["parse + flatten ≥ 40% of the floor's MB/s"]


def test_start_to_report_sums_ingest_all_build_and_report():
    small = _run(20_000, SECONDS, RSS)
    full = _run(228_557, {**SECONDS, "ingest_all": 250.0, "build": 40.0, "report": 9.5}, RSS)
    over = _run(228_557, {**SECONDS, "ingest_all": 250.0, "build": 45.0, "report": 9.5}, RSS)
    lines = _target_lines([small, full])
    assert ("| (ingest all 120.0 s + build 10.0 s + report 5.0 s = 135.0 s; target at 228,557) | "
            "met: ingest all 250.0 s + build 40.0 s + report 9.5 s = 299.5 s |") in lines[START_TO_REPORT]
    assert "**missed**: ingest all 250.0 s + build 45.0 s + report 9.5 s = 304.5 s" in _target_lines([over])[
        START_TO_REPORT]
    text = bench.render([small], dt.datetime(2026, 12, 7), 60.0)
    assert ("Ingest start → report written (this run's ingest all + build + report): ingest all 120.0 s + "
            "build 10.0 s + report 5.0 s = 135.0 s.") in text
    assert "Tokenizer alone: 5,000 tokens of 1,000 texts (those ingest counted), 75.0 s counting" in text


def test_every_step_has_a_command_and_runs_after_the_warehouse_it_reads(tmp_path):
    order = [step for step, _ in bench._plan(tmp_path / "sample", tmp_path, [])]
    assert sorted(order) == sorted(bench.STEPS) and set(bench.LABELS) == set(bench.STEPS)
    for step, needed in bench.NEEDS.items():
        assert order.index(needed) < order.index(step)


def test_memory_targets_count_file_pages_once():
    """Three ingest processes each map duckdb and pyarrow: their summed RSS counts those pages three times."""
    run = _run(20_000, SECONDS, RSS)
    run.results["ingest_all"] = bench.Result("ingest_all", 120.0, 180.0, peak_rss=1100 * 2**20,
                                             peak_files_once=900 * 2**20)
    lines = _target_lines([run])
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
        [sys.executable, "bench/run.py", "--traces", "200", "--steps",
         "floor,peer,savvy,flatten,ingest,ingest_tokens,tokenizer,ingest_all,build,append",
         "--append-shards", "4", "--results", str(tmp_path / "RESULTS.md")],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "RESULTS.md").read_text()
    for label in ("floor:", "peer:", "savvy peer:", "parse + flatten", "ingest --no-tokens", "build",
                  "tokenizer: cl100k counts alone", "Tokenizer alone: ",
                  "Append (the corpus as 4 shards, then one more): ingest"):
        assert label in text
