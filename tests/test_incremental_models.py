"""Incremental models (`kind: incremental`, warehouse/materializations.py): kept up to date trace by trace.

After every step of a sequence of ingests (a dataset added, a dataset re-ingested with other content,
re-ingested with fewer rows, another added) the incremental build leaves every model table equal to a
from-scratch build of the same data in a fresh warehouse (EXCEPT ALL both ways). A failed audit and a
kill -9 during an incremental step leave the previous state, the record of processed traces included.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from conftest import EVERY_MODEL, REPO, write_hub_dir, write_parquet
from golden_models_data import alignment_corpus
from mementos.foundation import snapshots, storage
from mementos.ingest.pipeline import run_ingest
from mementos.sample import write_sample
from mementos.warehouse.batches import run_batches
from mementos.warehouse.engine import build
from mementos.warehouse.executor import Status
from mementos.warehouse.materializations import processed_name
from mementos.warehouse.models import discover
from mementos.warehouse.project import BUILDS_TABLE
from warehouse_state import copy_warehouse, snapshot

SAMPLES = {"a": (120, 3), "a_changed": (120, 5), "a_fewer": (70, 6), "b": (50, 4)}  # traces, seed
# (dataset name, sample ingested under it): each step of the sequence, on one warehouse
SEQUENCE = [("a", "a"), ("b", "b"), ("a", "a_changed"), ("a", "a_fewer"), ("c", "b")]
# block_pairs' (traces added, removed) at each step: a replaced trace is removed and added
EXPECTED_INCREMENTS = [None, (50, 0), (120, 120), (70, 120), (50, 0)]
INCREMENTAL_MODELS = sorted(name for name, m in discover().items() if m.kind == "incremental")


def ingest(source: Path, db: Path, name: str) -> None:
    run_ingest(str(source), db, config="all", name=name, workers=0, progress=False, with_tokens=False)


def differences(db: Path, fresh: Path) -> dict[str, tuple[int, int]]:
    """model table -> (rows only in the fresh build, rows only in `db`), run_id left out (it names the
    ingest run, which differs between the two warehouses); models that agree are left out."""
    out = {}
    with storage.connect(db, read_only=True) as con:
        con.execute(f"ATTACH '{fresh}' AS fresh (READ_ONLY)")
        for name, model in discover().items():
            if model.relation != "table" or (model.on_request and not con.execute(
                    "SELECT 1 FROM duckdb_tables() WHERE database_name = 'fresh' AND table_name = ?", [name]).fetchall()):
                continue  # a model on request that neither build was asked for
            columns = ", ".join(f'"{c}"' for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = 'main' AND table_name = ? AND column_name <> 'run_id' ORDER BY column_index",
                [name]).fetchall())
            [(missing,)] = con.execute(f"SELECT count(*) FROM (SELECT {columns} FROM fresh.main.{name} "
                                       f"EXCEPT ALL SELECT {columns} FROM main.{name})").fetchall()
            [(extra,)] = con.execute(f"SELECT count(*) FROM (SELECT {columns} FROM main.{name} "
                                     f"EXCEPT ALL SELECT {columns} FROM fresh.main.{name})").fetchall()
            if missing or extra:
                out[name] = (missing, extra)
    return out


@dataclass
class StepOutcome:
    increments: dict[str, tuple[int, int]]  # incremental model -> (traces added, removed)
    differences: dict[str, tuple[int, int]] | None  # None: nothing to compare (a build from scratch)


def step_outcome(db: Path, report, fresh_dir: Path | None) -> StepOutcome:
    """A step's increments from its build `report`, and its differences from a copy of `db` in `fresh_dir`
    whose every model is built from scratch (--full-refresh) over the same base tables; None for the
    first step, itself a build from scratch."""
    assert report.ok, report.format()
    increments = {r.name: (r.traces_added, r.traces_removed) for r in report.results
                  if r.status == Status.BUILT and r.traces_added is not None}
    if fresh_dir is None:
        return StepOutcome(increments, None)
    fresh_dir.mkdir()
    fresh = copy_warehouse(db, fresh_dir)
    assert build(fresh, full_refresh=True).ok
    return StepOutcome(increments, differences(db, fresh))


@pytest.fixture(scope="module")
def sequence(tmp_path_factory) -> list[StepOutcome]:
    """Each step of SEQUENCE ingested and built incrementally, then compared with a build from scratch
    (step_outcome)."""
    d = tmp_path_factory.mktemp("incremental")
    for sample, (traces, seed) in SAMPLES.items():
        write_sample(d / sample, traces, seed=seed, progress=False)
    db, outcomes = d / "kept" / "w.duckdb", []
    for i, (dataset, sample) in enumerate(SEQUENCE):
        ingest(d / sample, db, dataset)  # then every model built, the ones on request too
        outcomes.append(step_outcome(db, build(db, select=EVERY_MODEL), d / f"fresh{i}" if i else None))
    return outcomes


@pytest.mark.parametrize("step", range(1, len(SEQUENCE)), ids=[f"{n}={s}" for n, s in SEQUENCE[1:]])
def test_every_model_equals_a_build_from_scratch(sequence, step):
    assert sequence[step].differences == {}


@pytest.mark.parametrize("step", range(len(SEQUENCE)), ids=[f"{n}={s}" for n, s in SEQUENCE])
def test_each_step_adds_and_removes_exactly_the_traces_that_changed(sequence, step):
    got = sequence[step].increments.get("block_pairs")
    assert got == EXPECTED_INCREMENTS[step]


def test_every_incremental_model_is_built_incrementally_after_an_append(sequence):
    """block_agreement too, though it reads full_links, which new data rebuilds whole: its trace_inputs
    name each trace's full row, so only the traces whose link changed are recomputed."""
    assert sorted(sequence[1].increments) == INCREMENTAL_MODELS
    assert (sequence[1].increments["block_agreement"], sequence[1].increments["full_block_digests"]) == (
        (50, 0), (50, 0))


# ---------------------------------------------------------------------------
# The full config's chain: a default trace whose full row arrives in a later shard, then leaves


@pytest.fixture(scope="module")
def partner_steps(tmp_path_factory) -> list[StepOutcome]:
    """The alignment corpus (tests/golden_models_data.py) ingested with the full rows of problem 9 (the
    swapped pair) left out, then their shard added, then removed again; built after each ingest and
    compared with a build from scratch."""
    d = tmp_path_factory.mktemp("partner")
    default, full = alignment_corpus()
    src = write_hub_dir(d / "src", default, full[:-2])
    late = src / "full" / "train-late.parquet"
    db, outcomes = d / "kept" / "w.duckdb", []
    for i, arrive in enumerate((None, lambda: write_parquet(late, full[-2:]), late.unlink)):
        if arrive is not None:
            arrive()
        ingest(src, db, "align")
        outcomes.append(step_outcome(db, build(db), d / f"fresh{i}" if i else None))
    return outcomes


def test_a_partner_arriving_later_and_leaving_again_gives_a_build_from_scratch(partner_steps):
    assert [step.differences for step in partner_steps] == [None, {}, {}]


def test_only_the_traces_whose_partner_came_or_went_are_recompared(partner_steps):
    # defaults 9 and 10 were unlinked, then linked to the late full rows, then unlinked again: each time
    # their old inputs are removed and their new ones added; no other trace is touched
    assert [step.increments.get("block_agreement") for step in partner_steps[1:]] == [(2, 2), (2, 2)]
    # the full rows' digests: the two late rows computed, then removed; the others' kept
    assert [step.increments.get("full_block_digests") for step in partner_steps[1:]] == [(2, 0), (0, 2)]


# ---------------------------------------------------------------------------
# A toy project: one incremental model and the aggregate over it


def toy_models(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "per_trace.sql").write_text(
        "/*\nname: per_trace\nversion: 1\nkind: incremental\ngrain: [trace_id]\nbatch_traces: 7\n"
        "description: each trace's blocks\naudits:\n  - custom:\n      name: no_bad_dataset\n"
        "      sql: SELECT * FROM {this} WHERE dataset = 'bad'\n*/\n"
        "SELECT trace_id, dataset, n_blocks FROM traces\n")
    (directory / "per_dataset.sql").write_text(
        "/*\nname: per_dataset\nversion: 1\nkind: table\ngrain: [dataset]\ndescription: traces by dataset\n*/\n"
        "SELECT dataset, count(*) AS traces, sum(n_blocks) AS blocks FROM per_trace GROUP BY dataset\n")
    return directory


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict[str, Path]:
    """built: dataset a built with the toy models; samples a (30 traces) and b (20 traces)."""
    d = tmp_path_factory.mktemp("toy")
    write_sample(d / "a", 30, seed=7, progress=False)
    write_sample(d / "b", 20, seed=8, progress=False)
    models = toy_models(d / "models")
    db = d / "built" / "w.duckdb"
    ingest(d / "a", db, "a")
    assert build(db, models_dir=models).ok
    return {"a": d / "a", "b": d / "b", "models": models, "built": db}


def copy_of(db: Path, tmp_path: Path) -> Path:
    shutil.copytree(db.parent, tmp_path / "wh")
    return tmp_path / "wh" / db.name


def test_the_plan_and_the_build_line_say_incremental(toy, tmp_path):
    db = copy_of(toy["built"], tmp_path)
    ingest(toy["b"], db, "b")
    report = build(db, models_dir=toy["models"])
    assert [(r.name, r.reason) for r in report.results] == [
        ("per_trace", "incremental: 20 new traces, 0 removed"), ("per_dataset", "upstream per_trace is stale")]
    with storage.connect(db, read_only=True) as con:
        got = con.execute(f"SELECT model, mode, traces_added, traces_removed FROM {BUILDS_TABLE} "
                          f"ORDER BY built_at DESC LIMIT 2").fetchall()
    assert got == [("per_dataset", "full", None, None), ("per_trace", "incremental", 20, 0)]


def test_a_failed_audit_during_an_incremental_build_rolls_everything_back(toy, tmp_path):
    db = copy_of(toy["built"], tmp_path)
    ingest(toy["b"], db, "bad")
    before = snapshot(db)
    report = build(db, models_dir=toy["models"])
    assert [(r.name, r.status) for r in report.results] == [("per_trace", Status.FAILED),
                                                            ("per_dataset", Status.SKIPPED)]
    after = {k: v for k, v in snapshot(db).items() if k != BUILDS_TABLE}
    assert after == {k: v for k, v in before.items() if k != BUILDS_TABLE}
    assert (after["per_trace"], after[processed_name("per_trace")]) == (30, 30)


def test_without_its_record_of_traces_an_incremental_model_is_built_whole(toy, tmp_path):
    db = copy_of(toy["built"], tmp_path)
    with snapshots.writing(db, "drop the record (test)") as writer, writer.stage() as stage:
        stage.con.execute(f"DROP TABLE {processed_name('per_trace')}")
    ingest(toy["b"], db, "b")
    report = build(db, models_dir=toy["models"])
    assert (report.results[0].reason, report.results[0].rows) == (
        "new data ingested since; built whole: no record of the traces it holds", 50)
    assert snapshot(db)[processed_name("per_trace")] == 50


def test_killed_during_an_incremental_step_leaves_the_previous_state(toy, tmp_path):
    db = copy_of(toy["built"], tmp_path)
    ingest(toy["b"], db, "b")
    before = snapshot(db)
    code = "import sys; from mementos.warehouse.engine import build; build(sys.argv[1], models_dir=sys.argv[2])"
    env = {**{k: v for k, v in os.environ.items() if k != "MEMENTOS_STOP_AT"}, "MEMENTOS_KILL_AT": "build.after_create"}
    proc = subprocess.run([sys.executable, "-c", code, str(db), str(toy["models"])], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(db) == before
    report = build(db, models_dir=toy["models"])
    assert report.results[0].reason == "incremental: 20 new traces, 0 removed"
    with storage.connect(db, read_only=True) as con:
        assert con.execute("SELECT * FROM per_dataset ORDER BY dataset").fetchall() == [
            ("a", 30, con.execute("SELECT sum(n_blocks) FROM traces WHERE dataset = 'a'").fetchone()[0]),
            ("b", 20, con.execute("SELECT sum(n_blocks) FROM traces WHERE dataset = 'b'").fetchone()[0])]


# ---------------------------------------------------------------------------
# Pieces


def test_the_batches_of_an_increment_cover_exactly_its_rows():
    con = duckdb.connect()
    con.execute("CREATE TABLE added AS SELECT * FROM (VALUES ('a', 0), ('a', 1), ('a', 2), ('a', 5), ('a', 6), "
                "('b', 3)) AS t(dataset, source_row)")
    assert run_batches(con, "added", 2) == [("a", 0, 1), ("a", 2, 2), ("a", 5, 6), ("b", 3, 3)]


def test_a_new_shard_is_built_incrementally_and_an_unchanged_reingest_leaves_every_model_fresh(tmp_path):
    """Both halves of incremental work on the bundled models: appending a shard to a source builds the
    incremental models over that shard's traces alone; re-ingesting the unchanged source builds nothing."""
    from test_incremental_ingest import ROWS_PER_SHARD, corpus, write_shard

    source, db = corpus(tmp_path / "src"), tmp_path / "w.duckdb"
    ingest(source, db, "t")
    assert build(db).ok
    write_shard(source, "d")
    ingest(source, db, "t")
    report = build(db)
    assert report.ok, report.format()
    assert {(r.traces_added, r.traces_removed) for r in report.results
            if r.name in INCREMENTAL_MODELS and r.status == Status.BUILT and r.traces_added is not None} == {
        (ROWS_PER_SHARD, 0)}
    ingest(source, db, "t")
    assert {r.status for r in build(db).results} == {Status.FRESH}
