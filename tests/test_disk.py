"""A full disk, or a read-only file system, under every command that writes (foundation/disk.py): one
line saying what was being written and what to free, and the warehouse, the old output and the disk
left as they were."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import REPO, ingest_hub, invoke, memento, row, small_rows, write_jsonl
from mementos.foundation import layout
from mementos.sample import write_sample
from warehouse_state import copy_warehouse, fingerprint


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MB tmpfs (root only; skipped elsewhere), and a way to fill it up to `leave` bytes."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")

    def fill(leave: int) -> None:
        with open(mnt / "filler", "ab") as f:
            f.write(b"\0" * max(0, shutil.disk_usage(mnt).free - leave))
        assert shutil.disk_usage(mnt).free <= leave

    yield mnt, fill
    subprocess.run(["umount", str(mnt)], check=True)


def test_build_on_a_full_disk_is_one_line_and_leaves_the_file_byte_identical(tmp_path, small_disk):
    from mementos.warehouse.engine import build

    mnt, fill = small_disk
    db = copy_warehouse(ingest_hub(tmp_path, small_rows()), mnt)  # never built: the first build
    before = fingerprint(db)
    fill(leave=8192)
    result = invoke("build", "--db", db)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    # the staged copy of the catalog does not fit (foundation/snapshots.py): nothing was published
    assert result.output.startswith(f"Error: disk full writing {db}")
    assert "; the build was rolled back, the warehouse is as it was" in result.output
    assert fingerprint(db) == before  # same bytes, no WAL beside it, no staged snapshot left
    (mnt / "filler").unlink()
    assert build(db).ok  # and the warehouse works


@pytest.mark.parametrize("workers", ["0", "2"])  # 0: Parquet written in the process; 2: batches spooled to workers
def test_ingest_on_a_full_disk_is_one_line_and_leaves_the_warehouse_as_it_was(tmp_path, small_disk, workers):
    mnt, fill = small_disk
    src = tmp_path / "src"
    write_sample(src, traces=60, seed=3)  # ~2.5 MB of responses: more than is left
    db = mnt / "w.duckdb"
    assert invoke("ingest", src, "--db", db, "--no-tokens", "-q").exit_code == 0
    before = fingerprint(db)
    fill(leave=300_000)
    # --full-refresh: the source is unchanged, and a plain re-ingest would read (and write) nothing
    result = invoke("ingest", src, "--db", db, "--no-tokens", "-q", "--workers", workers, "--full-refresh")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"Error: disk full writing {layout.data_dir(db)}: needs more than the ")
    assert "the warehouse is unchanged (this run's files were removed); free some space" in result.output
    (mnt / "filler").unlink()
    assert fingerprint(db) == before  # no run directory, no spool directory, the same DuckDB file


def test_report_on_a_full_disk_is_one_line_and_keeps_the_old_report(built, small_disk):
    mnt, fill = small_disk
    out = mnt / "r.html"
    out.write_text("the previous report")
    before = fingerprint(built)
    fill(leave=0)
    result = invoke("report", "--db", built, "--out", out)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert re.fullmatch(rf"Error: disk full writing {re.escape(str(out))}: needs \d+ KB \(0 KB free now\); "
                        rf"{re.escape(str(out))} is unchanged; free some space and run the command again\n",
                        result.output)
    assert out.read_text() == "the previous report"
    assert sorted(p.name for p in mnt.iterdir()) == ["filler", "r.html"]  # no r.html.tmp
    assert fingerprint(built) == before


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_export_on_a_full_disk_is_one_line_and_replaces_nothing(built, small_disk, fmt):
    mnt, fill = small_disk
    out = mnt / "sets"
    assert invoke("export", "memento", "--db", built, "--out", out, "--format", fmt).exit_code == 0
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    before = fingerprint(built)
    fill(leave=0)
    result = invoke("export", "memento", "--db", built, "--out", out, "--format", fmt, "--seed", "7")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"Error: disk full writing {out}")
    assert "(0 KB free now); nothing was replaced and no temporary file is left; " in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files  # the old export, and nothing else
    assert sorted(p.name for p in mnt.iterdir()) == ["filler", "sets"]  # no stage left beside it
    assert fingerprint(built) == before



@pytest.mark.parametrize("room", ["none", "the_copy"])  # the staged catalog does not fit / it fits, its commit does not
def test_disk_full_at_the_ingests_commit_is_one_line_and_publishes_nothing(tmp_path, small_disk, room):
    """The ingest is held once its Parquet is written (MEMENTOS_STOP_AT), the disk filled, then resumed."""
    mnt, fill = small_disk
    src = write_jsonl(tmp_path / "in.jsonl", [row(memento([(f"b{i}", "s")]), problem=f"p{i}") for i in range(40)])
    db = mnt / "w.duckdb"
    assert invoke("ingest", src, "--db", db, "--no-tokens", "-q", "--name", "t").exit_code == 0
    before = fingerprint(db)
    env = {**os.environ, "MEMENTOS_STOP_AT": "ingest.before_load@1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "ingest", str(src), "--db", str(db), "--name", "u",
                             "--workers", "0", "--no-progress", "--no-tokens"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    fill(leave=8192 if room == "none" else db.stat().st_size + 64 * 1024)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    (mnt / "filler").unlink()
    assert proc.returncode == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("Error: disk full writing ") and "the warehouse is unchanged" in err
    assert fingerprint(db) == before


def test_a_read_only_file_system_is_one_line_for_every_writer_and_readers_still_read(tmp_path, small_disk):
    mnt, _ = small_disk
    src = write_jsonl(tmp_path / "in.jsonl", [row(memento([("b", "s")]))])
    db = mnt / "w.duckdb"
    assert invoke("ingest", src, "--db", db, "--no-tokens", "-q", "--name", "t").exit_code == 0
    assert subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True).returncode == 0
    try:
        before = fingerprint(db)
        for args in (["ingest", src, "--db", db, "--no-tokens", "-q"], ["build", "--db", db],
                     ["sql", "CREATE TABLE x AS SELECT 1", "--db", db, "--write"],
                     ["report", "--db", db, "--out", mnt / "r.html"],
                     ["export", "memento", "--db", db, "--out", mnt / "x"],
                     ["sample", "--traces", 3, "--out", mnt / "s"]):
            result = invoke(*args)
            assert result.exit_code == 1 and result.output.count("\n") == 1, (args, result.output)
            assert result.output.startswith("Error: ") and "ead-only file system" in result.output, (args, result.output)
        result = invoke("sql", "SELECT count(*) AS n FROM traces", "--db", db, "--format", "csv")
        assert result.output.split() == ["n", "1"], result.output
        assert fingerprint(db) == before
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)


def test_sample_on_a_full_disk_is_one_line_and_leaves_nothing(small_disk):
    mnt, fill = small_disk
    fill(leave=0)
    result = invoke("sample", "--traces", 50, "--out", mnt / "s")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"Error: disk full writing {mnt}/")
    assert f"nothing was written to {mnt / 's'}; free some space" in result.output
    assert sorted(p.name for p in mnt.iterdir()) == ["filler"]
