"""Memory: a cap (`ulimit -v`, MEMENTOS_MEMORY_LIMIT) or an allocation that fails is one line saying what
to raise, and one 50 MB response is exported and reported within 1 GiB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, ingest_hub, invoke, memento, row, small_rows, write_hub_dir
from mementos.foundation import storage


def run_cli(*args, env: dict | None = None, ulimit_kib: int | None = None, timeout: float = 120):
    """`python cli.py ARGS` in a process of its own (under `ulimit -v`, when given): what a user runs.
    `env`: variables to set, or with None to unset."""
    command = [sys.executable, str(REPO / "cli.py"), *map(str, args)]
    if ulimit_kib is not None:
        command = ["bash", "-c", f'ulimit -v {ulimit_kib} && exec "$@"', "bash", *command]
    environment = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=environment)


# ---------------------------------------------------------------------------
# Caps and failed allocations


def test_export_under_ulimit_v_ends_in_one_line_naming_the_cap(built, tmp_path):
    """Under a 1.2 GB address-space cap OpenBLAS (scipy's, through datasketch) could not start its threads and
    spun in blas_thread_init forever. Now the export ends, and says the cap is what to raise. Run without
    OPENBLAS_NUM_THREADS, as a user's shell would (foundation sets it for the process)."""
    result = run_cli("export", "memento", "--db", built, "--out", tmp_path / "sets", "-q",
                     env={"OPENBLAS_NUM_THREADS": None}, ulimit_kib=1_200_000, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "(`ulimit -v` or `ulimit -d`)" in result.stderr and "raise or remove that limit" in result.stderr


@pytest.mark.parametrize("command", ["ingest", "build", "export"])
def test_a_memory_error_is_one_line(tmp_path, monkeypatch, command):
    """Python's MemoryError (an allocation Arrow, NumPy or Python itself could not make) is one line saying what
    to change, in the three commands that handle the most data."""
    def no_memory(*args, **kwargs):
        raise MemoryError()

    if command == "ingest":
        monkeypatch.setattr("mementos.ingest.worker.process", no_memory)
        src = write_hub_dir(tmp_path / "src", small_rows())
        args = ["ingest", src, "--db", tmp_path / "w.duckdb", "--workers", "0", "--no-tokens", "-q"]
    else:
        db = ingest_hub(tmp_path, small_rows())
        if command == "build":
            monkeypatch.setattr("mementos.warehouse.materializations.for_model", no_memory)
            args = ["build", "--db", db]
        else:
            monkeypatch.setattr("mementos.warehouse.export.run.near_duplicate_groups", no_memory)
            args = ["export", "memento", "--db", db, "--out", tmp_path / "sets", "-q"]
    result = invoke(*args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: out of memory; the machine has no memory to spare: free some")
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("value, why", [("abc", "is not a size DuckDB accepts (Memory must have a number (e.g. 1GB))"),
                                        ("0", "is not a size DuckDB accepts (Unknown unit for memory: ''"),
                                        ("0MB", "is too small for DuckDB to run any query")])
def test_a_bad_mementos_memory_limit_is_one_line_in_every_command(built, tmp_path, value, why):
    commands = [["sql", "SELECT 1", "--db", built], ["models", "--db", built], ["show", "a:0", "--db", built],
                ["build", "--db", built], ["report", "--db", built, "--out", tmp_path / "r.html"],
                ["export", "plain", "--db", built, "--out", tmp_path / "sets"],
                ["ingest", tmp_path / "none", "--db", tmp_path / "new.duckdb"],
                ["sample", "--out", tmp_path / "sample", "--traces", "3"]]
    for args in commands:
        result = run_cli(*args, env={"MEMENTOS_MEMORY_LIMIT": value})
        assert result.returncode == 1 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert result.stderr.startswith(f"Error: MEMENTOS_MEMORY_LIMIT={value!r} {why}"), (args, result.stderr)
    assert not (tmp_path / "new.duckdb").exists() and not (tmp_path / "sample").exists()



def test_out_of_memory_says_which_setting_to_raise(tmp_path, monkeypatch):
    db = ingest_hub(tmp_path, small_rows())
    monkeypatch.setattr(storage, "MEMORY_LIMIT", "2MB")  # what MEMENTOS_MEMORY_LIMIT=2MB sets
    result = invoke("build", "--db", db)
    assert result.exit_code == 1
    [failed] = [line for line in result.output.splitlines() if "Out of Memory Error" in line]
    assert failed.endswith("; DuckDB may use 2MB here (MEMENTOS_MEMORY_LIMIT): set it higher, "
                           "e.g. MEMENTOS_MEMORY_LIMIT=2GB, and run the command again")
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------
# One 50 MB response

# VmHWM, not ru_maxrss: Linux carries the forking process's peak (pytest's, here) over into ru_maxrss
PEAK_RSS = """import re, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    kib = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
    print(f"peak rss {int(kib) * 1024}", file=sys.stderr)
"""


def run_measured(*args) -> tuple[subprocess.CompletedProcess, int]:
    """`python cli.py ARGS` with DuckDB's default pools (MEMENTOS_MEMORY_LIMIT unset), and its peak RSS in bytes."""
    env = {k: v for k, v in os.environ.items() if k != "MEMENTOS_MEMORY_LIMIT"}
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, str(REPO / "cli.py"), *map(str, args)],
                            capture_output=True, text=True, timeout=300, env=env)
    peak = int(result.stderr.rsplit("peak rss ", 1)[1])
    return result, peak


@pytest.fixture(scope="module")
def huge(tmp_path_factory) -> tuple[Path, str]:
    """A warehouse (with tokens, all models built) holding one trace with a 50 MB block, and three small ones."""
    from mementos.ingest.pipeline import run_ingest
    from mementos.warehouse.engine import build

    tmp = tmp_path_factory.mktemp("huge")
    block = "".join(f"step {i}: x = {i * 7 % 1000}, so y = {i % 97}\n" for i in range(1_700_000))[:50_000_000]
    assert len(block) == 50_000_000 and block == block.strip()  # 49,990,000 characters between head and tail
    response = memento([(block, "x and y, step by step")])
    src = write_hub_dir(tmp / "src", [row(response, problem="The long one?")] + small_rows())
    db = tmp / "w.duckdb"
    run_ingest(str(src), db, config="default", name="big", with_tokens=True, workers=0, progress=False)
    assert build(db).ok
    return db, response


def test_export_of_a_50_mb_response_fits_the_default_pool_and_1_gib(huge, tmp_path):
    """DuckDB's to_json asked for 512 MiB to encode the 50 MB row (six bytes a character, rounded up to a power of
    two), more than the 600 MB pool; such rows are now encoded by export/json_lines.py, the same bytes."""
    import json

    db, response = huge
    result, peak = run_measured("export", "memento", "--db", db, "--out", tmp_path / "sets", "--split", "train=1", "-q")
    assert result.returncode == 0, result.stderr
    assert peak < 2**30, peak
    records = [json.loads(line) for line in (tmp_path / "sets" / "train.jsonl").read_text().splitlines()]
    [record] = [r for r in records if r["trace_id"] == "big:0"]
    assert record["messages"] == [{"role": "user", "content": "The long one?"},
                                  {"role": "assistant", "content": response}]


def test_summarize_export_of_a_50_mb_block_fits_1_gib(huge, tmp_path):
    """Whether a memento copies its block split the 50 MB block into 8 million words: 1.3 GB. A memento shorter
    than the block's non-whitespace characters cannot hold it, and is now told so without the split."""
    db, _ = huge
    result, peak = run_measured("export", "summarize", "--db", db, "--out", tmp_path / "sets", "--split", "train=1",
                                "-q")
    assert result.returncode == 0, result.stderr
    assert peak < 2**30, peak


def test_report_showing_a_50_mb_trace_fits_its_pool_and_1_gib(huge, tmp_path):
    """The report read the whole response into its 64 MB pool (DuckDB asked for 64 MiB at once) and would have
    written all 50 MB into the page; now the pool holds the longest shown response while it is read, and the
    block is shown as `show` shows it: head, tail, and the query that prints the rest."""
    db, _ = huge
    out = tmp_path / "r.html"
    result, peak = run_measured("report", "--db", db, "--out", out, "--trace", "big:0", "-q")
    assert result.returncode == 0, result.stderr
    assert peak < 2**30, peak
    page = out.read_text()
    assert out.stat().st_size < 2_000_000
    assert ('<span class="gap">⟦… 49,990,000 characters not shown; <code>mementos sql --format csv</code> prints '
            'them: <code>SELECT text FROM segments WHERE trace_id = &#39;big:0&#39; AND kind = &#39;block&#39; AND '
            'block_idx = 0</code> …⟧</span>') in page
