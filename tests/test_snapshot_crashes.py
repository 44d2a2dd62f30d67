"""kill -9 of a writer at each named crash point while readers loop: no reader errors, and every
reader sees one published state, never a mix (foundation/snapshots.py).

A reader process opens the warehouse again and again (`mementos.connect`) and records what one
query over the base views and a model returns; the writer is a real `python cli.py` subprocess
killed with SIGKILL at a point (MEMENTOS_KILL_AT, foundation/faults.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO
from test_concurrency import base, db  # noqa: F401  (fixtures: the built 3-trace warehouse, a copy per test)
from mementos.foundation import layout
from mementos.ingest.pipeline import run_ingest
from mementos.warehouse.engine import build
from warehouse_state import committed_dirs, run_dirs

# The readers pause 50 ms between reads: spinning, two of them took the cores from the writers they watch
# (and from the other test worker); each still reads about fifty times while the killed writers run.
READER = """
import os, sys, time, mementos
stop, seen, errors = sys.argv[2], set(), []
ready = f"{stop}.read.{os.getpid()}"  # the test's writer starts once every reader has read
while not os.path.exists(stop):
    try:
        with mementos.connect(sys.argv[1]) as con:
            seen.add(con.execute("SELECT (SELECT count(*) FROM traces), (SELECT count(*) FROM segments), "
                                 "(SELECT count(*) FROM trace_compression)").fetchall()[0])
    except Exception as exc:
        errors.append(repr(exc))
    if ready:
        open(ready, "w").close()
        ready = None
    time.sleep(0.05)
print(sorted(seen))
print(errors[:3])
"""

STATE_OLD = (3, 9, 3)  # 3 traces of 3 segments each, models built over them
STATE_INGESTED = (5, 15, 3)  # the new run published, the models not yet rebuilt
STATE_BUILT = (5, 15, 5)


def with_readers(db: Path, run_writer, readers: int = 2) -> tuple[set, list]:
    """Run `run_writer()` while `readers` reader processes loop; (states seen, reader errors)."""
    stop = db.parent.parent / "stop"
    procs = [subprocess.Popen([sys.executable, "-c", READER, str(db), str(stop)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(readers)]

    def have_read() -> list[Path]:  # the files READER writes after its first read
        return list(stop.parent.glob(f"{stop.name}.read.*"))

    try:
        deadline = time.monotonic() + 120
        while len(have_read()) < readers:
            assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, "a reader did not start"
            time.sleep(0.05)
        run_writer()
        time.sleep(0.5)
    finally:
        stop.touch()
    seen, errors = set(), []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        states, errs = out.strip().splitlines()
        seen |= set(eval(states))
        errors += eval(errs)
    for path in [stop, *have_read()]:
        path.unlink()
    return seen, errors


def killed_writer(args: list, kill_at: str) -> subprocess.CompletedProcess:
    """`python cli.py ARGS`, killed with SIGKILL at the named point."""
    env = {**os.environ, "MEMENTOS_KILL_AT": kill_at}
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def ingest_new(db: Path, base: Path) -> None:
    """What the killed ingests were doing, in this process: new.jsonl as dataset t."""
    run_ingest(str(base / "new.jsonl"), db, name="t", workers=0, progress=False, with_tokens=False)


def state(db: Path) -> tuple[int, int, int]:
    import mementos

    with mementos.connect(db) as con:
        return con.execute("SELECT (SELECT count(*) FROM traces), (SELECT count(*) FROM segments), "
                           "(SELECT count(*) FROM trace_compression)").fetchall()[0]


# In the order they are passed; the last ones are after the publish's rename, so the new state stays.
# Readers only ever open published snapshots, so every kill inside the private stage looks the same to
# them: one such point per command here (ingest.before_load, build.before_commit), the publish's own
# points, and the one after it. The other stage points are killed without readers, checking the state
# they leave: ingest.start, publish.views and after_commit in test_crash_safety.py, mid_write and
# before_commit in test_incremental_ingest.py (before_commit in test_ingest.py too), every build point on
# a toy project in test_engine.py.
INGEST_POINTS = ["ingest.before_load", "snapshot.before_publish", "snapshot.after_publish", "ingest.after_commit"]
BUILD_POINTS = ["build.before_commit", "snapshot.before_publish", "snapshot.after_publish"]
PUBLISHED = {"snapshot.after_publish", "ingest.after_commit"}


def test_ingest_killed_at_each_point_while_readers_loop(db, base):
    """One killed ingest after another (each cleans up after the one before), readers looping throughout."""
    args = ["ingest", base / "new.jsonl", "--db", db, "--name", "t", "--workers", 0, "--no-progress", "--no-tokens"]
    after = {}

    def kill_each():
        for point in INGEST_POINTS:
            result = killed_writer(args, point)
            assert result.returncode == -signal.SIGKILL, (point, result.stderr)
            after[point] = state(db)

    seen, errors = with_readers(db, kill_each)
    assert errors == []
    assert after == {p: STATE_INGESTED if INGEST_POINTS.index(p) >= INGEST_POINTS.index("snapshot.after_publish")
                     else STATE_OLD for p in INGEST_POINTS}
    assert seen == {STATE_OLD, STATE_INGESTED}  # never a mix of the two
    ingest_new(db, base)  # the next write cleans up after the killed ones
    assert run_dirs(db) == committed_dirs(db)


def test_build_killed_at_each_point_while_readers_loop(db, base):
    ingest_new(db, base)
    after = {}

    def kill_each():
        for point in BUILD_POINTS:
            result = killed_writer(["build", "--db", db], point)
            assert result.returncode == -signal.SIGKILL, (point, result.stderr)
            after[point] = state(db)

    seen, errors = with_readers(db, kill_each)
    assert errors == []
    assert after == {p: STATE_BUILT if p in PUBLISHED else STATE_INGESTED for p in BUILD_POINTS}
    assert seen == {STATE_INGESTED, STATE_BUILT}
    assert build(db).ok  # the next build cleans up after the killed ones
    assert not list(db.parent.glob(f".{db.name}.publish-*"))  # no link left beside the catalog
    assert len(list(layout.snapshot_dir(db).glob("*.duckdb"))) == 1
