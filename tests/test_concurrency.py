"""Concurrent use: one writer at a time, readers in between, and a clear message instead of a lock traceback.

An ingest is held at a named point with MEMENTOS_STOP_AT (foundation/faults.py
stops the process with SIGSTOP there); the test then runs other commands
against the warehouse and lets the ingest finish with SIGCONT.

Ingest opens DuckDB only at its start and for the final load, so readers can
read during most of an ingest; while it holds DuckDB's own file lock
(ingest.before_commit), readers get the busy message.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from conftest import REPO, memento, row, write_jsonl
from ingest.pipeline import run_ingest
from foundation import storage
from warehouse_state import committed_dirs, run_dirs, snapshot


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("base")
    write_jsonl(d / "old.jsonl", [row(memento([(f"b{i}", "s")]), problem=f"p{i}") for i in range(3)])
    write_jsonl(d / "new.jsonl", [row(memento([(f"b{i}", "s")]), problem=f"p{i}") for i in range(5)])
    run_ingest(str(d / "old.jsonl"), d / "wh" / "w.duckdb", name="t", workers=0, progress=False, with_tokens=False)
    return d


@pytest.fixture
def db(base, tmp_path) -> Path:
    shutil.copytree(base / "wh", tmp_path / "wh")
    return tmp_path / "wh" / "w.duckdb"


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # ClickException, no traceback
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@contextmanager
def ingest_held_at(point: str, source: Path, db: Path):
    """An ingest subprocess stopped (SIGSTOP) at `point`; resumed on exit, and its result checked by the caller."""
    env = {k: v for k, v in os.environ.items() if k != "MEMENTOS_KILL_AT"}
    env["MEMENTOS_STOP_AT"] = f"{point}@1"  # the first pass only
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "ingest", str(source), "--db", str(db),
                             "--name", "t", "--workers", "0", "--no-progress", "--no-tokens"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), f"the ingest ended before reaching {point}: {proc.stderr.read()}"
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        try:
            proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


@contextmanager
def reader_holding(db: Path):
    """Another process with a read-only DuckDB connection open until the block ends."""
    code = ("import sys; from foundation import storage; con = storage.connect(sys.argv[1]); "
            "con.execute('SELECT count(*) FROM traces').fetchall(); print('ready', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_while_ingest_holds_duckdb_every_command_gets_the_busy_message(db, base, tmp_path):
    before = snapshot(db)
    with ingest_held_at("ingest.before_commit", base / "new.jsonl", db) as writer:
        expected = f"Error: the warehouse {db} is being written by `ingest {base / 'new.jsonl'} --name t` (pid {writer.pid}"
        for args in (
            ["sql", "SELECT count(*) FROM traces", "--db", db],
            ["report", "--db", db, "--out", tmp_path / "r.html"],
            ["export", "memento", "--db", db, "--out", tmp_path / "export"],
            ["build", "--db", db],
            ["sql", "DELETE FROM traces", "--db", db, "--write"],
            ["ingest", base / "old.jsonl", "--db", db, "--name", "other", "--workers", 0, "--no-progress"],
        ):
            message = one_line_error(cli(*args))
            assert message.startswith(expected) and message.endswith("retry when it finishes"), (args, message)
        assert not (tmp_path / "r.html").exists()
        assert storage.is_locked(db)
    assert writer.returncode == 0, writer.stderr
    assert snapshot(db)["traces"] == 5 and snapshot(db)["_runs"] != before["_runs"]
    assert not storage.is_locked(db)


def test_readers_read_while_an_ingest_works_outside_duckdb(db, base):
    before = snapshot(db)
    with ingest_held_at("ingest.mid_write", base / "new.jsonl", db) as writer:
        result = cli("sql", "SELECT count(*) AS n FROM traces", "--db", db, "--format", "csv")
        assert result.exit_code == 0 and result.output.split() == ["n", "3"], result.output  # the old data
        assert snapshot(db) == before
        message = one_line_error(cli("ingest", base / "old.jsonl", "--db", db, "--name", "x", "--workers", 0))
        assert f"is being written by `ingest {base / 'new.jsonl'} --name t` (pid {writer.pid}" in message
    assert writer.returncode == 0, writer.stderr
    assert snapshot(db)["traces"] == 5


def test_two_readers_at_once(db):
    with reader_holding(db), reader_holding(db):
        result = cli("sql", "SELECT count(*) AS n FROM traces", "--db", db, "--format", "csv")
        assert result.exit_code == 0 and result.output.split() == ["n", "3"], result.output


def test_ingest_while_a_reader_has_the_file_open_says_so_and_changes_nothing(db, base):
    before, dirs = snapshot(db), run_dirs(db)
    with reader_holding(db) as reader:
        message = one_line_error(cli("ingest", base / "new.jsonl", "--db", db, "--name", "t", "--workers", 0,
                                     "--no-progress"))
    # Not "being written by" the ingest itself: the lock file names the ingest, DuckDB names the reader.
    assert message == (f"Error: the warehouse {db} is open in another process (pid {reader.pid}), e.g. a query, "
                       f"report or export still reading it; retry when it finishes")
    assert snapshot(db) == before and run_dirs(db) == dirs
    assert not storage.is_locked(db)


def test_ingest_blocked_by_a_reader_fails_before_reading_any_source_row(db, base, tmp_path):
    """#16 item 9: the source's second line is not JSON, so an ingest that read the source before it found
    the reader would fail with that line's error; the busy message shows it stopped before the first batch."""
    source = tmp_path / "unreadable_after_row_1.jsonl"
    source.write_text((base / "new.jsonl").read_text().splitlines()[0] + "\n" + "{not json\n" * 5000)
    before, dirs = snapshot(db), run_dirs(db)
    with reader_holding(db) as reader:
        message = one_line_error(cli("ingest", source, "--db", db, "--name", "t", "--workers", 0, "--no-progress"))
    assert message == (f"Error: the warehouse {db} is open in another process (pid {reader.pid}), e.g. a query, "
                       f"report or export still reading it; retry when it finishes")
    assert snapshot(db) == before and run_dirs(db) == dirs


def test_reader_arriving_during_an_ingest_fails_its_load_cleanly(db, base):
    """The ingest has done its work outside DuckDB when a reader opens the file: the load fails, nothing is left."""
    before, dirs = snapshot(db), run_dirs(db)
    with ingest_held_at("ingest.before_load", base / "new.jsonl", db) as writer:
        with reader_holding(db) as reader:
            os.kill(writer.pid, signal.SIGCONT)
            _, stderr = writer.communicate(timeout=120)  # the load fails while the reader has the file open
    assert writer.returncode == 1
    assert stderr.strip().splitlines() == [
        f"Error: the warehouse {db} is open in another process (pid {reader.pid}), e.g. a query, report or export "
        f"still reading it; retry when it finishes"]
    assert snapshot(db) == before and run_dirs(db) == dirs == committed_dirs(db)


def test_a_raw_duckdb_writer_is_reported_by_pid(db):
    code = ("import sys, duckdb; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        message = one_line_error(cli("sql", "SELECT 1", "--db", db))
        assert message == f"Error: the warehouse {db} is being written by another process (pid {proc.pid}); " \
                          f"retry when it finishes"
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_while_a_build_holds_the_warehouse_others_get_the_busy_message(db, base, tmp_path):
    """A build held just before its commit (one for the whole build): readers and writers are told `build` is writing."""
    shutil.copytree(REPO / "models", tmp_path / "models")  # edits to models/ meanwhile cannot break this
    env = {k: v for k, v in os.environ.items() if k != "MEMENTOS_KILL_AT"}
    env["MEMENTOS_STOP_AT"] = "build.before_commit@1"  # the build's single COMMIT
    code = "import sys; from warehouse.engine import build; sys.exit(not build(sys.argv[1], models_dir=sys.argv[2]).ok)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(tmp_path / "models")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), proc.stderr.read()
        expected = f"Error: the warehouse {db} is being written by `build` (pid {proc.pid}"
        for args in (["sql", "SELECT count(*) FROM traces", "--db", db],
                     ["ingest", base / "new.jsonl", "--db", db, "--name", "t", "--workers", 0, "--no-progress"],
                     ["build", "--db", db]):
            assert one_line_error(cli(*args)).startswith(expected), args
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        try:
            proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, proc.stderr
    assert not storage.is_locked(db)
