"""What a second adversarial pass broke (issue 27, points 8-11), each case once: memory caps and
MEMENTOS_MEMORY_LIMIT, odd inputs and arguments, a warehouse with nothing to analyse, one huge response."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from conftest import REPO, memento, row, write_hub_dir


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


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


def ingest(tmp_path: Path, rows: list[dict], name: str = "a") -> Path:
    from ingest.pipeline import run_ingest

    src = write_hub_dir(tmp_path / f"src-{name}", rows)
    db = tmp_path / "w.duckdb"
    run_ingest(str(src), db, config="default", name=name, with_tokens=False, workers=0, progress=False)
    return db


def rows_of(domains=("math", "code", "math")) -> list[dict]:
    return [row(memento([("a b c d e f g h", "a b"), ("c d e f g h i j k l", "c d e")]), domain=d,
                problem=f"What is {i} x 7?") for i, d in enumerate(domains)]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    from warehouse.engine import build

    db = ingest(tmp_path_factory.mktemp("built"), rows_of())
    assert build(db).ok
    return db


# ---------------------------------------------------------------------------
# 8. Memory


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
        monkeypatch.setattr("ingest.worker.process", no_memory)
        src = write_hub_dir(tmp_path / "src", rows_of())
        args = ["ingest", src, "--db", tmp_path / "w.duckdb", "--workers", "0", "--no-tokens", "-q"]
    else:
        db = ingest(tmp_path, rows_of())
        if command == "build":
            monkeypatch.setattr("warehouse.engine._create", no_memory)
            args = ["build", "--db", db]
        else:
            monkeypatch.setattr("warehouse.export.near_duplicate_groups", no_memory)
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
