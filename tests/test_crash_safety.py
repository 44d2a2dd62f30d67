"""Crash safety: an ingest killed with SIGKILL at any point leaves the warehouse as it was.

Each named checkpoint (foundation/faults.py) is run on its own, in a real
`python cli.py ingest` subprocess with MEMENTOS_KILL_AT set. After each kill the
warehouse must open read-only with exactly the tables and row counts it had
before, and the next ingest must remove the leftovers and succeed.
tests/test_ingest.py has the original before_commit case; this file runs every point.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, full_row, memento, row, write_hub_dir, write_jsonl
from mementos.ingest.pipeline import run_ingest
from mementos.foundation import storage
from warehouse_state import committed_dirs, run_dirs, snapshot

# Every point an ingest passes with --config all on a source that fills all six dataset tables.
KILL_POINTS_BEFORE_COMMIT = [
    "ingest.start",
    "ingest.mid_write",  # main process, after the first batch's Parquet files are written
    "ingest.worker_write",  # with --workers 0 the "worker" is the ingest process itself
    "ingest.before_load",
    "ingest.publish.views",  # the views already point at the new run, inside the uncommitted transaction
    "ingest.before_commit",
]


def cli_ingest(source: Path, db: Path, kill_at: str | None = None, workers: int = 0, name: str = "t",
               config: str = "all", timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("MEMENTOS_KILL_AT", None)
    if kill_at:
        env["MEMENTOS_KILL_AT"] = kill_at
    # capture_output waits until every holder of stdout/stderr has exited, so an
    # orphaned worker process would show up here as a timeout.
    return subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "ingest", str(source), "--db", str(db), "--name", name,
         "--config", config, "--workers", str(workers), "--no-progress", "--no-tokens"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def corpus(root: Path, n: int, tag: str) -> Path:
    """A hub-layout corpus that fills every dataset table: ok and flagged rows, both configs."""
    full = [full_row([[f"{tag} sentence {i}.", "And another."], ["Last one."]], [f"m{i}", "end"], problem=f"{tag}{i}")
            for i in range(n)]
    default = [{k: v for k, v in r.items() if k in ("problem", "response", "domain", "source", "difficulty")}
               for r in full]
    default.append(row("<think>raw thoughts</think>42", problem=f"{tag} raw"))
    return write_hub_dir(root, default, full)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A warehouse with two datasets, built once; each test works on a copy."""
    d = tmp_path_factory.mktemp("base")
    db = d / "wh" / "w.duckdb"
    run_ingest(str(corpus(d / "old", 3, "old")), db, config="all", name="t", workers=0, progress=False,
               with_tokens=False)
    run_ingest(str(corpus(d / "other", 2, "other")), db, config="all", name="other", workers=0, progress=False,
               with_tokens=False)
    corpus(d / "new", 6, "new")
    return d


@pytest.fixture
def wh(base, tmp_path) -> tuple[Path, Path]:
    """(db, new source) in a private copy of the base warehouse."""
    shutil.copytree(base / "wh", tmp_path / "wh")
    return tmp_path / "wh" / "w.duckdb", base / "new"


def assert_recovers(db: Path, source: Path, expect_traces: int = 7 + 3) -> None:
    """The next ingest cleans leftovers and succeeds; only committed run directories remain."""
    run_ingest(str(source), db, config="all", name="t", workers=0, progress=False, with_tokens=False)
    state = snapshot(db)
    assert state["traces"] == expect_traces  # 7 new traces of 't' + 3 of 'other'
    assert run_dirs(db) == committed_dirs(db)
    assert not storage.is_locked(db)


# make test runs an early point and one inside the load transaction (test_ingest.py has before_commit);
# make test-slow runs every point.
FAST_POINTS = ("ingest.start", "ingest.publish.views")


@pytest.mark.parametrize("point", [p if p in FAST_POINTS else pytest.param(p, marks=pytest.mark.slow)
                                   for p in KILL_POINTS_BEFORE_COMMIT])
def test_kill_before_commit_leaves_warehouse_as_it_was(wh, point):
    db, source = wh
    before, dirs_before = snapshot(db), run_dirs(db)
    proc = cli_ingest(source, db, kill_at=point)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(db) == before
    assert run_dirs(db) >= dirs_before  # the committed files are untouched; the killed run's may be left over
    assert not storage.is_locked(db)  # flock dies with the process
    assert_recovers(db, source)


def test_kill_after_commit_keeps_the_new_data_and_next_run_cleans(wh):
    db, source = wh
    before = snapshot(db)
    proc = cli_ingest(source, db, kill_at="ingest.after_commit")
    assert proc.returncode == -signal.SIGKILL
    after = snapshot(db)  # the commit is durable (DuckDB replays its WAL), even read-only
    assert after["traces"] == 7 + 3 and after["_runs"] != before["_runs"]
    assert len(run_dirs(db)) > len(committed_dirs(db))  # the replaced run's files are still there
    assert_recovers(db, source)


@pytest.mark.slow
def test_kill_before_commit_of_the_first_ingest_publishes_no_warehouse(base, tmp_path):
    db = tmp_path / "fresh.duckdb"
    proc = cli_ingest(base / "new", db, kill_at="ingest.before_commit")
    assert proc.returncode == -signal.SIGKILL
    assert not db.exists()  # nothing was published; the data folder it made is its own leftover
    assert_recovers(db, base / "new", expect_traces=7)


@pytest.fixture(scope="module")
def many_batches(tmp_path_factory) -> Path:
    """Enough rows for several 1000-row batches, so that batches are in flight in the workers."""
    d = tmp_path_factory.mktemp("many")
    return write_jsonl(d / "many.jsonl", [row(memento([(f"b{i}", "s")]), problem=f"p{i}") for i in range(5500)])


def test_kill_mid_write_with_worker_processes(wh, many_batches):
    db, _ = wh
    before = snapshot(db)
    proc = cli_ingest(many_batches, db, kill_at="ingest.mid_write", workers=2, config="default")  # returns only when workers are gone
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert run_dirs(db) - committed_dirs(db), "the killed run should have left Parquet parts behind"
    assert snapshot(db) == before
    run_ingest(str(many_batches), db, name="t", workers=0, progress=False, with_tokens=False)
    assert snapshot(db)["traces"] == 5500 + 3
    assert run_dirs(db) == committed_dirs(db)


@pytest.mark.slow
def test_dead_worker_fails_the_ingest_in_one_line_and_changes_nothing(wh, many_batches):
    db, _ = wh
    before, dirs = snapshot(db), run_dirs(db)
    proc = cli_ingest(many_batches, db, kill_at="ingest.worker_write", workers=2, config="default")
    assert proc.returncode == 1
    assert "a worker process died" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(db) == before
    assert run_dirs(db) == dirs  # the failed run removed its own files


@pytest.mark.slow
def test_kill_at_random_moments(wh, many_batches):
    """SIGKILL at random times during real ingests: the warehouse is always the old one or the new one."""
    db, _ = wh
    old = snapshot(db)
    rng = random.Random(8)
    outcomes = []
    for attempt in range(12):
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "cli.py"), "ingest", str(many_batches), "--db", str(db), "--name", "t",
             "--workers", "2", "--no-progress", "--no-tokens"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.5, 12))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)  # returns once the orphaned workers are gone too
        state = snapshot(db)
        outcomes.append(proc.returncode)
        if state["traces"] == 5500 + 3:
            old = state  # the run committed before the kill: that is the warehouse now
        assert state == old, f"attempt {attempt}: half-written warehouse"
        assert not storage.is_locked(db)
    run_ingest(str(many_batches), db, name="t", workers=0, progress=False, with_tokens=False)
    assert run_dirs(db) == committed_dirs(db)
