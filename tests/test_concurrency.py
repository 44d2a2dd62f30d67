"""Concurrent use: readers never wait for a writer, writers exclude each other (warehouse.md, "Snapshots").

A writer (ingest, build, sql --write) works on a staged copy of the catalog and publishes it with
one rename; readers (sql, show, report, export, models, plain DuckDB, mementos.connect) read the
snapshot published when they opened the warehouse. A command is held at a named point with
MEMENTOS_STOP_AT (foundation/faults.py stops the process with SIGSTOP there); the test then runs
other commands against the warehouse and lets it finish with SIGCONT.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from mementos.cli import main
from conftest import REPO, built_old_and_new
from mementos.ingest.pipeline import run_ingest
from mementos.foundation import layout, storage
from warehouse_state import committed_dirs, run_dirs, snapshot


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A warehouse of 3 traces with its models built (report and export have nothing to build)."""
    return built_old_and_new(tmp_path_factory.mktemp("base"))


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
def held_at(point: str, args: list[str], timeout: float):
    """A subprocess (`python ARGS`) stopped (SIGSTOP) at `point`, its first pass; resumed on exit, and its
    result checked by the caller."""
    env = {k: v for k, v in os.environ.items() if k != "MEMENTOS_KILL_AT"}
    env["MEMENTOS_STOP_AT"] = f"{point}@1"
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), f"{args[0]} ended before reaching {point}: {proc.stderr.read()}"
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        try:
            proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def ingest_held_at(point: str, source: Path, db: Path):
    """An ingest of `source` as dataset 't' held at `point` (held_at)."""
    return held_at(point, [str(REPO / "cli.py"), "ingest", str(source), "--db", str(db), "--name", "t",
                           "--workers", "0", "--no-progress", "--no-tokens"], timeout=120)


class Reader:
    """Another process holding a read-only connection (`mementos.connect`) open; `ask` runs a query on it."""

    CODE = ("import sys, mementos; con = mementos.connect(sys.argv[1]); print('ready', flush=True)\n"
            "for line in sys.stdin:\n"
            "    print(con.execute(line).fetchall(), flush=True)\n")

    def __init__(self, db: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE, str(db)], cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        assert self.proc.stdout.readline().strip() == "ready"

    def ask(self, query: str) -> str:
        self.proc.stdin.write(query + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@contextmanager
def reader_holding(db: Path):
    reader = Reader(db)
    try:
        yield reader
    finally:
        reader.close()


def build_held_at(point: str, db: Path, models: Path):
    """A `build --full-refresh` of the models in `models` held at `point` (held_at)."""
    code = ("import sys; from mementos.warehouse.engine import build; "
            "sys.exit(not build(sys.argv[1], models_dir=sys.argv[2], full_refresh=True).ok)")
    return held_at(point, ["-c", code, str(db), str(models)], timeout=300)


READS = (["sql", "SELECT count(*) AS n FROM traces", "--format", "csv"], ["models"], ["show", "t:0"])


def test_while_an_ingest_publishes_readers_read_the_last_snapshot_and_writers_are_told(db, base, tmp_path):
    before = snapshot(db)
    with ingest_held_at("ingest.before_commit", base / "new.jsonl", db) as writer:
        for args in READS:
            result = cli(*args, "--db", db)
            assert result.exit_code == 0, (args, result.output)
        assert cli("sql", "SELECT count(*) AS n FROM traces", "--db", db, "--format", "csv").output.split() == ["n", "3"]
        assert cli("report", "--db", db, "--out", tmp_path / "r.html").exit_code == 0
        assert cli("export", "memento", "--db", db, "--out", tmp_path / "export").exit_code == 0
        expected = f"Error: the warehouse {db} is being written by `ingest {base / 'new.jsonl'} --name t` (pid {writer.pid}"
        for args in (["build", "--db", db], ["sql", "DELETE FROM model_builds", "--db", db, "--write"],
                     ["ingest", base / "old.jsonl", "--db", db, "--name", "other", "--workers", 0, "--no-progress"]):
            message = one_line_error(cli(*args))
            assert message.startswith(expected) and message.endswith("retry when it finishes"), (args, message)
        assert storage.is_locked(db) and snapshot(db) == before
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


def test_an_ingest_publishes_while_a_reader_keeps_its_snapshot(db, base):
    with reader_holding(db) as reader:
        assert reader.ask("SELECT count(*) FROM traces") == "[(3,)]"
        run_ingest(str(base / "new.jsonl"), db, name="t", workers=0, progress=False, with_tokens=False)
        assert snapshot(db)["traces"] == 5  # a new reader sees the new snapshot
        assert reader.ask("SELECT count(*), count(DISTINCT run_id) FROM traces") == "[(3, 1)]"  # the old one's
    assert run_dirs(db) != committed_dirs(db)  # the old run stays until a write finds no reader of it


def test_a_long_reader_keeps_reading_while_two_builds_and_an_ingest_publish(db, base):
    """Its files are not deleted under it: reclamation skips a snapshot whose catalog a process has open."""
    from mementos.warehouse.engine import build

    with reader_holding(db) as reader:
        first = reader.ask("SELECT count(*), sum(n_blocks) FROM trace_compression")
        for _ in range(2):
            assert build(db, full_refresh=True).ok
        run_ingest(str(base / "new.jsonl"), db, name="t", workers=0, progress=False, with_tokens=False)
        assert build(db).ok
        assert reader.ask("SELECT count(*), sum(n_blocks) FROM trace_compression") == first
        assert reader.ask("SELECT count(*) FROM segments WHERE length(text) > 0") == "[(9,)]"  # the Parquet is read
    run_ingest(str(base / "new.jsonl"), db, name="t", workers=0, progress=False, with_tokens=False)
    assert run_dirs(db) == committed_dirs(db)  # the reader gone, the next write reclaims its snapshot
    assert len(list(layout.snapshot_dir(db).glob("*.duckdb"))) == 1


def test_reader_arriving_during_an_ingest_does_not_stop_it(db, base):
    with ingest_held_at("ingest.before_load", base / "new.jsonl", db) as writer:
        with reader_holding(db) as reader:
            os.kill(writer.pid, signal.SIGCONT)
            writer.communicate(timeout=120)
            assert reader.ask("SELECT count(*) FROM traces") == "[(3,)]"
    assert writer.returncode == 0
    assert snapshot(db)["traces"] == 5


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


def test_during_a_build_readers_and_plain_duckdb_read_and_writers_are_told(db, base, tmp_path):
    shutil.copytree(REPO / "models", tmp_path / "models")  # edits to models/ meanwhile cannot break this
    with build_held_at("build.before_commit", db, tmp_path / "models") as proc:
        for args in READS:
            result = cli(*args, "--db", db)
            assert result.exit_code == 0, (args, result.output)
        # plain DuckDB started in the warehouse's folder reads everything, models included
        code = ("import duckdb; con = duckdb.connect('w.duckdb', read_only=True); "
                "print(con.execute('SELECT (SELECT count(*) FROM segments), (SELECT count(*) FROM block_pairs)')"
                ".fetchall())")
        plain = subprocess.run([sys.executable, "-c", code], cwd=db.parent, capture_output=True, text=True)
        assert plain.stdout.strip() == "[(9, 3)]", plain.stderr
        expected = f"Error: the warehouse {db} is being written by `build --full-refresh` (pid {proc.pid}"
        for args in (["ingest", base / "new.jsonl", "--db", db, "--name", "t", "--workers", 0, "--no-progress"],
                     ["build", "--db", db]):
            assert one_line_error(cli(*args)).startswith(expected), args
    assert proc.returncode == 0, proc.stderr
    assert not storage.is_locked(db)


def folder_state(folder: Path) -> list[tuple[str, int, int]]:
    """Every path under `folder` with its size and modification time in nanoseconds."""
    return sorted((str(p.relative_to(folder)), p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*"))


def test_a_read_leaves_the_warehouse_folder_unchanged(db, tmp_path):
    import mementos

    before = folder_state(db.parent)
    for args in (*READS, ["report", "--out", tmp_path / "r.html"], ["export", "memento", "--out", tmp_path / "x"],
                 ["sql", "SELECT * FROM segments ORDER BY ALL", "--format", "csv"]):
        result = cli(*args, "--db", db)
        assert result.exit_code == 0, (args, result.output)
    with mementos.connect(db) as con:
        assert con.execute("SELECT count(*) FROM traces").fetchall() == [(3,)]
    assert folder_state(db.parent) == before  # no WAL, lock, temp file or changed byte


def test_mementos_connect_works_from_any_working_directory(db, tmp_path, monkeypatch):
    import mementos

    monkeypatch.chdir(tmp_path)
    with mementos.connect(os.path.relpath(db, tmp_path)) as con:
        assert con.execute("SELECT count(*) FROM segments").fetchall() == [(9,)]
        with pytest.raises(duckdb.InvalidInputException, match="read-only"):
            con.execute("CREATE TABLE x AS SELECT 1")


def test_a_report_that_needs_a_model_never_built_says_so_while_a_writer_runs(tmp_path, base):
    """Read as last published, a report needs its models to exist: one never built is one line naming the writer."""
    db = tmp_path / "fresh" / "w.duckdb"
    run_ingest(str(base / "old.jsonl"), db, name="t", workers=0, progress=False, with_tokens=False)
    with ingest_held_at("ingest.mid_write", base / "new.jsonl", db) as writer:
        message = one_line_error(cli("report", "--db", db, "--out", tmp_path / "r.html"))
    assert message.startswith("Error: report needs all_traces, analysed_traces, block_pairs and more, never built, "
                              f"and {db} is being written by `ingest {base / 'new.jsonl'} --name t` (pid {writer.pid}")
    assert not (tmp_path / "r.html").exists()


def test_a_reader_spills_outside_the_warehouse_folder(db):
    """A reader that outgrows its pool spills to the system's temp directory, made if missing (the full-scale
    report once failed: DuckDB creates its spill directory, not the parents)."""
    import mementos

    before = folder_state(db.parent)
    shutil.rmtree(storage.reader_temp_dir().parent, ignore_errors=True)  # as on a machine where none ran yet
    with mementos.connect(db) as con:
        con.execute("SET memory_limit = '20MB'")
        assert con.execute("SELECT max(x) FROM (SELECT range AS x FROM range(20000000) ORDER BY x DESC LIMIT 19000000)"
                           ).fetchall() == [(19999999,)]
    assert folder_state(db.parent) == before
