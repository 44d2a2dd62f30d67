"""Batched models (warehouse/batches.py): built a batch of traces at a time, the same table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import EVERY_MODEL, row, write_jsonl
from mementos.foundation import storage
from mementos.foundation.errors import ModelError
from mementos.ingest.pipeline import run_ingest
from mementos.warehouse import batches, materializations
from mementos.warehouse.engine import build
from mementos.warehouse.models import MODELS_DIR, discover, load_model
from warehouse_state import copy_warehouse

SMALL_BATCH = 37  # traces: several batches per dataset, cutting through the run files' row groups


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory) -> dict[str, Path]:
    """The same two datasets built twice: with the bundled models, and with every batched model at SMALL_BATCH."""
    from mementos.sample import write_sample

    d = tmp_path_factory.mktemp("batches")
    write_sample(d / "a", 150, seed=3, progress=False)
    write_sample(d / "b", 100, seed=4, progress=False)
    db = d / "whole" / "w.duckdb"
    run_ingest(str(d / "a"), db, config="all", name="a", workers=0, progress=False, with_tokens=False)
    run_ingest(str(d / "b"), db, config="all", name="b", workers=0, progress=False, with_tokens=False)
    # the samples have no unsegmented trace: 45 chains of thought without memento markup (two batches of SMALL_BATCH)
    unsegmented = [row(f"<think>Step {i}.\n\nStep {i}.\n\nDone.</think>\n\n{i}", problem=f"What is {i}?")
                   for i in range(45)]
    run_ingest(str(write_jsonl(d / "u.jsonl", unsegmented)), db, name="u", workers=0, progress=False,
               with_tokens=False)
    shutil.copytree(db.parent, d / "batched")
    small = d / "small_models"
    shutil.copytree(MODELS_DIR, small)
    for path in small.glob("*.sql"):
        path.write_text(path.read_text().replace("batch_traces: 20000", f"batch_traces: {SMALL_BATCH}"))
    assert build(db, select=EVERY_MODEL).ok  # the models on request too
    assert build(d / "batched" / "w.duckdb", select=EVERY_MODEL, models_dir=small).ok
    return {"whole": db, "batched": d / "batched" / "w.duckdb", "small_models": small}


def batched_model_names() -> list[str]:
    return sorted(name for name, model in discover().items() if model.batch_traces)


def test_the_bundled_batched_models_are_the_incremental_ones():
    assert batched_model_names() == ["block_agreement", "block_pairs", "export_base", "export_summarize",
                                     "full_block_digests", "inference_simulation", "memento_copies",
                                     "memento_retention", "trace_compression", "trace_text_checks",
                                     "trace_words", "unsegmented_traces"]
    assert {name for name, model in discover().items() if model.kind == "incremental"} == set(batched_model_names())


def test_trace_batches_cut_each_dataset_every_n_traces(warehouses):
    with storage.connect(warehouses["whole"], read_only=True) as con:
        got = batches.trace_batches(con, 60)
    assert got == [("a", 0, 59), ("a", 60, 119), ("a", 120, 149), ("b", 0, 59), ("b", 60, 99), ("u", 0, 44)]


@pytest.mark.parametrize("name", batched_model_names())
def test_a_batched_build_gives_the_unbatched_table(warehouses, name):
    with storage.connect(warehouses["batched"], read_only=True) as con:
        con.execute(f"ATTACH '{warehouses['whole']}' AS whole (READ_ONLY)")
        [(rows,)] = con.execute(f"SELECT count(*) FROM {name}").fetchall()
        missing = con.execute(f"SELECT count(*) FROM (FROM whole.{name} EXCEPT ALL FROM {name})").fetchall()
        extra = con.execute(f"SELECT count(*) FROM (FROM {name} EXCEPT ALL FROM whole.{name})").fetchall()
    assert (rows > 0, missing, extra) == (True, [(0,)], [(0,)])


def test_a_warehouse_within_one_batch_builds_each_batched_model_in_one_query(built, tmp_path, monkeypatch):
    """3 source rows under batch_traces 20000: no batch is cut (batch_queries is never called)."""
    db = copy_warehouse(built, tmp_path)
    with storage.connect(db, read_only=True) as con:
        assert batches.source_rows(con) == 3
        before = con.execute("SELECT * FROM block_pairs ORDER BY ALL").fetchall()

    def no_batches(*args):
        raise AssertionError("a batch was cut")

    monkeypatch.setattr(materializations, "batch_queries", no_batches)
    report = build(db, select=["block_pairs"], full_refresh=True)
    assert [(r.name, r.status) for r in report.results] == [("block_pairs", "built")], report.format()
    with storage.connect(db, read_only=True) as con:
        assert con.execute("SELECT * FROM block_pairs ORDER BY ALL").fetchall() == before


def test_a_batch_reads_the_rows_of_its_traces_only(warehouses):
    models = discover(warehouses["small_models"])
    views = {name: m for name, m in models.items() if m.kind == "view"}
    db = warehouses["whole"]
    ids = [f"b:{i}" for i in range(10, 20)]
    with storage.connect(db, read_only=True) as con:
        sql = next(batches.batch_queries(con, db, models["block_pairs"], views, [("b", 10, 19)]))
        got = con.execute(f"SELECT DISTINCT trace_id FROM ({sql}) ORDER BY ALL").fetchall()
        expected = con.execute("SELECT DISTINCT trace_id FROM block_pairs WHERE trace_id IN $ids ORDER BY ALL",
                               {"ids": ids}).fetchall()
    assert (got, len(got) >= 8) == (expected, True)


def _write_model(tmp_path: Path, header: str) -> Path:
    path = tmp_path / "m.sql"
    path.write_text(f"/*\nname: m\nversion: 1\n{header}\ndescription: d\n*/\nSELECT trace_id FROM traces\n")
    return path


@pytest.mark.parametrize("header, message", [
    ("kind: view\ngrain: [trace_id]\nbatch_traces: 10", "batch_traces is for tables"),
    ("kind: table\ngrain: [domain]\nbatch_traces: 10", r"needs trace_id \(or full_trace_id\) in the grain"),
    ("kind: table\ngrain: [trace_id]\nbatch_traces: many",
     r"batch_traces must be a whole number of traces \(e.g. 20000\), not 'many'"),
    ("kind: incremental\ngrain: [trace_id]", "kind incremental needs batch_traces"),
    ("kind: incremental\ngrain: [domain]\nbatch_traces: 10",
     r"batch_traces needs trace_id \(or full_trace_id\) in the grain"),
], ids=["on a view", "without trace_id in the grain", "not a number", "incremental without it",
        "incremental without trace_id in the grain"])
def test_a_batched_or_incremental_header_that_breaks_the_contract_is_refused(tmp_path, header, message):
    with pytest.raises(ModelError, match=message):
        load_model(_write_model(tmp_path, header))
