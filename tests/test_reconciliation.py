"""Reconciliation: an ingest whose staged files disagree with what it read fails and changes nothing.

The loader checks, inside the load transaction: rows read = rows in `traces` and
`full_traces`; child tables (segments, parse issues, sentences, full blocks)
against the counts their parent rows record; ok rows; and that stored segment
offsets reproduce stored texts for a sample of traces. Each test breaks one of
these between the workers and the load, in process (workers=0).
"""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import full_row, memento, row, write_hub_dir
from ingest import parquet_writer, pipeline
from ingest.loader import ReconciliationError
from ingest.pipeline import run_ingest
from warehouse import storage
from warehouse_state import committed_dirs, run_dirs, snapshot


def corpus(root, n):
    full = [full_row([[f"s{i} one.", "two."], ["three."]], [f"m{i}", "end"], problem=f"q{i}") for i in range(n)]
    default = [{k: v for k, v in r.items() if k in ("problem", "response", "domain", "source", "difficulty")}
               for r in full]
    default.append(row("<think>no blocks</think>x", problem="raw"))
    return write_hub_dir(root, default, full)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("base")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "BATCH_ROWS", 2)
        run_ingest(str(corpus(d / "old", 3)), d / "wh" / "w.duckdb", config="all", name="t", workers=0,
                   progress=False, with_tokens=False)
    corpus(d / "new", 7)
    return d


@pytest.fixture
def wh(base, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "BATCH_ROWS", 2)  # several batches, so one can go missing
    shutil.copytree(base / "wh", tmp_path / "wh")
    return tmp_path / "wh" / "w.duckdb", base / "new"


def ingest_fails(db, source, match):
    before, dirs = snapshot(db), run_dirs(db)
    with pytest.raises(ReconciliationError, match=match) as info:
        run_ingest(str(source), db, config="all", name="t", workers=0, progress=False, with_tokens=False)
    assert "nothing was changed" in str(info.value)
    assert snapshot(db) == before
    assert run_dirs(db) == dirs == committed_dirs(db)
    assert not storage.is_locked(db)


def drop_part(monkeypatch, table, seq):
    """Workers 'lose' one table's part of one batch."""
    real = parquet_writer.write_tables

    def write_tables(root, dataset, run_id, config, s, tables):
        if s == seq:
            tables = {k: v for k, v in tables.items() if k != table}
        real(root, dataset, run_id, config, s, tables)

    monkeypatch.setattr(parquet_writer, "write_tables", write_tables)


@pytest.mark.parametrize("table, match", [
    ("traces", r"read 8 default and 7 full rows but 6 and 7"),
    ("full_traces", r"read 8 default and 7 full rows but 8 and 5"),
    ("segments", r"the traces record \d+ block segments but \d+"),
    ("sentences", r"the traces record \d+ sentences but \d+"),
    ("full_blocks", r"the traces record \d+ full blocks but \d+"),
])
def test_a_lost_part_fails_the_run(wh, monkeypatch, table, match):
    db, source = wh
    drop_part(monkeypatch, table, seq=1)
    ingest_fails(db, source, match)


def test_a_lost_parse_issue_fails_the_run(wh, monkeypatch):
    db, source = wh
    drop_part(monkeypatch, "parse_issues", seq=3)  # the batch with the raw chain of thought
    ingest_fails(db, source, r"the traces record 1 default parse issues but 0")


def test_a_doubled_part_fails_the_run(wh, monkeypatch):
    db, source = wh
    real = parquet_writer.write_tables

    def write_twice(root, dataset, run_id, config, seq, tables):
        real(root, dataset, run_id, config, seq, tables)
        if seq == 0 and config == "default":
            real(root, dataset, run_id, config, 999, {"segments": tables["segments"]})

    monkeypatch.setattr(parquet_writer, "write_tables", write_twice)
    ingest_fails(db, source, r"the traces record 14 block segments but 18")


def rewrite_staged(db, table, change):
    """Rewrite every staged Parquet part of `table` of the run being ingested (not the committed one)."""
    committed = committed_dirs(db)
    for path in storage.data_dir(db).glob(f"{table}/*/*/*.parquet"):
        if (path.parent.parent.name, path.parent.name) not in committed:
            pq.write_table(change(pq.read_table(path)), path)


def hook_before_load(monkeypatch, db, table, change):
    """A checkpoint-like hook: corrupt the staged files after they are written, before the load."""
    real = pipeline.checkpoint

    def checkpoint(name):
        if name == "ingest.before_load":
            rewrite_staged(db, table, change)
        real(name)

    monkeypatch.setattr(pipeline, "checkpoint", checkpoint)


def shift_offsets(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("char_start")
    return t.set_column(i, "char_start", pc.add(t.column("char_start"), 1))


def change_text(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("text")
    return t.set_column(i, "text", pc.utf8_upper(t.column("text")))


def flip_status(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("status")
    return t.set_column(i, "status", pa.array(["ok"] * t.num_rows, t.schema.field("status").type))


@pytest.mark.parametrize("change, match", [
    (shift_offsets, "segment offsets do not reproduce their texts"),
    (change_text, "segment offsets do not reproduce their texts"),
])
def test_offsets_that_do_not_reproduce_texts_fail_the_run(wh, monkeypatch, change, match):
    db, source = wh
    hook_before_load(monkeypatch, db, "segments", change)
    ingest_fails(db, source, match)


def test_status_that_disagrees_with_the_parse_fails_the_run(wh, monkeypatch):
    db, source = wh
    hook_before_load(monkeypatch, db, "traces", flip_status)
    ingest_fails(db, source, r"parsed 14 rows as ok but 15 ok rows")


def test_the_untouched_run_reconciles(wh):
    db, source = wh
    summary = run_ingest(str(source), db, config="all", name="t", workers=0, progress=False, with_tokens=False)
    assert (summary.default_rows, summary.full_rows, summary.rows_ok) == (8, 7, 14)
    assert run_dirs(db) == committed_dirs(db)
