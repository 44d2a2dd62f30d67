"""Crash safety of `build` and `export` on the real models, killed with SIGKILL at their named points.

test_engine.py kills a toy build and test_export.py checks the export's files;
this file checks the warehouse as a whole: after each kill it opens read-only
with exactly the tables and row counts it had before (a build is one
transaction, so a build killed at its N-th model, after N-1 models were
swapped in inside that transaction, leaves every model old), no temporary
tables or files are left, and the next run finishes the job.

The models are a copy of models/ taken when the module starts, so that edits
to models/ made while the tests run cannot change what they build.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from mementos.ingest.pipeline import run_ingest
from mementos.foundation import storage
from mementos.warehouse.engine import build
from mementos.warehouse.materializations import ASIDE_PREFIX
from mementos.warehouse.model_list import list_models
from mementos.warehouse.project import BUILDS_TABLE
from mementos.warehouse.export import ExportSpec, export
from mementos.sample import write_sample
from warehouse_state import snapshot


def ingest(source: Path, db: Path) -> None:
    run_ingest(str(source), db, config="all", name="s", workers=0, progress=False, with_tokens=False)


@pytest.fixture(scope="module")
def states(tmp_path_factory) -> dict[str, Path]:
    """built: a built warehouse; stale: the same after a re-ingest (every model stale); rebuilt: stale, built."""
    d = tmp_path_factory.mktemp("models")
    shutil.copytree(REPO / "models", d / "models")
    write_sample(d / "sample", 40, seed=5, progress=False)
    write_sample(d / "sample2", 30, seed=6, progress=False)
    ingest(d / "sample", d / "built" / "w.duckdb")
    assert build(d / "built" / "w.duckdb", models_dir=d / "models").ok
    shutil.copytree(d / "built", d / "stale")
    ingest(d / "sample2", d / "stale" / "w.duckdb")
    shutil.copytree(d / "stale", d / "rebuilt")
    assert build(d / "rebuilt" / "w.duckdb", models_dir=d / "models").ok
    return {**{name: d / name / "w.duckdb" for name in ("built", "stale", "rebuilt")}, "models": d / "models"}


def copy_of(db: Path, tmp_path: Path) -> Path:
    shutil.copytree(db.parent, tmp_path / "wh")
    return tmp_path / "wh" / db.name


def run(code: str, args: list, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """`code` in a fresh Python process (as the CLI would run it), with args as sys.argv[1:]."""
    env = {k: v for k, v in os.environ.items() if k not in ("MEMENTOS_KILL_AT", "MEMENTOS_STOP_AT")}
    if kill_at:
        env["MEMENTOS_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


BUILD = "import sys; from mementos.warehouse.engine import build; build(sys.argv[1], models_dir=sys.argv[2])"
EXPORT = ("import sys; from mementos.cli import parse_splits; from mementos.warehouse.export import ExportSpec, export; "
          "export(sys.argv[1], ExportSpec('memento', sys.argv[2], splits=parse_splits(sys.argv[3])), models_dir=sys.argv[4])")


def temporary_tables(db: Path) -> list[str]:
    with storage.connect(db) as con:
        return [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables WHERE starts_with("
                                          "table_name, ?)", [ASIDE_PREFIX]).fetchall()]


def model_tables(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith("_") and k not in storage.BASE_TABLES
            and k != BUILDS_TABLE}


def assert_finishes_like_a_clean_build(db: Path, states: dict) -> None:
    assert build(db, models_dir=states["models"]).ok  # the lock was released, and the next build finishes the job
    # every model fresh, but those built on request only (a plain build leaves them out)
    assert {i.state for i in list_models(db, models_dir=states["models"]) if not i.reason.startswith("on request")} == {
        "fresh"}
    assert model_tables(snapshot(db)) == model_tables(snapshot(states["rebuilt"]))
    assert temporary_tables(db) == []


BUILD_POINTS = ["build.after_create", "build.before_swap", "build.before_commit"]


@pytest.mark.slow  # make test: test_engine.py kills a toy build at each point; the mid-way kill below
@pytest.mark.parametrize("point", BUILD_POINTS)
def test_build_killed_at_its_first_model_changes_nothing(states, tmp_path, point):
    db = copy_of(states["stale"], tmp_path)
    before = snapshot(db)
    proc = run(BUILD, [db, states["models"]], kill_at=point)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(db) == before
    assert temporary_tables(db) == [] and not storage.is_locked(db)
    assert_finishes_like_a_clean_build(db, states)


def test_build_killed_mid_way_changes_nothing_and_the_next_build_finishes(states, tmp_path):
    """Killed as its fourth model is swapped in: the three before it were swapped in the same
    uncommitted transaction, so every model is the old one (all old, not each old-or-new)."""
    db = copy_of(states["stale"], tmp_path)
    before = snapshot(db)
    assert model_tables(before) != model_tables(snapshot(states["rebuilt"]))  # the kill has something to undo
    fresh_before = [i.name for i in list_models(db, models_dir=states["models"]) if i.state == "fresh"]
    proc = run(BUILD, [db, states["models"]], kill_at="build.before_swap@4")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(db) == before
    fresh = [i.name for i in list_models(db, models_dir=states["models"]) if i.state == "fresh"]
    assert fresh == fresh_before, fresh  # nothing committed before the kill
    assert temporary_tables(db) == [] and not storage.is_locked(db)
    assert_finishes_like_a_clean_build(db, states)


EXPORT_POINTS = ["export.mid_write", "export.before_rename"]


@pytest.mark.slow  # make test: test_export.py kills an export at both points and checks its files
@pytest.mark.parametrize("point", EXPORT_POINTS)
def test_export_killed_leaves_the_warehouse_and_previous_files_as_they_were(states, tmp_path, point):
    db = copy_of(states["built"], tmp_path)
    out = tmp_path / "out"
    export(db, ExportSpec("memento", out, splits={"train": 0.5, "test": 0.5}), models_dir=states["models"])
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    before = snapshot(db)
    proc = run(EXPORT, [db, out, "train=0.7,test=0.3", states["models"]], kill_at=point)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(db) == before and not storage.is_locked(db)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in files} == files
    export(db, ExportSpec("memento", out, splits={"train": 0.7, "test": 0.3}), models_dir=states["models"])
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".export-tmp")]  # the killed export's stage removed
    assert snapshot(db) == before
