"""The ingest's commit (ingest/loader.py) reconciles: an ingest whose staged files disagree with what it
read fails and changes nothing.

The commit checks, inside its transaction, that what the workers say they wrote
is what the base views show: default and full rows, segments (all, blocks,
summaries), parse issues of each config, sentences, full blocks and ok rows;
and, for a sample of traces, that segment offsets lie inside their responses.
Each test breaks one of these between the workers and the commit, in process
(workers=0).
"""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import full_row, memento, row, write_hub_dir
from mementos.ingest import parquet_writer, pipeline
from mementos.foundation.errors import ReconciliationError
from mementos.ingest.pipeline import run_ingest
from mementos.foundation import layout, storage
from warehouse_state import committed_dirs, run_dirs, snapshot


def corpus(root, n):
    full = [full_row([[f"s{i} one.", "two."], ["three."]], [f"m{i}", "end"], problem=f"q{i}") for i in range(n)]
    default = [{k: v for k, v in r.items() if k in ("problem", "response", "domain", "source", "difficulty")}
               for r in full]
    default.append(row("<think></think>x", problem="raw"))  # flagged: an empty think section (no_blocks)
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


def on_batch(monkeypatch, table, batch, action):
    """Workers mishandle one batch of `table`: action 'drop' loses it, 'double' writes it twice."""
    real = parquet_writer.RunFileWriter.write
    seen = {}

    def write(self, arrow_table):
        n = seen[self.path] = seen.get(self.path, -1) + 1
        if self.path.parent.parent.parent.name == table and n == batch:
            if action == "drop":
                return
            real(self, arrow_table)
        real(self, arrow_table)

    monkeypatch.setattr(parquet_writer.RunFileWriter, "write", write)


@pytest.mark.parametrize("table, match", [
    ("traces", r"wrote 8 default rows but 6 are visible"),
    ("full_traces", r"wrote 7 full rows but 5 are visible"),
])
def test_a_lost_part_fails_the_run(wh, monkeypatch, table, match):
    db, source = wh
    on_batch(monkeypatch, table, 1, "drop")
    ingest_fails(db, source, match)


def test_a_doubled_part_fails_the_run(wh, monkeypatch):
    db, source = wh
    on_batch(monkeypatch, "traces", 0, "double")
    ingest_fails(db, source, r"wrote 8 default rows but 10 are visible")


def rewrite_staged(db, table, change):
    """Rewrite every staged Parquet part of `table` of the run being ingested (not the committed one)."""
    committed = committed_dirs(db)
    for path in layout.data_dir(db).glob(f"{table}/*/*/*.parquet"):
        if (path.parent.parent.name, path.parent.name) not in committed:
            pq.write_table(change(pq.read_table(path)), path)


def hook_before_load(monkeypatch, db, table, change):
    """A checkpoint-like hook: corrupt the staged files after they are written, before the commit."""
    real = pipeline.checkpoint

    def checkpoint(name):
        if name == "ingest.before_load":
            rewrite_staged(db, table, change)
        real(name)

    monkeypatch.setattr(pipeline, "checkpoint", checkpoint)


def emptied(column: str):
    """A change that empties the list `column` of the first row of every part that has a non-empty one."""
    def change(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index(column)
        values = t.column(column).to_pylist()
        values[next(j for j, v in enumerate(values) if v)] = []
        return t.set_column(i, t.schema.field(i), pa.array(values, t.schema.field(i).type))
    return change


def shift_offsets(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("segments")
    values = [[{**s, "char_end": s["char_end"] + 10_000} for s in segs] for segs in t.column("segments").to_pylist()]
    return t.set_column(i, t.schema.field(i), pa.array(values, t.schema.field(i).type))


def flip_status(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("status")
    return t.set_column(i, "status", pa.array(["ok"] * t.num_rows, t.schema.field("status").type))


@pytest.mark.parametrize("table, column, match", [
    ("traces", "segments", r"wrote 36 segments but \d+ are visible"),
    ("traces", "issues", r"wrote 1 default parse issues but 0 are visible"),
    ("full_traces", "sentences", r"wrote 21 sentences but \d+ are visible"),
    ("full_traces", "blocks", r"wrote 14 full blocks but \d+ are visible"),
])
def test_a_lost_nested_row_fails_the_run(wh, monkeypatch, table, column, match):
    db, source = wh
    hook_before_load(monkeypatch, db, table, emptied(column))
    ingest_fails(db, source, match)


def test_offsets_outside_the_response_fail_the_run(wh, monkeypatch):
    db, source = wh
    hook_before_load(monkeypatch, db, "traces", shift_offsets)
    ingest_fails(db, source, "segment offsets fall outside their responses")


def test_status_that_disagrees_with_the_parse_fails_the_run(wh, monkeypatch):
    db, source = wh
    hook_before_load(monkeypatch, db, "traces", flip_status)
    ingest_fails(db, source, r"wrote 14 ok rows but 15 are visible")


def test_the_untouched_run_reconciles(wh):
    db, source = wh
    summary = run_ingest(str(source), db, config="all", name="t", workers=0, progress=False, with_tokens=False)
    assert (summary.default_rows, summary.full_rows, summary.rows_ok) == (8, 7, 14)
    assert run_dirs(db) == committed_dirs(db)
